/* Caption checks of ingest: UTF-8 validation, NUL, blank, strip, cut at a character boundary. */
#include "../../pipeline/store/ingest_internal.h"
#include "pipeline/ingest.h"
#include "pipeline/record.h"
#include "t.h"

static uint32_t check(const char *s, size_t n, uint32_t cap, int rej, const char **out,
                      size_t *out_len, uint32_t *flags)
{
    *out = s;
    *out_len = n;
    *flags = 0;
    return pl__caption_check(out, out_len, cap, rej, flags);
}

T_CASE(caption_utf8_validator)
{
    T_ASSERT(pl__utf8_valid((const uint8_t *)"abc", 3));
    T_ASSERT(pl__utf8_valid((const uint8_t *)"caf\xc3\xa9 \xf0\x9f\x98\x80", 10));
    static const char *const bad[] = {
        "\xff\xfe",
        "\xe9",
        "\xc3\x28",
        "\xed\xa0\x80" /* surrogate */,
        "\xf8\x88\x80\x80\x80",
        "\xc0\xaf" /* overlong */,
        "\xe0\x80\xaf",
        "\xf4\x90\x80\x80",
        "\xe2\x82" /* cut */,
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (pl__utf8_valid((const uint8_t *)bad[i], strlen(bad[i]))) {
            T_FAIL("bad sequence %zu accepted", i);
        }
    }
}

T_CASE(caption_reasons)
{
    const char *o;
    size_t n;
    uint32_t f;
    T_ASSERT_EQ(check("", 0, 100, 0, &o, &n, &f), PL_REJECT_CAPTION_EMPTY);
    T_ASSERT_EQ(check("a\0b", 3, 100, 0, &o, &n, &f), PL_REJECT_CAPTION_NUL);
    T_ASSERT_EQ(check("a\xff", 2, 100, 0, &o, &n, &f), PL_REJECT_CAPTION_UTF8);
    T_ASSERT_EQ(check(" \t\r\n  \n", 7, 100, 0, &o, &n, &f), PL_REJECT_CAPTION_BLANK);
    /* U+3000 ideographic space and U+00A0 are whitespace too (Python str.isspace) */
    T_ASSERT_EQ(check("\xe3\x80\x80\xc2\xa0", 5, 100, 0, &o, &n, &f), PL_REJECT_CAPTION_BLANK);
    T_ASSERT_EQ(check("  a cat \n", 9, 100, 0, &o, &n, &f), PL_REJECT_NONE);
    T_ASSERT_EQ(n, 5);
    T_ASSERT(memcmp(o, "a cat", 5) == 0);
    T_ASSERT_EQ(f, 0);
}

T_CASE(caption_cut_at_char_boundary)
{
    const char *o;
    size_t n;
    uint32_t f;
    /* "ab" + U+00E9 (2 bytes) + "cd": a cap of 3 falls inside the é: cut to "ab" */
    const char *s = "ab\xc3\xa9"
                    "cd";
    T_ASSERT_EQ(check(s, 6, 3, 0, &o, &n, &f), PL_REJECT_NONE);
    T_ASSERT_EQ(n, 2);
    T_ASSERT_EQ(f, PL_REC_CAPTION_TRUNCATED);
    T_ASSERT_EQ(check(s, 6, 4, 0, &o, &n, &f), PL_REJECT_NONE);
    T_ASSERT_EQ(n, 4);
    /* a 4-byte emoji straddling the cap */
    const char *e = "x \xf0\x9f\x98\x80 y";
    for (uint32_t cap = 2; cap < 6; cap++) {
        T_ASSERT_EQ(check(e, strlen(e), cap, 0, &o, &n, &f), PL_REJECT_NONE);
        T_ASSERT_EQ(n, 1); /* "x" (the space before the emoji is stripped) */
        T_ASSERT(pl__utf8_valid((const uint8_t *)o, n));
    }
    /* the cut text is stripped again, and cutting is idempotent */
    T_ASSERT_EQ(check("hello world", 11, 6, 0, &o, &n, &f), PL_REJECT_NONE);
    T_ASSERT_EQ(n, 5);
    T_ASSERT_EQ(check(o, n, 6, 0, &o, &n, &f), PL_REJECT_NONE);
    T_ASSERT_EQ(n, 5);
    T_ASSERT_EQ(f, 0);
    /* reject policy */
    T_ASSERT_EQ(check("hello world", 11, 6, 1, &o, &n, &f), PL_REJECT_CAPTION_TOO_LONG);
    T_ASSERT_EQ(check("hello", 5, 6, 1, &o, &n, &f), PL_REJECT_NONE);
}

T_CASE(caption_reject_names_round_trip)
{
    for (uint32_t r = 0; r < PL_REJECT__COUNT; r++) {
        T_ASSERT_EQ(pl_reject_from_name(pl_reject_name(r)), (int)r);
    }
    T_ASSERT_STR_EQ(pl_reject_name(PL_REJECT__COUNT), "?");
    T_ASSERT_EQ(pl_reject_from_name("nope"), -1);
}

T_MAIN()
