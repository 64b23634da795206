/* Fuzz target: ingest's caption check over arbitrary bytes. An accepted caption must lie inside the
 * input, be valid UTF-8, fit the cap, contain no NUL and not start or end with ASCII whitespace. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../pipeline/store/ingest_internal.h"
#include "pipeline/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint32_t cap = data[0]; /* the first byte is the cap (0 = none) */
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    for (int rej = 0; rej < 2; rej++) {
        const char *o = s;
        size_t on = n;
        uint32_t flags = 0;
        uint32_t r = pl__caption_check(&o, &on, cap, rej, &flags);
        if (r >= PL_REJECT__COUNT) {
            abort();
        }
        if (r == PL_REJECT_NONE) {
            if (o < s || o + on > s + n || on == 0 || (cap && on > cap) ||
                !pl__utf8_valid((const uint8_t *)o, on) || memchr(o, 0, on) != NULL ||
                o[0] == ' ' || o[on - 1] == ' ' || o[on - 1] == '\n') {
                abort();
            }
        }
    }
    return 0;
}
