#!/usr/bin/python3
"""A straightforward Python implementation of the CLIP BPE tokenizer (spec/superclass.md §1.2-§1.9),
written from the spec as the speed peer of the C tokenizer (bench/tok.sh). Unicode NFC stands in for
ftfy (§1.4), like the C code and golden.tsv. Needs Debian's python3-regex: run with /usr/bin/python3.

  tok_peer.py --check golden.tsv        compare every row with the file, print "N/M matched"
  tok_peer.py --bench golden.tsv [-r R] texts/s and MB/s, cold (empty word cache) and warm
  tok_peer.py [--vocab FILE] TEXT...    print the 77-token row of each TEXT
"""
import argparse
import gzip
import html
import os
import statistics
import sys
import time
import unicodedata

import regex

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VOCAB = os.path.join(HERE, '..', '..', 'shared', 'data', 'tokenizer',
                             'bpe_simple_vocab_16e6.txt.gz')
CONTEXT = 77


def bytes_to_unicode():
    """§1.3: printable bytes map to themselves, the other 68 to U+0100.. in byte order."""
    printable = (list(range(ord('!'), ord('~') + 1)) + list(range(0xA1, 0xAC + 1))
                 + list(range(0xAE, 0xFF + 1)))
    bs = printable[:]
    cs = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def clean(text):
    """§1.4 with NFC in place of ftfy."""
    text = unicodedata.normalize('NFC', text)
    text = html.unescape(html.unescape(text)).strip()
    text = ' '.join(text.split()).strip()
    return text.lower()


class Tokenizer:
    def __init__(self, path=DEFAULT_VOCAB):
        with open(path, 'rb') as f:
            data = f.read()
        if data[:2] == b'\x1f\x8b':
            data = gzip.decompress(data)
        lines = data.decode('utf-8').split('\n')
        header = lines[0]
        # §1.2: the CLIP file uses entries 1..48894; an sc-tok train file says how many it has.
        n = 49152 - 256 - 2
        if 'merges=' in header:
            n = int(header.split('merges=')[1].split()[0])
        merges = [tuple(m.split()) for m in lines[1:n + 1]]
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        vocab = list(self.byte_encoder.values())
        vocab = vocab + [v + '</w>' for v in vocab]
        vocab += [''.join(m) for m in merges]
        vocab += ['<start_of_text>', '<end_of_text>']
        self.encoder = {v: i for i, v in enumerate(vocab)}
        self.decoder = vocab
        self.bpe_ranks = {m: i for i, m in enumerate(merges)}
        self.sot = self.encoder['<start_of_text>']
        self.eot = self.encoder['<end_of_text>']
        self.clear_cache()
        self.pat = regex.compile(
            r"""<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]"""
            r"""|[^\s\p{L}\p{N}]+""", regex.IGNORECASE)

    def clear_cache(self):
        # The reference's unbounded dict cache, seeded with the special tokens (they pass through).
        self.cache = {'<start_of_text>': '<start_of_text>', '<end_of_text>': '<end_of_text>'}

    def bpe(self, token):
        """§1.6: lowest-rank pair first, every non-overlapping occurrence merged left to right."""
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + '</w>',)
        ranks = self.bpe_ranks
        while len(word) > 1:
            best = None
            best_rank = None
            for pair in zip(word, word[1:]):
                r = ranks.get(pair)
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = pair, r
            if best is None:
                break
            first, second = best
            new_word = []
            i = 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        out = ' '.join(word)
        self.cache[token] = out
        return out

    def encode(self, text):
        ids = []
        for piece in self.pat.findall(clean(text)):
            sym = ''.join(self.byte_encoder[b] for b in piece.encode('utf-8'))
            ids.extend(self.encoder[s] for s in self.bpe(sym).split(' '))
        return ids

    def row(self, text):
        """§1.7: SOT ids EOT, cut to 77 with EOT last, padded with 0."""
        ids = [self.sot] + self.encode(text) + [self.eot]
        if len(ids) > CONTEXT:
            ids = ids[:CONTEXT]
            ids[-1] = self.eot
        return ids + [0] * (CONTEXT - len(ids))

    def decode(self, ids):
        text = ''.join(self.decoder[i] for i in ids)
        b = bytearray(self.byte_decoder[c] if c in self.byte_decoder else ord(c) for c in text)
        return b.decode('utf-8', errors='replace').replace('</w>', ' ')


def unescape(s):
    out = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == '\\' and i + 1 < len(s):
            out.append({'\\': '\\', 't': '\t', 'n': '\n', 'r': '\r'}.get(s[i + 1], s[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return ''.join(out)


def read_golden(path):
    """(text, ids up to the last non-pad id) for every row of a golden.tsv-format file."""
    rows = []
    with open(path, 'rb') as f:
        for raw in f.read().split(b'\n'):
            line = raw.decode('utf-8', errors='surrogateescape')
            if not line or line.startswith('#'):
                continue
            text, _, ids = line.rpartition('\t')
            rows.append((unescape(text), [int(x) for x in ids.split()]))
    return rows


def trim(row):
    n = len(row)
    while n > 0 and row[n - 1] == 0:
        n -= 1
    return row[:n]


def check(tok, path):
    rows = read_golden(path)
    ok = 0
    shown = 0
    for text, want in rows:
        got = trim(tok.row(text))
        if got == want:
            ok += 1
        elif shown < 10:  # the first few, enough to debug
            shown += 1
            print('MISMATCH %r\n  want %s\n  got  %s' % (text, want, got), file=sys.stderr)
    print('%d/%d matched' % (ok, len(rows)))
    return ok == len(rows)


def bench(tok, path, reps):
    """Wall time and thread CPU time per pass; the CPU figures hold up on a loaded machine."""
    texts = [t for t, _ in read_golden(path)]
    nbytes = sum(len(t.encode('utf-8', errors='surrogateescape')) for t in texts)
    secs = {k: [] for k in ('cold', 'warm', 'cold-cpu', 'warm-cpu')}
    for _ in range(reps):
        tok.clear_cache()
        for name in ('cold', 'warm'):
            t0, c0 = time.perf_counter(), time.thread_time()
            for t in texts:
                tok.row(t)
            c1, t1 = time.thread_time(), time.perf_counter()
            secs[name].append(t1 - t0)
            secs[name + '-cpu'].append(c1 - c0)
    print('peer: python %s, regex %s, %d texts, %d bytes, %d reps' %
          (sys.version.split()[0], regex.__version__, len(texts), nbytes, reps))
    for name, v in secs.items():
        med = statistics.median(v)
        print('peer %s: %.0f texts/s %.3f MB/s (median %.4f s, min %.4f s)' %
              (name, len(texts) / med, nbytes / med / 1e6, med, min(v)))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--vocab', default=DEFAULT_VOCAB)
    ap.add_argument('--check', metavar='TSV')
    ap.add_argument('--bench', metavar='TSV')
    ap.add_argument('-r', '--reps', type=int, default=3)
    ap.add_argument('texts', nargs='*')
    a = ap.parse_args()
    tok = Tokenizer(a.vocab)
    if a.check:
        return 0 if check(tok, a.check) else 1
    if a.bench:
        bench(tok, a.bench, a.reps)
        return 0
    for t in a.texts:
        print(' '.join(map(str, trim(tok.row(t)))))
    return 0


if __name__ == '__main__':
    sys.exit(main())
