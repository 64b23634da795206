/* Helpers shared by the tokenizer tests: loading the CLIP vocabulary from ../shared and reading
 * golden.tsv rows. */
#ifndef TOK_UTIL_H
#define TOK_UTIL_H

#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "pipeline/tok.h"
#include "t.h"

#define TOK_CLIP_PATH "tokenizer/bpe_simple_vocab_16e6.txt.gz"
#define TOK_GOLDEN_PATH "tokenizer/golden.tsv"

static inline pl_tok_t *tok_clip(void)
{
    pl_tok_t *tok = NULL;
    T_ASSERT_OK(pl_tok_load(t_shared(TOK_CLIP_PATH), &tok));
    return tok;
}

typedef struct {
    char *text; /* unescaped, core_malloc'd; may contain NUL bytes */
    size_t len;
    uint32_t ids[PL_TOK_CONTEXT];
    size_t n_ids;
    size_t lineno;
} tok_golden_row_t;

/* Parses golden.tsv (escapes \\ \t \n \r; '#' lines are comments). Returns the row count; *rows
 * is core_malloc'd, free with tok_golden_free. */
static inline size_t tok_golden_load(tok_golden_row_t **rows)
{
    size_t len;
    char *buf = t_read_file(t_shared(TOK_GOLDEN_PATH), &len);
    size_t cap = 16384, n = 0, lineno = 0;
    tok_golden_row_t *r = core_malloc_or_die(cap * sizeof *r);
    for (char *p = buf; p < buf + len;) {
        char *e = memchr(p, '\n', (size_t)(buf + len - p));
        if (e == NULL) {
            e = buf + len;
        }
        lineno++;
        if (*p != '#') {
            char *tab = memchr(p, '\t', (size_t)(e - p));
            T_ASSERT(tab != NULL);
            if (n == cap) {
                cap *= 2;
                r = core_realloc_or_die(r, cap * sizeof *r);
            }
            tok_golden_row_t *g = &r[n++];
            g->lineno = lineno;
            g->text = core_malloc_or_die((size_t)(tab - p) + 1);
            g->len = 0;
            for (char *q = p; q < tab; q++) {
                char c = *q;
                if (c == '\\' && q + 1 < tab) {
                    q++;
                    c = *q == 't' ? '\t' : *q == 'n' ? '\n' : *q == 'r' ? '\r' : *q;
                }
                g->text[g->len++] = c;
            }
            g->text[g->len] = '\0';
            g->n_ids = 0;
            for (char *q = tab + 1; q < e;) {
                char *end;
                unsigned long v = strtoul(q, &end, 10);
                T_ASSERT(end != q && g->n_ids < PL_TOK_CONTEXT);
                g->ids[g->n_ids++] = (uint32_t)v;
                q = end;
                while (q < e && *q == ' ') {
                    q++;
                }
            }
        }
        p = e + 1;
    }
    core_free(buf);
    *rows = r;
    return n;
}

static inline void tok_golden_free(tok_golden_row_t *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        core_free(rows[i].text);
    }
    core_free(rows);
}

/* Encodes a NUL-terminated ASCII/UTF-8 string; ids into a buffer of cap. */
static inline size_t tok_enc(const pl_tok_t *tok, const char *s, uint32_t *ids, size_t cap)
{
    size_t n;
    T_ASSERT_OK(pl_tok_encode(tok, s, strlen(s), ids, cap, &n));
    T_ASSERT(n <= cap);
    return n;
}

#endif
