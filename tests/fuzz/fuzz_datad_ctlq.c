/* Fuzz target: replaying sc-datad's journal of sc-ctl-queued files (datad__ctlq_parse). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "datad.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    datad_ctlq_t q;
    memset(&q, 0, sizeof q);
    unsigned bad = 0;
    (void)datad__ctlq_parse(&q, (const char *)data, size, &bad);
    for (size_t i = 0; i < q.n; i++) {
        if (q.paths[i][0] != '/') {
            __builtin_trap(); /* only absolute paths may come back */
        }
        core_free(q.paths[i]);
    }
    core_free(q.paths);
    return 0;
}
