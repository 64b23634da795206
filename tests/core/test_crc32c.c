/* CRC32C: published check values, chaining, hardware vs table. */
#include "core/crc32c.h"
#include "core/rng.h"
#include "t.h"

T_CASE(crc32c_check_value)
{
    /* The standard check value for "123456789" (RFC 3720 B.4 family). */
    T_ASSERT_U64_EQ(core_crc32c(0, "123456789", 9), 0xE3069283u);
    T_ASSERT_U64_EQ(core_crc32c_sw(0, "123456789", 9), 0xE3069283u);
    T_ASSERT_U64_EQ(core_crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    T_ASSERT_U64_EQ(core_crc32c(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    uint8_t ones[32];
    memset(ones, 0xff, sizeof ones);
    T_ASSERT_U64_EQ(core_crc32c(0, ones, 32), 0x62A8AB43u);
}

T_CASE(crc32c_chaining_and_unaligned)
{
    uint8_t buf[1031];
    core_rng_t r;
    core_rng_init(&r, 7, 0);
    for (size_t i = 0; i < sizeof buf; i++) {
        buf[i] = (uint8_t)core_rng_u32(&r);
    }
    for (size_t off = 0; off < 9; off++) {
        for (size_t len = 0; len + off <= sizeof buf; len += 37) {
            uint32_t whole = core_crc32c_sw(0, buf + off, len);
            T_ASSERT_U64_EQ(core_crc32c(0, buf + off, len), whole);
            size_t cut = len / 3;
            uint32_t part = core_crc32c(0, buf + off, cut);
            T_ASSERT_U64_EQ(core_crc32c(part, buf + off + cut, len - cut), whole);
        }
    }
}

T_MAIN()
