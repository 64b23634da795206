/* CRC32C (Castagnoli), as used by iSCSI, ext4 and LevelDB: hardware crc32 instructions when the
 * CPU has SSE4.2, a slicing table otherwise. Thread-safe. */
#ifndef CORE_CRC32C_H
#define CORE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: crc = core_crc32c(0, a, n); crc = core_crc32c(crc, b, m) equals one call over
 * a||b. */
uint32_t core_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable table implementation (the reference the hardware path is tested against). */
uint32_t core_crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
