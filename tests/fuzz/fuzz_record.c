/* Fuzz target: the sample-record decoder (and caption decompression) over arbitrary bytes, once as
 * given and once with the trailing CRC32C recomputed, so that the structural checks behind the CRC
 * are exercised too. A decoded record must have every view inside the input, and the header-only
 * member-key peek must agree with it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "pipeline/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size)
{
    pl_record_t r;
    /* the header-only key peek (index lookups run it on stored bytes) stays inside the input,
     * and agrees with the full decoder whenever that accepts the record */
    const char *pk = NULL;
    size_t pkl = 0;
    int peek = pl_record_member_key(data, size, &pk, &pkl);
    if (peek == 0 && ((const uint8_t *)pk < data || (const uint8_t *)pk + pkl > data + size)) {
        abort();
    }
    if (pl_record_decode(data, size, &r) == 0) {
        if (peek != 0 || pk != r.member_key || pkl != r.member_key_len) {
            abort();
        }
        const uint8_t *end = data + size;
        if (r.image + r.image_len > end || r.caption_z + r.caption_z_len > end ||
            (const uint8_t *)r.member_key + r.member_key_len > end ||
            (const uint8_t *)r.source_file + r.source_file_len > end) {
            abort();
        }
        char *cap = core_malloc(r.caption_len + 1);
        if (cap) {
            (void)pl_record_caption(&r, cap, r.caption_len + 1);
            core_free(cap);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    if (size >= 8) {
        /* exactly sized copy, so reads past the end are caught */
        uint8_t *copy = malloc(size);
        if (copy) {
            memcpy(copy, data, size);
            uint32_t crc = core_crc32c(0, copy, size - 4);
            for (int i = 0; i < 4; i++) {
                copy[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
            }
            one(copy, size);
            free(copy);
        }
    }
    pl_record_thread_cleanup();
    return 0;
}
