/* Error names and messages come from one X-macro list. */
#include "core/alloc.h"
#include "core/err.h"
#include "t.h"

T_CASE(err_names_and_messages)
{
    T_ASSERT_STR_EQ(core_err_name(CORE_ECORRUPT), "CORRUPT");
    T_ASSERT_STR_EQ(core_strerror(CORE_ECORRUPT), "data is corrupt");
    T_ASSERT_STR_EQ(core_err_name(CORE_ENEED_MORE), "NEED_MORE");
    T_ASSERT_STR_EQ(core_err_name(CORE_ERR(ENOENT)), "ENOENT");
    T_ASSERT_STR_EQ(core_strerror(CORE_ERR(ENOENT)), "No such file or directory");
    T_ASSERT_STR_EQ(core_err_name(0), "OK");
    T_ASSERT_STR_EQ(core_err_name(-5000), "UNKNOWN");
    T_ASSERT(CORE_ENEED_MORE < -4096);
}

T_CASE(err_codes_unique)
{
    static const int codes[] = {
#define X(name, val, msg) val,
        CORE_ERRNO_MAP(X)
#undef X
    };
    size_t n = sizeof codes / sizeof codes[0];
    for (size_t i = 0; i < n; i++) {
        T_ASSERT(codes[i] < -4096);
        for (size_t j = i + 1; j < n; j++) {
            T_ASSERT(codes[i] != codes[j]);
        }
    }
}

T_CASE(size_arithmetic_overflow)
{
    size_t out = 0;
    T_ASSERT_OK(core_size_mul(1000, 1000, &out));
    T_ASSERT_EQ(out, 1000000);
    T_ASSERT_ERR(core_size_mul(SIZE_MAX / 2, 3, &out), CORE_ETOO_LARGE);
    T_ASSERT_ERR(core_size_add(SIZE_MAX, 1, &out), CORE_ETOO_LARGE);
}

T_CASE(alloc_counts_live)
{
    int64_t before = core_alloc_live();
    void *p = core_malloc(10);
    char *s = core_strdup("abc");
    T_ASSERT_EQ(core_alloc_live(), before + 2);
    core_free(p);
    core_free(s);
    core_free(NULL);
    T_ASSERT_EQ(core_alloc_live(), before);
}

T_MAIN()
