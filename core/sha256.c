/* SHA-256 through libmd. */
#include "core/sha256.h"

#include <sys/types.h>

#include <sha2.h>

_Static_assert(sizeof(SHA2_CTX) <= sizeof(core_sha256_t), "core_sha256_t too small for SHA2_CTX");

void core_sha256_init(core_sha256_t *h) { SHA256Init((SHA2_CTX *)(void *)h); }

void core_sha256_update(core_sha256_t *h, const void *data, size_t len)
{
    SHA256Update((SHA2_CTX *)(void *)h, data, len);
}

void core_sha256_final(core_sha256_t *h, uint8_t out[CORE_SHA256_LEN])
{
    SHA256Final(out, (SHA2_CTX *)(void *)h);
}

void core_sha256(const void *data, size_t len, uint8_t out[CORE_SHA256_LEN])
{
    core_sha256_t h;
    core_sha256_init(&h);
    core_sha256_update(&h, data, len);
    core_sha256_final(&h, out);
}

void core_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}
