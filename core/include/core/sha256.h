/* SHA-256 over byte buffers (Nettle underneath), with a hex helper. Thread-safe. */
#ifndef CORE_SHA256_H
#define CORE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define CORE_SHA256_LEN 32
#define CORE_SHA256_HEX_LEN 65 /* 64 hex digits + NUL */

typedef struct core_sha256_s {
    uint64_t opaque[32]; /* large enough for Nettle's sha256_ctx; checked at compile time */
} core_sha256_t;

void core_sha256_init(core_sha256_t *h);
void core_sha256_update(core_sha256_t *h, const void *data, size_t len);
void core_sha256_final(core_sha256_t *h, uint8_t out[CORE_SHA256_LEN]);

void core_sha256(const void *data, size_t len, uint8_t out[CORE_SHA256_LEN]);
void core_hex(const uint8_t *bytes, size_t n, char *out /* 2n+1 */);

#endif
