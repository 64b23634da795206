/* Sampler: bijection, rank slices disjoint and covering, determinism, epochs differ. */
#include "core/alloc.h"
#include "pipeline/sampler.h"
#include "t.h"

T_CASE(perm_is_bijection)
{
    static const uint64_t sizes[] = {1, 2, 3, 4, 5, 7, 16, 17, 100, 255, 256, 257, 1000, 4097};
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint64_t n = sizes[k];
        uint8_t *seen = core_calloc(n, 1);
        pl_perm_t p;
        pl_perm_init(&p, n, 42, 3);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t v = pl_perm_apply(&p, i);
            T_ASSERT(v < n);
            T_ASSERT_EQ(seen[v], 0);
            seen[v] = 1;
        }
        core_free(seen);
    }
}

T_CASE(perm_mixes_and_depends_on_seed_and_epoch)
{
    pl_perm_t a, b, c;
    pl_perm_init(&a, 10000, 1, 0);
    pl_perm_init(&b, 10000, 1, 1);
    pl_perm_init(&c, 10000, 2, 0);
    int same_ab = 0, same_ac = 0, fixed = 0;
    for (uint64_t i = 0; i < 10000; i++) {
        uint64_t x = pl_perm_apply(&a, i);
        same_ab += x == pl_perm_apply(&b, i);
        same_ac += x == pl_perm_apply(&c, i);
        fixed += x == i;
    }
    /* A random permutation agrees with another in ~1 place; allow a little slack. */
    T_ASSERT(same_ab < 20);
    T_ASSERT(same_ac < 20);
    T_ASSERT(fixed < 20);
    /* Deterministic. */
    pl_perm_t a2;
    pl_perm_init(&a2, 10000, 1, 0);
    for (uint64_t i = 0; i < 10000; i += 97) {
        T_ASSERT_U64_EQ(pl_perm_apply(&a, i), pl_perm_apply(&a2, i));
    }
}

T_CASE(ranks_disjoint_and_equal)
{
    const uint64_t n = 1003;
    const uint32_t world = 3, batch = 16;
    uint8_t *seen = core_calloc(n, 1);
    uint64_t total = 0;
    for (uint32_t r = 0; r < world; r++) {
        pl_sampler_t s;
        T_ASSERT_OK(pl_sampler_init(&s, 9, 0, n, r, world, batch));
        T_ASSERT_EQ(s.epoch_batches, n / (world * batch));
        T_ASSERT_EQ(s.per_rank, s.epoch_batches * batch);
        for (uint64_t pos = 0; pos < s.per_rank; pos++) {
            uint64_t id = pl_sampler_record(&s, pos);
            T_ASSERT(id < n);
            T_ASSERT_EQ(seen[id], 0);
            seen[id] = 1;
            total++;
        }
    }
    T_ASSERT_EQ(total, (n / (world * batch)) * world * batch);
    core_free(seen);
    pl_sampler_t s;
    T_ASSERT_ERR(pl_sampler_init(&s, 0, 0, n, 3, 3, 1), CORE_ECONFIG);
    T_ASSERT_ERR(pl_sampler_init(&s, 0, 0, n, 0, 0, 1), CORE_ECONFIG);
    T_ASSERT_ERR(pl_sampler_init(&s, 0, 0, n, 0, 1, 0), CORE_ECONFIG);
}

T_CASE(single_rank_covers_whole_epoch_when_divisible)
{
    pl_sampler_t s;
    T_ASSERT_OK(pl_sampler_init(&s, 5, 2, 640, 0, 1, 64));
    T_ASSERT_EQ(s.epoch_batches, 10);
    uint8_t seen[640] = {0};
    for (uint64_t pos = 0; pos < 640; pos++) {
        seen[pl_sampler_record(&s, pos)]++;
    }
    for (int i = 0; i < 640; i++) {
        T_ASSERT_EQ(seen[i], 1);
    }
}

T_MAIN()
