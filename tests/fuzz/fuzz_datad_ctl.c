/* Fuzz target: sc-datad's control request parser and the uid/gid list parser. */
#include <stddef.h>
#include <stdint.h>

#include "datad_cfg.h"
#include "datad_ctlparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    datad_ctl_req_t req;
    (void)datad_ctl_parse((const char *)data, size, &req, NULL);
    char s[256];
    size_t n = size < sizeof s - 1 ? size : sizeof s - 1;
    for (size_t i = 0; i < n; i++) {
        s[i] = data[i] ? (char)data[i] : ' ';
    }
    s[n] = '\0';
    uint32_t ids[8];
    unsigned k = 0;
    (void)datad_parse_id_list(s, ids, 8, &k);
    return 0;
}
