/* Fuzz target: the sample-record decoder (and caption decompression) over arbitrary bytes. A
 * decoded record must have every view inside the input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "pipeline/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pl_record_t r;
    if (pl_record_decode(data, size, &r) == 0) {
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
    pl_record_thread_cleanup();
    return 0;
}
