/* SHA-256 against FIPS 180-2 vectors. */
#include "core/sha256.h"
#include "t.h"

T_CASE(sha256_fips_vectors)
{
    uint8_t d[32];
    char hex[65];
    core_sha256("abc", 3, d);
    core_hex(d, 32, hex);
    T_ASSERT_STR_EQ(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    core_sha256("", 0, d);
    core_hex(d, 32, hex);
    T_ASSERT_STR_EQ(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    core_sha256_t h;
    core_sha256_init(&h);
    core_sha256_update(&h, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 20);
    core_sha256_update(&h, "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq" + 20, 36);
    core_sha256_final(&h, d);
    core_hex(d, 32, hex);
    T_ASSERT_STR_EQ(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

T_MAIN()
