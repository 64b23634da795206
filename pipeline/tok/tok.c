/* The tokenizer's public operations (spec §1.6-§1.9): text -> ids, the 77-token row, the label
 * set, ids -> text, and the word cache controls. Loading lives in tok_load.c. */
#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "tok_internal.h"

#define SMALL_PIECE 256 /* bytes of a pre-token that fit the on-stack symbol buffer */

#define BATCH 32 /* pre-tokens whose cache sets are prefetched together */

typedef struct {
    const char *p;
    size_t len;
    uint64_t h;
} piece_t;

typedef struct {
    const pl_tok_t *tok;
    uint32_t *ids;
    size_t cap;
    size_t n;    /* ids produced so far (may exceed cap) */
    size_t stop; /* stop the walk once n reaches this */
    piece_t batch[BATCH];
    size_t nb;
    uint64_t hit_short, hit_long, miss; /* cache counters of this call */
} enc_t;

static void emit(enc_t *e, const uint32_t *ids, size_t k)
{
    for (size_t i = 0; i < k; i++, e->n++) {
        if (e->n < e->cap) {
            e->ids[e->n] = ids[i];
        }
    }
}

/* BPE of one pre-token (through the cache); returns 0 or a negative error. */
static int do_piece(enc_t *e, const char *piece, size_t len, uint64_t h)
{
    const pl_tok_t *tok = e->tok;
    const uint8_t *p = (const uint8_t *)piece;
    /* The reference's cache is seeded with the two special strings, so a pre-token that is exactly
     * one of them (the pattern's first alternative, after lowercasing) is its special id. */
    if (len == 15 && memcmp(piece, "<start_of_text>", 15) == 0) {
        uint32_t id = pl_tok_sot(tok);
        emit(e, &id, 1);
        return 0;
    }
    if (len == 13 && memcmp(piece, "<end_of_text>", 13) == 0) {
        uint32_t id = pl_tok_eot(tok);
        emit(e, &id, 1);
        return 0;
    }
    /* Short words live in the short-word cache unless their result has too many ids (a run of
     * CJK characters, say); those, and longer words, live in the long-word cache. */
    int cacheable = len <= PL__CACHE_LONG_KEY;
    if (cacheable) {
        uint32_t hit[PL__CACHE_LONG_IDS];
        int k = -1;
        if (len <= PL__CACHE_SHORT_KEY && tok->cache != NULL) {
            k = pl__tok_cache_get(tok->cache, h, p, len, hit);
            e->hit_short += k >= 0;
        }
        if (k < 0 && tok->cache_long != NULL) {
            k = pl__tok_cache_get(tok->cache_long, h, p, len, hit);
            e->hit_long += k >= 0;
        }
        if (k >= 0) {
            emit(e, hit, (size_t)k);
            return 0;
        }
        e->miss++;
    }
    uint32_t small[SMALL_PIECE];
    uint32_t *syms = small;
    if (len > SMALL_PIECE) {
        if (len >= UINT32_MAX / 4) {
            return CORE_ETOO_LARGE;
        }
        syms = core_malloc(len * sizeof *syms);
        if (syms == NULL) {
            return CORE_ERR(ENOMEM);
        }
    }
    /* Bytes -> base symbols, "</w>" on the last one (spec §1.6 steps 1-2). */
    for (size_t i = 0; i + 1 < len; i++) {
        syms[i] = tok->byte_id[p[i]];
    }
    syms[len - 1] = tok->byte_id_w[p[len - 1]];
    size_t n;
    int rc = pl__tok_bpe(tok, syms, len, &n, 0);
    if (rc == 0) {
        emit(e, syms, n);
        if (cacheable) {
            pl__tok_cache_t *c = len <= PL__CACHE_SHORT_KEY && n <= PL__CACHE_SHORT_IDS
                                     ? tok->cache
                                     : tok->cache_long;
            if (c != NULL) {
                pl__tok_cache_put(c, h, p, len, syms, n);
            }
        }
    }
    if (syms != small) {
        core_free(syms);
    }
    return rc;
}

/* Runs the batched pre-tokens: first their hashes and cache prefetches, so the memory loads of a
 * whole caption overlap, then the lookups. Returns 1 when encoding should stop, or an error. */
static int flush(enc_t *e)
{
    const pl_tok_t *tok = e->tok;
    size_t nb = e->nb;
    e->nb = 0;
    for (size_t i = 0; i < nb; i++) {
        piece_t *pc = &e->batch[i];
        if (pc->len <= PL__CACHE_LONG_KEY) {
            pc->h = pl__tok_hash_bytes(pc->p, pc->len);
            pl__tok_cache_t *c = pc->len <= PL__CACHE_SHORT_KEY ? tok->cache : tok->cache_long;
            if (c != NULL) {
                pl__tok_cache_prefetch(c, pc->h);
            }
        }
    }
    for (size_t i = 0; i < nb; i++) {
        int rc = do_piece(e, e->batch[i].p, e->batch[i].len, e->batch[i].h);
        if (rc < 0) {
            return rc;
        }
        if (e->n >= e->stop) {
            return 1;
        }
    }
    return 0;
}

static int piece_cb(void *ud, const char *piece, size_t len)
{
    enc_t *e = ud;
    e->batch[e->nb++] = (piece_t){piece, len, 0};
    return e->nb == BATCH ? flush(e) : 0;
}

static int encode(const pl_tok_t *tok, const char *text, size_t len, enc_t *e)
{
    char buf[4096]; /* captions up to ~1 KiB clean without allocating */
    char *clean;
    size_t clen;
    int rc = pl__tok_clean_into(text, len, buf, sizeof buf, &clean, &clen);
    if (rc < 0) {
        return rc;
    }
    e->tok = tok;
    e->n = 0;
    e->nb = 0;
    e->hit_short = e->hit_long = e->miss = 0;
    rc = clen > 0 ? pl_tok_pretokenize(clean, clen, piece_cb, e) : 0;
    if (rc == 0 && e->nb > 0) {
        rc = flush(e);
    }
    /* One counter update per call, not per word: the counters are shared by all threads. */
    if (tok->cache != NULL) {
        pl__tok_cache_count(tok->cache, e->hit_short, tok->cache_long == NULL ? e->miss : 0);
    }
    if (tok->cache_long != NULL) {
        pl__tok_cache_count(tok->cache_long, e->hit_long, e->miss);
    }
    if (clean != buf) {
        core_free(clean);
    }
    return rc < 0 ? rc : 0;
}

int pl_tok_encode(const pl_tok_t *tok, const char *text, size_t len, uint32_t *ids, size_t cap,
                  size_t *n_out)
{
    enc_t e = {.tok = tok, .ids = ids, .cap = cap, .stop = SIZE_MAX};
    *n_out = 0;
    int rc = encode(tok, text, len, &e);
    if (rc == 0) {
        *n_out = e.n;
    }
    return rc;
}

int pl_tok_row(const pl_tok_t *tok, const char *text, size_t len, uint32_t row[PL_TOK_CONTEXT],
               int *truncated, size_t *n_used)
{
    /* ids = [SOT] + encode + [EOT]; over 77 keep 77 with EOT last. So at most 75 encoded ids are
     * kept, and one more tells that the text was cut: stop encoding at 76. */
    const size_t keep = PL_TOK_CONTEXT - 2;
    uint32_t buf[PL_TOK_CONTEXT];
    enc_t e = {.tok = tok, .ids = buf, .cap = keep + 1, .stop = keep + 1};
    int rc = encode(tok, text, len, &e);
    if (rc < 0) {
        return rc;
    }
    size_t k = e.n > keep ? keep : e.n;
    memset(row, 0, PL_TOK_CONTEXT * sizeof *row);
    row[0] = pl_tok_sot(tok);
    memcpy(row + 1, buf, k * sizeof *row);
    row[k + 1] = pl_tok_eot(tok);
    if (truncated != NULL) {
        *truncated = e.n > keep;
    }
    if (n_used != NULL) {
        *n_used = k + 2;
    }
    return 0;
}

void pl_tok_label(const uint32_t row[PL_TOK_CONTEXT], uint32_t label[PL_TOK_CONTEXT],
                  size_t *n_out)
{
    uint32_t v[PL_TOK_CONTEXT];
    memcpy(v, row, sizeof v);
    for (size_t i = 1; i < PL_TOK_CONTEXT; i++) {
        uint32_t x = v[i];
        size_t j = i;
        while (j > 0 && v[j - 1] > x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    size_t n = 0;
    for (size_t i = 0; i < PL_TOK_CONTEXT; i++) {
        if (n == 0 || label[n - 1] != v[i]) {
            label[n++] = v[i];
        }
    }
    *n_out = n;
}

/* Python's bytes.decode("utf-8", errors="replace"): one U+FFFD per maximal subpart of an invalid
 * sequence. `out` has room for 3 * len bytes. */
static size_t utf8_replace(const uint8_t *s, size_t len, uint8_t *out)
{
    size_t o = 0, i = 0;
    while (i < len) {
        uint8_t b = s[i];
        if (b < 0x80) {
            out[o++] = b;
            i++;
            continue;
        }
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (b >= 0xC2 && b <= 0xDF) {
            need = 1;
        } else if (b >= 0xE0 && b <= 0xEF) {
            need = 2;
            lo = b == 0xE0 ? 0xA0 : 0x80;
            hi = b == 0xED ? 0x9F : 0xBF;
        } else if (b >= 0xF0 && b <= 0xF4) {
            need = 3;
            lo = b == 0xF0 ? 0x90 : 0x80;
            hi = b == 0xF4 ? 0x8F : 0xBF;
        } else {
            need = 0;
        }
        size_t k = 1;
        if (need > 0 && i + 1 < len && s[i + 1] >= lo && s[i + 1] <= hi) {
            k = 2;
            while (k <= need && i + k < len && s[i + k] >= 0x80 && s[i + k] <= 0xBF) {
                k++;
            }
        }
        if (need > 0 && k == need + 1) {
            memcpy(out + o, s + i, k);
            o += k;
        } else {
            out[o++] = 0xEF;
            out[o++] = 0xBF;
            out[o++] = 0xBD;
        }
        i += k;
    }
    return o;
}

int pl_tok_decode(const pl_tok_t *tok, const uint32_t *ids, size_t n, char *out, size_t cap,
                  size_t *len_out)
{
    size_t total = 0;
    *len_out = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= tok->vocab_size) {
            return CORE_ENOT_FOUND;
        }
        total += tok->raw_off[ids[i] + 1] - tok->raw_off[ids[i]];
    }
    size_t room;
    if (core_size_mul(total, 4, &room) != 0) {
        return CORE_ETOO_LARGE;
    }
    uint8_t *buf = core_malloc(room + 1);
    if (buf == NULL) {
        return CORE_ERR(ENOMEM);
    }
    /* raw bytes in the first quarter, the decoded text after them */
    uint8_t *raw = buf, *txt = buf + total;
    size_t r = 0;
    for (size_t i = 0; i < n; i++) {
        size_t a = tok->raw_off[ids[i]], b = tok->raw_off[ids[i] + 1];
        memcpy(raw + r, tok->raw_bytes + a, b - a);
        r += b - a;
    }
    size_t tl = utf8_replace(raw, r, txt);
    /* .replace("</w>", " ") after decoding, like the reference (the marker is ASCII, so doing it
     * on the UTF-8 bytes is the same). */
    size_t o = 0;
    for (size_t i = 0; i < tl;) {
        if (i + 4 <= tl && memcmp(txt + i, "</w>", 4) == 0) {
            txt[o++] = ' ';
            i += 4;
        } else {
            txt[o++] = txt[i++];
        }
    }
    if (o > 0 && txt[o - 1] == ' ') {
        o--;
    }
    if (cap > 0) {
        size_t c = o < cap - 1 ? o : cap - 1;
        memcpy(out, txt, c);
        out[c] = '\0';
    }
    *len_out = o;
    core_free(buf);
    return 0;
}

int pl_tok_set_cache(pl_tok_t *tok, size_t max_entries)
{
    pl__tok_cache_t *c = NULL, *cl = NULL;
    int rc = pl__tok_cache_new(max_entries, PL__CACHE_SHORT_KEY, PL__CACHE_SHORT_IDS, &c);
    if (rc == 0) {
        rc = pl__tok_cache_new(max_entries / PL__CACHE_LONG_SHARE, PL__CACHE_LONG_KEY,
                               PL__CACHE_LONG_IDS, &cl);
    }
    if (rc < 0) {
        pl__tok_cache_free(c);
        return rc;
    }
    pl__tok_cache_free(tok->cache);
    pl__tok_cache_free(tok->cache_long);
    tok->cache = c;
    tok->cache_long = cl;
    return 0;
}

void pl_tok_cache_clear(const pl_tok_t *tok)
{
    if (tok->cache != NULL) {
        pl__tok_cache_clear(tok->cache);
    }
    if (tok->cache_long != NULL) {
        pl__tok_cache_clear(tok->cache_long);
    }
}

void pl_tok_cache_stats(const pl_tok_t *tok, uint64_t *hits, uint64_t *misses, size_t *entries)
{
    *hits = 0;
    *misses = 0;
    *entries = 0;
    if (tok->cache != NULL) {
        pl__tok_cache_stats(tok->cache, hits, misses, entries);
    }
    if (tok->cache_long != NULL) {
        pl__tok_cache_stats(tok->cache_long, hits, misses, entries);
    }
}
