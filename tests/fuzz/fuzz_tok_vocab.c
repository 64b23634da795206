/* Fuzz target: the merges-file loader (gzip or plain, CLIP or sc-tok header) over arbitrary
 * bytes. A file that loads must give a consistent vocabulary that encodes text. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/err.h"
#include "pipeline/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_tok_t *tok = NULL;
    int rc = pl_tok_load_buffer(data, size, &tok);
    if (rc != 0) {
        if (tok != NULL || (rc != CORE_ECORRUPT && rc != CORE_ETOO_LARGE && rc != -ENOMEM)) {
            __builtin_trap();
        }
        return 0;
    }
    uint32_t vs = pl_tok_vocab_size(tok);
    if (vs != 512 + pl_tok_n_merges(tok) + 2 || pl_tok_sot(tok) != vs - 2 ||
        strlen(pl_tok_hash(tok)) != 64 || pl_tok_symbol(tok, vs) != NULL ||
        strcmp(pl_tok_symbol(tok, vs - 1), "<end_of_text>") != 0) {
        __builtin_trap();
    }
    static const char text[] = "the cat's inn &amp; caf\xc3\xa9 aaaaaaa <start_of_text>";
    uint32_t ids[64];
    size_t n;
    if (pl_tok_encode(tok, text, sizeof text - 1, ids, 64, &n) != 0 || n > 64) {
        __builtin_trap();
    }
    for (size_t i = 0; i < n; i++) {
        if (ids[i] >= vs) {
            __builtin_trap();
        }
    }
    char out[128];
    size_t dl;
    if (pl_tok_decode(tok, ids, n, out, sizeof out, &dl) != 0 ||
        strcmp(out, "the cat 's inn & caf\xc3\xa9 aaaaaaa <start_of_text>") != 0) {
        __builtin_trap();
    }
    pl_tok_free(tok);
    return 0;
}
