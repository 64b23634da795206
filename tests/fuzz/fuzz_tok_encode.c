/* Fuzz target: the tokenizer's text path (clean, pre-tokenize, BPE with cache, row, label,
 * decode) over arbitrary bytes, with a small vocabulary built in memory so each input is cheap.
 *
 * Input: byte 0 picks options (bit 0: no cache, bit 1: also decode the input read as ids, bit 2:
 * heap BPE for every pre-token), the rest is the text. Checks that every call returns 0 or a
 * documented error, that row/label/decode agree with encode, and that the array and heap BPE
 * agree. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "pipeline/tok.h"
#include "tok_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A few merges over common letters, two non-ASCII ones (the bytes of "é": C3 A9 map to "Ã©"),
 * runs of 'a' (overlapping merges) and one repeated line (a duplicate string). */
static const char vocab[] = PL_TOK_SCTOK_HEADER "16\n"
                            "i n\n"
                            "t h\n"
                            "a n\n"
                            "e r\n"
                            "th e</w>\n"
                            "in g</w>\n"
                            "a a\n"
                            "aa a\n"
                            "aa aa\n"
                            "a a</w>\n"
                            "Ã ©</w>\n"
                            "Ã ©\n"
                            "c Ã©</w>\n"
                            "' s</w>\n"
                            "a b</w>\n"
                            "a b</w>\n";

typedef struct {
    const pl_tok_t *tok;
} fz_t;

static int piece_cb(void *ud, const char *piece, size_t len)
{
    fz_t *f = ud;
    if (len == 0) {
        __builtin_trap();
    }
    uint32_t *a = core_malloc(len * sizeof *a), *b = core_malloc(len * sizeof *b);
    if (a == NULL || b == NULL) {
        core_free(a);
        core_free(b);
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)piece[i];
        a[i] = b[i] = i + 1 < len ? f->tok->byte_id[c] : f->tok->byte_id_w[c];
    }
    size_t na, nb;
    if (pl__tok_bpe(f->tok, a, len, &na, PL__TOK_BPE_AUTO) == 0 &&
        pl__tok_bpe(f->tok, b, len, &nb, PL__TOK_BPE_HEAP) == 0) {
        if (na != nb || memcmp(a, b, na * sizeof *a) != 0) {
            __builtin_trap();
        }
    }
    core_free(a);
    core_free(b);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    uint8_t opt = data[0];
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    pl_tok_t *tok;
    if (pl_tok_load_buffer(vocab, sizeof vocab - 1, &tok) != 0) {
        __builtin_trap();
    }
    if (pl_tok_set_cache(tok, (opt & 1) ? 0 : 128) != 0) {
        __builtin_trap();
    }
    uint32_t vs = pl_tok_vocab_size(tok);
    size_t n = 0;
    uint32_t *ids = core_malloc((len + 1) * sizeof *ids);
    if (ids == NULL) {
        pl_tok_free(tok);
        return 0;
    }
    int rc = pl_tok_encode(tok, text, len, ids, len + 1, &n);
    uint32_t row[PL_TOK_CONTEXT];
    int trunc;
    size_t used;
    int rrc = pl_tok_row(tok, text, len, row, &trunc, &used);
    if (rc != rrc || (rc != 0 && rc != CORE_EBAD_UTF8 && rc != CORE_ERR(ENOMEM))) {
        __builtin_trap();
    }
    if (rc == 0) {
        /* Lowercasing can lengthen the text (U+0130 -> "i" U+0307), so no bound on n from len
         * here; the bound by the cleaned length is checked below. */
        if (used < 2 || used > PL_TOK_CONTEXT) {
            __builtin_trap();
        }
        size_t k = used - 2;
        if (row[0] != pl_tok_sot(tok) || row[used - 1] != pl_tok_eot(tok) ||
            (trunc != 0) != (n > PL_TOK_CONTEXT - 2) || k != (n < 75 ? n : 75) ||
            memcmp(row + 1, ids, k * sizeof *ids) != 0) {
            __builtin_trap();
        }
        for (size_t i = 0; i < n; i++) {
            if (ids[i] >= vs) {
                __builtin_trap();
            }
        }
        for (size_t i = used; i < PL_TOK_CONTEXT; i++) {
            if (row[i] != 0) {
                __builtin_trap();
            }
        }
        uint32_t label[PL_TOK_CONTEXT];
        size_t nl;
        pl_tok_label(row, label, &nl);
        if (nl == 0 || nl > PL_TOK_CONTEXT) {
            __builtin_trap();
        }
        for (size_t i = 1; i < nl; i++) {
            if (label[i - 1] >= label[i]) {
                __builtin_trap();
            }
        }
        size_t dl;
        char small[8];
        if (pl_tok_decode(tok, ids, n, small, sizeof small, &dl) != 0) {
            __builtin_trap();
        }
        char *clean;
        size_t cl;
        if (pl_tok_clean(text, len, &clean, &cl) == 0) {
            /* Each pre-token gives at least one id and at most its byte count. */
            if (n > cl) {
                __builtin_trap();
            }
            fz_t f = {tok};
            if ((opt & 4) && pl_tok_pretokenize(clean, cl, piece_cb, &f) != 0) {
                __builtin_trap();
            }
            core_free(clean);
        }
    }
    if (opt & 2) {
        /* The input as little-endian ids: decode must not crash, and must refuse unknown ids. */
        size_t ni = len / 4;
        uint32_t *v = core_malloc((ni + 1) * sizeof *v);
        if (v != NULL) {
            int bad = 0;
            for (size_t i = 0; i < ni; i++) {
                v[i] = (uint32_t)data[1 + 4 * i] | (uint32_t)data[2 + 4 * i] << 8 |
                       (uint32_t)data[3 + 4 * i] << 16 | (uint32_t)data[4 + 4 * i] << 24;
                v[i] %= vs + 2; /* mostly valid, sometimes not */
                bad |= v[i] >= vs;
            }
            char out[64];
            size_t dl;
            int drc = pl_tok_decode(tok, v, ni, out, sizeof out, &dl);
            if (drc != (bad ? CORE_ENOT_FOUND : 0)) {
                __builtin_trap();
            }
            core_free(v);
        }
    }
    core_free(ids);
    pl_tok_free(tok);
    return 0;
}
