/* Loading a merges file (spec §1.2-§1.3) into the tables the encoder uses.
 *
 * File format (gzip or plain, detected by the gzip magic 1f 8b): lines separated by '\n'.
 *  - Line 1 is a header. The CLIP file's is "\"bpe_simple_vocab_16e6.txt#version: 0.2"; any
 *    header other than sc-tok's is skipped like the reference does, and then the first 48,894 merge
 *    lines are used (fewer if the file has fewer; later lines are ignored).
 *  - A file written by `sc-tok train` starts with PL_TOK_SCTOK_HEADER followed by the decimal merge
 *    count N, optionally followed by a space and anything else (reserved, ignored):
 *        #version: 0.2 sc-tok merges=N
 *    Exactly N merge lines must follow, and all are used.
 *  - A merge line is two symbols separated by one ASCII space ("i n", "rend ous</w>"). Both must
 *    already be in the vocabulary: a base symbol or the result of an earlier line. Anything else
 *    is CORE_ECORRUPT, reported through core_log with the line number.
 * A final '\n' does not start another line.
 *
 * Ids: 0..255 the byte characters in the reference's order (printable bytes first), 256..511 the
 * same with "</w>", 512 + rank for merges, then <start_of_text> and <end_of_text>. As in the
 * reference's dict, a string that occurs twice maps to its last id and a pair that occurs twice
 * has its last rank: BPE works on these "canonical" ids. (The CLIP file has no duplicates.) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/sha256.h"
#include "tok_internal.h"

static const char sot_str[] = "<start_of_text>";
static const char eot_str[] = "<end_of_text>";

/* Byte -> character of the reference's bytes_to_unicode(), and the base-id order. */
static int is_printable_byte(unsigned b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

static void byte_tables(uint32_t cp_of_byte[256], uint8_t byte_of_id[256], int byte_of_cp[0x144])
{
    unsigned id = 0, extra = 0;
    for (unsigned b = 0; b < 256; b++) {
        if (is_printable_byte(b)) {
            byte_of_id[id++] = (uint8_t)b;
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        if (is_printable_byte(b)) {
            cp_of_byte[b] = b;
        } else {
            byte_of_id[id++] = (uint8_t)b;
            cp_of_byte[b] = 256 + extra++;
        }
    }
    for (unsigned c = 0; c < 0x144; c++) {
        byte_of_cp[c] = -1;
    }
    for (unsigned b = 0; b < 256; b++) {
        byte_of_cp[cp_of_byte[b]] = (int)b;
    }
}

/* --- gzip --- */

static int gunzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
    int rc = 0;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    size_t cap = len * 3 + 4096, n = 0;
    if (cap > PL__TOK_MAX_FILE) {
        cap = PL__TOK_MAX_FILE;
    }
    uint8_t *buf = core_malloc(cap);
    if (buf == NULL) {
        return CORE_ERR(ENOMEM);
    }
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        core_free(buf);
        return CORE_ERR(ENOMEM);
    }
    zs.next_in = (Bytef *)(uintptr_t)in;
    for (;;) {
        /* zlib counts in uInt; feed at most 1 GiB at a time. */
        if (zs.avail_in == 0 && (size_t)(zs.next_in - in) < len) {
            size_t left = len - (size_t)(zs.next_in - in);
            zs.avail_in = (uInt)(left > (1u << 30) ? (1u << 30) : left);
        }
        if (n == cap) {
            CORE_FAIL_IF(cap >= PL__TOK_MAX_FILE, CORE_ETOO_LARGE);
            size_t ncap = cap * 2 > PL__TOK_MAX_FILE ? PL__TOK_MAX_FILE : cap * 2;
            uint8_t *nb = core_realloc(buf, ncap);
            CORE_FAIL_IF(nb == NULL, CORE_ERR(ENOMEM));
            buf = nb;
            cap = ncap;
        }
        zs.next_out = buf + n;
        zs.avail_out = (uInt)(cap - n);
        int zr = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
        if (zr == Z_STREAM_END) {
            size_t used = (size_t)(zs.next_in - in);
            if (used == len) {
                break;
            }
            /* Another gzip member follows (as `cat a.gz b.gz` makes), or trailing garbage. */
            if (len - used >= 2 && in[used] == 0x1f && in[used + 1] == 0x8b) {
                CORE_FAIL_IF(inflateReset(&zs) != Z_OK, CORE_ECORRUPT);
                continue;
            }
            core_log_err("tokenizer: %zu bytes of garbage after the gzip stream", len - used);
            CORE_FAIL_IF(1, CORE_ECORRUPT);
        }
        if (zr == Z_BUF_ERROR && zs.avail_out != 0) {
            core_log_err("tokenizer: the gzip stream is truncated");
            CORE_FAIL_IF(1, CORE_ECORRUPT);
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            core_log_err("tokenizer: gzip data is corrupt (%s)", zs.msg ? zs.msg : "zlib error");
            CORE_FAIL_IF(1, zr == Z_MEM_ERROR ? CORE_ERR(ENOMEM) : CORE_ECORRUPT);
        }
    }
    inflateEnd(&zs);
    *out = buf;
    *out_len = n;
    return 0;
fail:
    inflateEnd(&zs);
    core_free(buf);
    return rc;
}

/* --- symbol string map (load time only): string -> last id with that string --- */

typedef struct {
    const pl_tok_t *tok;
    uint32_t *slot; /* id or UINT32_MAX */
    size_t mask;
} strmap_t;

static size_t sym_len(const pl_tok_t *tok, uint32_t id)
{
    return tok->sym_off[id + 1] - tok->sym_off[id] - 1;
}

static uint32_t strmap_find(const strmap_t *m, const char *s, size_t len)
{
    size_t i = pl__tok_hash_bytes(s, len) & m->mask;
    for (;;) {
        uint32_t id = m->slot[i];
        if (id == UINT32_MAX) {
            return UINT32_MAX;
        }
        if (sym_len(m->tok, id) == len &&
            memcmp(m->tok->sym_bytes + m->tok->sym_off[id], s, len) == 0) {
            return id;
        }
        i = (i + 1) & m->mask;
    }
}

static void strmap_put(strmap_t *m, uint32_t id)
{
    const char *s = m->tok->sym_bytes + m->tok->sym_off[id];
    size_t len = sym_len(m->tok, id);
    size_t i = pl__tok_hash_bytes(s, len) & m->mask;
    for (;;) {
        uint32_t cur = m->slot[i];
        if (cur == UINT32_MAX || (sym_len(m->tok, cur) == len &&
                                  memcmp(m->tok->sym_bytes + m->tok->sym_off[cur], s, len) == 0)) {
            m->slot[i] = id; /* later ids win, as in the reference's dict */
            return;
        }
        i = (i + 1) & m->mask;
    }
}

/* --- header and lines --- */

static int parse_header(const char *h, size_t len, int *sctok, uint32_t *n)
{
    size_t pl = strlen(PL_TOK_SCTOK_HEADER);
    *sctok = 0;
    if (len < pl || memcmp(h, PL_TOK_SCTOK_HEADER, pl) != 0) {
        return 0;
    }
    *sctok = 1;
    uint64_t v = 0;
    size_t i = pl;
    if (i == len || h[i] < '0' || h[i] > '9') {
        core_log_err("tokenizer: sc-tok header without a merge count");
        return CORE_ECORRUPT;
    }
    while (i < len && h[i] >= '0' && h[i] <= '9') {
        v = v * 10 + (uint64_t)(h[i] - '0');
        if (v > PL__TOK_MAX_MERGES) {
            core_log_err("tokenizer: header claims more than %u merges", PL__TOK_MAX_MERGES);
            return CORE_ETOO_LARGE;
        }
        i++;
    }
    if (i < len && h[i] != ' ') {
        core_log_err("tokenizer: malformed sc-tok header");
        return CORE_ECORRUPT;
    }
    *n = (uint32_t)v;
    return 0;
}

typedef struct {
    size_t off;
    size_t len;
} span_t;

static int build(pl_tok_t *tok, const char *text, size_t tlen)
{
    int rc = 0;
    span_t *lines = NULL;
    uint32_t *alen = NULL;
    strmap_t map = {tok, NULL, 0};

    const char *nl = memchr(text, '\n', tlen);
    size_t hlen = nl != NULL ? (size_t)(nl - text) : tlen;
    if (tlen == 0) {
        core_log_err("tokenizer: the merges file is empty");
        return CORE_ECORRUPT;
    }
    int sctok;
    uint32_t want = 0;
    CORE_TRY(parse_header(text, hlen, &sctok, &want));
    uint32_t limit = sctok ? want : PL__TOK_CLIP_MERGES;

    /* Merge lines: count first, so that a header's claim cannot make us allocate much. */
    size_t pos = nl != NULL ? hlen + 1 : tlen;
    uint32_t avail = 0;
    for (size_t p = pos; p < tlen && avail < limit; avail++) {
        const char *e = memchr(text + p, '\n', tlen - p);
        p = e != NULL ? (size_t)(e - text) + 1 : tlen;
    }
    lines = core_malloc(((size_t)avail + 1) * sizeof *lines);
    CORE_FAIL_IF(lines == NULL, CORE_ERR(ENOMEM));
    uint32_t nm = 0;
    while (pos < tlen && nm < limit) {
        const char *e = memchr(text + pos, '\n', tlen - pos);
        size_t l = e != NULL ? (size_t)(e - (text + pos)) : tlen - pos;
        lines[nm].off = pos;
        lines[nm].len = l;
        nm++;
        pos += l + 1;
    }
    if (sctok && (nm != want || pos < tlen)) {
        core_log_err("tokenizer: the header says %u merges but the file has %s", want,
                     nm != want ? "fewer" : "more");
        CORE_FAIL_IF(1, CORE_ECORRUPT);
    }
    tok->n_merges = nm;
    tok->vocab_size = 512 + nm + 2;

    /* Symbol strings. */
    uint32_t cp_of_byte[256];
    uint8_t byte_of_id[256];
    int byte_of_cp[0x144];
    byte_tables(cp_of_byte, byte_of_id, byte_of_cp);
    size_t total = 0;
    for (int w = 0; w < 2; w++) {
        for (unsigned b = 0; b < 256; b++) {
            total += (cp_of_byte[b] < 0x80 ? 1u : 2u) + (w ? 4u : 0u) + 1u;
        }
    }
    for (uint32_t i = 0; i < nm; i++) {
        total += lines[i].len; /* "a b" -> "ab" plus NUL */
    }
    total += sizeof sot_str + sizeof eot_str;
    CORE_FAIL_IF(total > UINT32_MAX, CORE_ETOO_LARGE);
    tok->sym_off = core_malloc(((size_t)tok->vocab_size + 1) * sizeof *tok->sym_off);
    tok->sym_bytes = core_malloc(total);
    alen = core_malloc(((size_t)nm + 1) * sizeof *alen);
    size_t mcap = 16;
    while (mcap < (size_t)tok->vocab_size * 2) {
        mcap *= 2;
    }
    map.slot = core_malloc(mcap * sizeof *map.slot);
    map.mask = mcap - 1;
    CORE_FAIL_IF(tok->sym_off == NULL || tok->sym_bytes == NULL || alen == NULL ||
                     map.slot == NULL,
                 CORE_ERR(ENOMEM));
    memset(map.slot, 0xff, mcap * sizeof *map.slot);

    size_t o = 0;
    uint32_t id = 0;
    for (int w = 0; w < 2; w++) {
        for (unsigned k = 0; k < 256; k++, id++) {
            tok->sym_off[id] = (uint32_t)o;
            o += pl__utf8_put((uint8_t *)tok->sym_bytes + o, cp_of_byte[byte_of_id[k]]);
            if (w) {
                memcpy(tok->sym_bytes + o, "</w>", 4);
                o += 4;
            }
            tok->sym_bytes[o++] = '\0';
            tok->sym_off[id + 1] = (uint32_t)o;
            strmap_put(&map, id);
        }
    }
    for (uint32_t i = 0; i < nm; i++, id++) {
        const char *l = text + lines[i].off;
        size_t len = lines[i].len;
        const char *sp = memchr(l, ' ', len);
        size_t lineno = (size_t)i + 2;
        if (sp == NULL || sp == l || sp == l + len - 1 || memchr(sp + 1, ' ', len - (size_t)(sp - l) - 1) != NULL) {
            core_log_err("tokenizer: merges line %zu: expected two symbols separated by one space",
                         lineno);
            CORE_FAIL_IF(1, CORE_ECORRUPT);
        }
        size_t la = (size_t)(sp - l), lb = len - la - 1;
        if (strmap_find(&map, l, la) == UINT32_MAX || strmap_find(&map, sp + 1, lb) == UINT32_MAX) {
            int first = strmap_find(&map, l, la) == UINT32_MAX;
            core_log_err("tokenizer: merges line %zu: symbol \"%.*s\" is not in the vocabulary",
                         lineno, (int)(first ? (la > 64 ? 64 : la) : (lb > 64 ? 64 : lb)),
                         first ? l : sp + 1);
            CORE_FAIL_IF(1, CORE_ECORRUPT);
        }
        tok->sym_off[id] = (uint32_t)o;
        memcpy(tok->sym_bytes + o, l, la);
        memcpy(tok->sym_bytes + o + la, sp + 1, lb);
        o += la + lb;
        tok->sym_bytes[o++] = '\0';
        tok->sym_off[id + 1] = (uint32_t)o;
        alen[i] = (uint32_t)la;
        strmap_put(&map, id);
    }
    const char *specials[2] = {sot_str, eot_str};
    for (int s = 0; s < 2; s++, id++) {
        size_t l = strlen(specials[s]);
        tok->sym_off[id] = (uint32_t)o;
        memcpy(tok->sym_bytes + o, specials[s], l + 1);
        o += l + 1;
        tok->sym_off[id + 1] = (uint32_t)o;
        strmap_put(&map, id);
    }

    /* Merge table on canonical ids. */
    size_t tcap = 16;
    while (tcap < (size_t)nm * 2) {
        tcap *= 2;
    }
    tok->mtab = core_malloc_aligned(pl__tok_table_align(tcap * sizeof *tok->mtab),
                                    tcap * sizeof *tok->mtab);
    CORE_FAIL_IF(tok->mtab == NULL, CORE_ERR(ENOMEM));
    pl__tok_advise_huge(tok->mtab, tcap * sizeof *tok->mtab);
    for (size_t i = 0; i < tcap; i++) {
        tok->mtab[i].key = UINT64_MAX;
    }
    tok->mmask = tcap - 1;
    for (uint32_t i = 0; i < nm; i++) {
        uint32_t mid = 512 + i;
        const char *s = tok->sym_bytes + tok->sym_off[mid];
        size_t len = sym_len(tok, mid);
        uint32_t a = strmap_find(&map, s, alen[i]);
        uint32_t b = strmap_find(&map, s + alen[i], len - alen[i]);
        uint32_t r = strmap_find(&map, s, len);
        uint64_t key = (uint64_t)a << 32 | b;
        uint64_t slot = pl__tok_mix(key) & tok->mmask;
        while (tok->mtab[slot].key != UINT64_MAX && tok->mtab[slot].key != key) {
            slot = (slot + 1) & tok->mmask;
        }
        /* a repeated pair keeps its last rank */
        tok->mtab[slot] = (pl__merge_slot_t){key, i, r};
    }
    if (tok->vocab_size <= UINT16_MAX && nm <= UINT16_MAX) {
        /* Eight slots per bucket, at most half full on average: 1 MiB for CLIP; few buckets
         * overflow (0.4% for a Poisson load of 4). Measured against 3/4 full (512 KiB, a sixth
         * of the buckets overflowing): BPE of golden.tsv's distinct words 216 vs 254 ns each,
         * and the cold pass no slower despite the larger table. */
        size_t nb = 2; /* at least two: the bucket index is a shift by 64 - log2(nb) */
        while (nb * 4 < (size_t)nm) {
            nb *= 2;
        }
        size_t bytes = nb * 16 * sizeof(uint32_t);
        tok->mbk = core_malloc_aligned(pl__tok_table_align(bytes), bytes);
        tok->mbovf = core_calloc((nb + 63) / 64, sizeof(uint64_t));
        CORE_FAIL_IF(tok->mbk == NULL || tok->mbovf == NULL, CORE_ERR(ENOMEM));
        pl__tok_advise_huge(tok->mbk, bytes);
        for (size_t i = 0; i < nb * 16; i++) {
            tok->mbk[i] = (i & 8) ? 0 : UINT32_MAX;
        }
        tok->mbmask = nb - 1;
        tok->mbshift = 64;
        for (size_t b2 = nb; b2 > 1; b2 /= 2) {
            tok->mbshift--;
        }
        for (size_t i = 0; i < tcap; i++) {
            const pl__merge_slot_t *sl = &tok->mtab[i];
            if (sl->key == UINT64_MAX) {
                continue;
            }
            uint32_t k32 = (uint32_t)(sl->key >> 32) << 16 | (uint32_t)(sl->key & 0xffff);
            uint64_t bk = pl__tok_mbucket(tok, k32);
            for (;;) {
                uint32_t *keys = tok->mbk + bk * 16;
                size_t j = 0;
                while (j < 8 && keys[j] != UINT32_MAX) {
                    j++;
                }
                if (j < 8) {
                    keys[j] = k32;
                    keys[8 + j] = sl->rank << 16 | sl->new_id;
                    break;
                }
                tok->mbovf[bk / 64] |= (uint64_t)1 << (bk % 64);
                bk = (bk + 1) & tok->mbmask;
            }
        }
    }
    for (unsigned b = 0; b < 256; b++) {
        uint8_t u[8];
        size_t l = pl__utf8_put(u, cp_of_byte[b]);
        tok->byte_id[b] = strmap_find(&map, (const char *)u, l);
        memcpy(u + l, "</w>", 4);
        tok->byte_id_w[b] = strmap_find(&map, (const char *)u, l + 4);
    }

    /* Bytes of every symbol, for decode. */
    tok->raw_off = core_malloc(((size_t)tok->vocab_size + 1) * sizeof *tok->raw_off);
    tok->raw_bytes = core_malloc(o);
    CORE_FAIL_IF(tok->raw_off == NULL || tok->raw_bytes == NULL, CORE_ERR(ENOMEM));
    size_t r = 0;
    for (uint32_t v = 0; v < tok->vocab_size; v++) {
        const uint8_t *s = (const uint8_t *)tok->sym_bytes + tok->sym_off[v];
        size_t len = sym_len(tok, v), i = 0;
        tok->raw_off[v] = (uint32_t)r;
        while (i < len) {
            uint32_t cp;
            /* Every vocabulary string is made of byte characters (checked above by induction). */
            if (pl__utf8_next(s, len, &i, &cp) != 0 || cp >= 0x144 || byte_of_cp[cp] < 0) {
                CORE_FAIL_IF(1, CORE_ECORRUPT);
            }
            tok->raw_bytes[r++] = (uint8_t)byte_of_cp[cp];
        }
    }
    tok->raw_off[tok->vocab_size] = (uint32_t)r;

    rc = pl__tok_bpe_prepare(tok);
    CORE_FAIL_IF(rc != 0, rc);

    /* Identity: sha256 of the used merge lines, "a b\n" each. */
    core_sha256_t h;
    core_sha256_init(&h);
    for (uint32_t i = 0; i < nm; i++) {
        core_sha256_update(&h, text + lines[i].off, lines[i].len);
        core_sha256_update(&h, "\n", 1);
    }
    uint8_t dig[CORE_SHA256_LEN];
    core_sha256_final(&h, dig);
    core_hex(dig, sizeof dig, tok->hash);
    rc = 0;
fail:
    core_free(lines);
    core_free(alen);
    core_free(map.slot);
    return rc;
}

void pl_tok_free(pl_tok_t *tok)
{
    if (tok == NULL) {
        return;
    }
    pl__tok_cache_free(tok->cache);
    pl__tok_cache_free(tok->cache_long);
    core_free(tok->sym_off);
    core_free(tok->sym_bytes);
    core_free(tok->raw_off);
    core_free(tok->raw_bytes);
    core_free_aligned(tok->mtab);
    core_free_aligned(tok->mbk);
    core_free(tok->brank);
    core_free_aligned(tok->rtab);
    core_free(tok->mbovf);
    core_free(tok);
}

int pl_tok_load_buffer(const void *data, size_t len, pl_tok_t **out)
{
    int rc = 0;
    uint8_t *plain = NULL;
    const uint8_t *in = data;
    *out = NULL;
    pl_tok_t *tok = core_calloc(1, sizeof *tok);
    if (tok == NULL) {
        return CORE_ERR(ENOMEM);
    }
    const char *text = data;
    size_t tlen = len;
    if (len >= 2 && in[0] == 0x1f && in[1] == 0x8b) {
        CORE_TRY(gunzip(in, len, &plain, &tlen));
        text = (const char *)plain;
    } else if (len > PL__TOK_MAX_FILE) {
        CORE_FAIL_IF(1, CORE_ETOO_LARGE);
    }
    CORE_TRY(build(tok, text, tlen));
    CORE_TRY(pl_tok_set_cache(tok, PL_TOK_CACHE_DEFAULT));
    /* The per-process Unicode property tables (a few ms, once): built here rather than on the
     * first non-ASCII caption, so a fresh tokenizer's first call has no such spike. */
    pl__uni_init();
    if (pl__uni_check_version() != 0) {
        core_log_warn("tokenizer: utf8proc has Unicode %s, but the tables were made for utf8proc's"
                      " Unicode %s; rare characters may tokenize differently from the reference",
                      pl__uni_utf8proc_version(), pl__uni_expected_version());
    }
    core_free(plain);
    *out = tok;
    return 0;
fail:
    core_free(plain);
    pl_tok_free(tok);
    return rc;
}

int pl_tok_load(const char *path, pl_tok_t **out)
{
    int rc = 0;
    uint8_t *buf = NULL;
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        rc = CORE_ERR(errno);
        core_log_err("tokenizer: cannot open %s: %s", path, core_strerror(rc));
        return rc;
    }
    struct stat st;
    CORE_FAIL_IF(fstat(fileno(f), &st) != 0, CORE_ERR(errno));
    CORE_FAIL_IF(S_ISDIR(st.st_mode), CORE_ERR(EISDIR));
    CORE_FAIL_IF((uint64_t)st.st_size > PL__TOK_MAX_FILE, CORE_ETOO_LARGE);
    size_t n = (size_t)st.st_size;
    buf = core_malloc(n != 0 ? n : 1);
    CORE_FAIL_IF(buf == NULL, CORE_ERR(ENOMEM));
    CORE_FAIL_IF(fread(buf, 1, n, f) != n, CORE_ERR(EIO));
    fclose(f);
    f = NULL;
    rc = pl_tok_load_buffer(buf, n, out);
    if (rc < 0) {
        core_log_err("tokenizer: cannot load %s: %s", path, core_strerror(rc));
    }
    core_free(buf);
    return rc;
fail:
    core_log_err("tokenizer: cannot read %s: %s", path, core_strerror(rc));
    if (f != NULL) {
        fclose(f);
    }
    core_free(buf);
    return rc;
}

uint32_t pl_tok_vocab_size(const pl_tok_t *tok)
{
    return tok->vocab_size;
}

uint32_t pl_tok_n_merges(const pl_tok_t *tok)
{
    return tok->n_merges;
}

uint32_t pl_tok_sot(const pl_tok_t *tok)
{
    return tok->vocab_size - 2;
}

uint32_t pl_tok_eot(const pl_tok_t *tok)
{
    return tok->vocab_size - 1;
}

const char *pl_tok_hash(const pl_tok_t *tok)
{
    return tok->hash;
}

const char *pl_tok_symbol(const pl_tok_t *tok, uint32_t id)
{
    if (id >= tok->vocab_size) {
        return NULL;
    }
    return tok->sym_bytes + tok->sym_off[id];
}
