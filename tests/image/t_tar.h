/* Tiny USTAR reader for the image tests: finds a member by name in a whole tar file held in memory.
 * Only what the shared test tars use (regular files; name field plus the ustar prefix). */
#ifndef T_TAR_H
#define T_TAR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Returns 1 and sets data and len (pointing into tar) if `name` is found, else 0. */
static inline int t_tar_find(const uint8_t *tar, size_t tar_len, const char *name,
                             const uint8_t **data, size_t *len)
{
    size_t pos = 0;
    while (pos + 512 <= tar_len) {
        const uint8_t *h = tar + pos;
        if (h[0] == 0) {
            return 0;
        }
        char full[260];
        char nm[101], pre[156];
        memcpy(nm, h, 100);
        nm[100] = 0;
        memcpy(pre, h + 345, 155);
        pre[155] = 0;
        if (pre[0] != 0) {
            snprintf(full, sizeof full, "%s/%s", pre, nm);
        } else {
            snprintf(full, sizeof full, "%s", nm);
        }
        size_t size = 0;
        for (int i = 124; i < 136 && h[i] >= '0' && h[i] <= '7'; i++) {
            size = size * 8 + (size_t)(h[i] - '0');
        }
        pos += 512;
        if (pos + size > tar_len) {
            return 0;
        }
        if (strcmp(full, name) == 0) {
            *data = tar + pos;
            *len = size;
            return 1;
        }
        pos += (size + 511) / 512 * 512;
    }
    return 0;
}

#endif
