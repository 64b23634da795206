#!/usr/bin/python3
"""Python peer of the ingest benchmark (bench/ingest.sh): the same work done the usual way.

For every webdataset tar (tarfile), samples are grouped by key over adjacent members; the caption
(.txt, else json "caption") is decoded as strict UTF-8 and checked (NUL, blank), the image is
opened with PIL (verify=full: im.load() decodes every pixel; verify=header: Image.open reads the
header), the caption is tokenized with the Python CLIP tokenizer of bench/tok_peer.py (77-token
row, label = sorted set of the row), the caption is compressed (zlib, the stdlib's compressor,
standing in for zstd), a record is packed with struct and a CRC (zlib.crc32), and records are put
into LMDB (python3-lmdb, big-endian u64 keys, append=True) in transactions of 512.

  ingest_peer.py [--verify full|header] [--vocab FILE] [--dir TMPDIR] PATH...

Prints the same RESULT line as bench_ingest. Needs Debian's python3-pil, python3-lmdb and
python3-regex: run with /usr/bin/python3.
"""
import argparse
import array
import io
import json
import os
import resource
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import warnings
import zlib

import lmdb
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tok_peer import Tokenizer  # noqa: E402

IMG_EXT = ('jpg', 'jpeg', 'png', 'webp')
FMT = {'JPEG': 1, 'PNG': 2, 'WEBP': 3}
BATCH = 512


def walk(paths):
    out = []
    for p in paths:
        if os.path.isdir(p):
            subs = sorted(os.listdir(p))
            out += walk([os.path.join(p, s) for s in subs if not s.startswith('.') and
                         (os.path.isdir(os.path.join(p, s)) or '.tar' in s)])
        else:
            out.append(p)
    return out


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Peer:
    def __init__(self, tok, env, verify):
        self.tok = tok
        self.env = env
        self.full = verify == 'full'
        self.seq = 0
        self.batch = []
        self.kept = self.rejected = self.samples = 0
        self.t = dict(read=0.0, decode=0.0, tokenize=0.0, compress=0.0, lmdb=0.0)

    def flush(self):
        t0 = time.perf_counter()
        with self.env.begin(write=True) as txn:
            for k, v in self.batch:
                txn.put(k, v, append=True)
        self.batch = []
        self.t['lmdb'] += time.perf_counter() - t0

    def sample(self, fname, key, members):
        self.samples += 1
        img_ext = next((e for e in IMG_EXT if e in members), None)
        t0 = time.perf_counter()
        cap = members.get('txt')
        if cap is None and 'json' in members:
            try:
                cap = json.loads(members['json']).get('caption')
                cap = cap.encode('utf-8') if isinstance(cap, str) else None
            except ValueError:
                cap = None
        if img_ext is None or cap is None:
            self.rejected += 1
            return
        try:
            text = cap.decode('utf-8')
        except UnicodeDecodeError:
            self.rejected += 1
            return
        text = text.strip()
        if not text or '\0' in text:
            self.rejected += 1
            return
        text = text.encode('utf-8')[:4096].decode('utf-8', errors='ignore').strip()
        row = self.tok.row(text)
        n_used = max(i for i, v in enumerate(row) if v != 0) + 1
        label = sorted(set(row))
        t1 = time.perf_counter()
        self.t['tokenize'] += t1 - t0
        data = members[img_ext]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('error')
                im = Image.open(io.BytesIO(data))
                if self.full:
                    im.load()
                w, h, fmt = im.width, im.height, FMT.get(im.format, 0)
        except Exception:  # PIL raises many kinds; each is a reject
            self.t['decode'] += time.perf_counter() - t1
            self.rejected += 1
            return
        t2 = time.perf_counter()
        self.t['decode'] += t2 - t1
        cz = zlib.compress(text.encode('utf-8'), 3)
        k = key.encode('utf-8')
        f = os.path.basename(fname).encode('utf-8')
        body = (struct.pack('<4sHHIBBBBIIQIIIHH', b'SCR1', 1, 0, 0, fmt, 0, len(label), n_used,
                            w, h, self.samples - 1, len(text), len(cz), len(data), len(f), len(k))
                + array.array('I', label).tobytes() + array.array('I', row[:n_used]).tobytes()
                + cz + f + k + data)
        rec = body + struct.pack('<I', zlib.crc32(body))
        self.batch.append((struct.pack('>Q', self.seq), rec))
        self.seq += 1
        self.kept += 1
        self.t['compress'] += time.perf_counter() - t2
        if len(self.batch) >= BATCH:
            self.flush()

    def ingest(self, path):
        t0 = time.perf_counter()
        cur_key, members = None, {}
        with tarfile.open(path, 'r:*') as tf:
            for m in tf:
                if not m.isfile():
                    continue
                base = os.path.basename(m.name)
                if '.' not in base or base.startswith('.'):
                    continue
                d = os.path.dirname(m.name)
                stem, ext = base.split('.', 1)
                key = os.path.join(d, stem) if d else stem
                if key != cur_key and cur_key is not None:
                    self.t['read'] += time.perf_counter() - t0
                    self.sample(path, cur_key, members)
                    t0 = time.perf_counter()
                    members = {}
                cur_key = key
                ext = ext.lower()
                if ext in IMG_EXT or ext in ('txt', 'json'):
                    members[ext] = tf.extractfile(m).read()
        self.t['read'] += time.perf_counter() - t0
        if cur_key is not None:
            self.sample(path, cur_key, members)
        if self.batch:
            self.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--verify', choices=('full', 'header'), default='full')
    ap.add_argument('--vocab', default=None)
    ap.add_argument('--dir', default='/tmp')
    ap.add_argument('paths', nargs='+')
    a = ap.parse_args()
    files = walk(a.paths)
    mb = sum(os.path.getsize(f) for f in files) / 1e6
    Image.MAX_IMAGE_PIXELS = 64 << 20  # the same bomb limit as the C side
    tok = Tokenizer(a.vocab) if a.vocab else Tokenizer()
    tmp = tempfile.mkdtemp(prefix='ingest_peer.', dir=a.dir)
    try:
        env = lmdb.open(os.path.join(tmp, 'peer.lmdb'), map_size=4 << 30, subdir=False)
        p = Peer(tok, env, a.verify)
        c0, w0 = cpu_s(), time.perf_counter()
        for f in files:
            p.ingest(f)
        wall, cpu = time.perf_counter() - w0, cpu_s() - c0
        env.close()
    finally:
        shutil.rmtree(tmp)
    t = p.t
    print(f"RESULT impl=py verify={a.verify} samples={p.samples} kept={p.kept} "
          f"rejected={p.rejected} mb={mb:.2f} wall_s={wall:.3f} cpu_s={cpu:.3f} "
          f"samples_per_cpu_s={p.samples / cpu:.1f} mb_per_cpu_s={mb / cpu:.2f} "
          f"read_s={t['read']:.3f} decode_s={t['decode']:.3f} tokenize_s={t['tokenize']:.3f} "
          f"compress_s={t['compress']:.3f} lmdb_s={t['lmdb']:.3f}")


if __name__ == '__main__':
    main()
