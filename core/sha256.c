/* SHA-256 through Nettle, whose x86-64 build uses the SHA extensions where the CPU has them
 * (about 8x libmd's portable code here: 1.26 GB/s against 0.16), which matters because ingest
 * hashes the head and tail of every tar it reads and the tokenizer its whole merges file. */
#include "core/sha256.h"

#include <nettle/sha2.h>

_Static_assert(sizeof(struct sha256_ctx) <= sizeof(core_sha256_t),
               "core_sha256_t too small for Nettle's sha256_ctx");
_Static_assert(_Alignof(struct sha256_ctx) <= _Alignof(core_sha256_t),
               "core_sha256_t under-aligned for Nettle's sha256_ctx");

void core_sha256_init(core_sha256_t *h) { sha256_init((struct sha256_ctx *)(void *)h); }

void core_sha256_update(core_sha256_t *h, const void *data, size_t len)
{
    sha256_update((struct sha256_ctx *)(void *)h, len, data);
}

void core_sha256_final(core_sha256_t *h, uint8_t out[CORE_SHA256_LEN])
{
    sha256_digest((struct sha256_ctx *)(void *)h, CORE_SHA256_LEN, out);
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
