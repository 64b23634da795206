/* Shard store: create/open, append + get + walk, shard rotation, map growth, progress (newest
 * wins), rejects (overwrite), vocabulary check, single writer, digest properties, the member-key
 * index. */
#include <lmdb.h>
#include <pthread.h>
#include <unistd.h>

#include "store_util.h"

#define HASH "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static pl_store_t *mk(const char *dir, const pl_store_caps_t *caps)
{
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    T_ASSERT_OK(pl_store_create(dir, HASH, "/x/vocab.txt.gz", &pol, caps));
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDWR, &st));
    return st;
}

typedef struct {
    uint64_t n, next;
    int bad;
} walk_t;

static int walk_cb(void *ud, uint64_t seq, const uint8_t *val, size_t len)
{
    walk_t *w = ud;
    pl_record_t r;
    if (seq != w->next || pl_record_decode(val, len, &r) != 0 || r.sample_index != seq) {
        w->bad++;
    }
    w->next++;
    w->n++;
    return 0;
}

T_CASE(store_create_open_meta)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_t *st = mk(dir, NULL);
    T_ASSERT_STR_EQ(pl_store_vocab_hash(st), HASH);
    T_ASSERT_STR_EQ(pl_store_vocab_path(st), "/x/vocab.txt.gz");
    T_ASSERT_EQ(pl_store_policy(st)->verify, PL_VERIFY_FULL);
    T_ASSERT_EQ(pl_store_policy(st)->caption_max_bytes, 4096);
    T_ASSERT_EQ(pl_store_count(st), 0);
    T_ASSERT_OK(pl_store_check_vocab(st, HASH));
    T_ASSERT_ERR(pl_store_check_vocab(st, "ffff"), CORE_EMISMATCH);
    /* a second writer is refused while the first holds the store */
    pl_store_t *st2 = NULL;
    T_ASSERT_ERR(pl_store_open(dir, PL_STORE_RDWR, &st2), CORE_ERR(EWOULDBLOCK));
    pl_store_close(st);
    /* creating over an existing store fails */
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    T_ASSERT_ERR(pl_store_create(dir, HASH, NULL, &pol, NULL), CORE_ERR(EEXIST));
    char nodir[600];
    snprintf(nodir, sizeof(nodir), "%s/none", t_tmpdir());
    T_ASSERT_ERR(pl_store_open(nodir, PL_STORE_RDONLY, &st2), CORE_ENOT_FOUND);
}

T_CASE(store_append_get_walk_reopen)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_t *st = mk(dir, NULL);
    T_ASSERT_OK(tst_commit(st, 1, 0, 100, 200, 0));
    T_ASSERT_OK(tst_commit(st, 1, 100, 250, 200, 1));
    T_ASSERT_EQ(pl_store_count(st), 250);
    pl_store_close(st);
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    T_ASSERT_EQ(pl_store_count(st), 250);
    pl_store_reader_t *rd = NULL;
    T_ASSERT_OK(pl_store_reader_open(st, &rd));
    const uint8_t *v;
    size_t len;
    pl_record_t r;
    T_ASSERT_OK(pl_store_get(rd, 137, &v, &len));
    T_ASSERT_OK(pl_record_decode(v, len, &r));
    T_ASSERT_U64_EQ(r.sample_index, 137);
    T_ASSERT_ERR(pl_store_get(rd, 250, &v, &len), CORE_ENOT_FOUND);
    pl_store_reader_close(rd);
    walk_t w = {0, 0, 0};
    T_ASSERT_OK(pl_store_foreach(st, walk_cb, &w));
    T_ASSERT_EQ(w.n, 250);
    T_ASSERT_EQ(w.bad, 0);
    uint8_t id[32];
    memset(id, 1, 32);
    pl_file_progress_t p;
    T_ASSERT_OK(pl_store_file_progress(st, id, &p));
    T_ASSERT_EQ(p.state, PL_FILE_DONE);
    T_ASSERT_U64_EQ(p.next_sample, 250);
    T_ASSERT_STR_EQ(p.name, "file-1.tar");
    memset(id, 2, 32);
    T_ASSERT_ERR(pl_store_file_progress(st, id, &p), CORE_ENOT_FOUND);
    pl_store_close(st);
    pl_record_thread_cleanup();
}

T_CASE(store_rotation_by_records_and_progress_newest)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_caps_t caps;
    pl_store_caps_default(&caps);
    caps.shard_max_records = 40;
    pl_store_t *st = mk(dir, &caps);
    for (uint64_t i = 0; i < 200; i += 25) {
        T_ASSERT_OK(tst_commit(st, 7, i, i + 25, 64, i + 25 == 200));
    }
    /* closes at 50, 100, 150, 200 -> shards 0..4 (the last empty) */
    T_ASSERT_EQ(pl_store_n_shards(st), 5);
    uint64_t f, nx;
    T_ASSERT_OK(pl_store_shard_info(st, 1, NULL, &f, &nx, NULL));
    T_ASSERT_U64_EQ(f, 50);
    T_ASSERT_U64_EQ(nx, 100);
    pl_store_close(st);
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    T_ASSERT_EQ(pl_store_count(st), 200);
    T_ASSERT_EQ(pl_store_n_shards(st), 5);
    walk_t w = {0, 0, 0};
    T_ASSERT_OK(pl_store_foreach(st, walk_cb, &w));
    T_ASSERT_EQ(w.n, 200);
    T_ASSERT_EQ(w.bad, 0);
    pl_store_reader_t *rd = NULL;
    T_ASSERT_OK(pl_store_reader_open(st, &rd));
    for (uint64_t s = 0; s < 200; s += 13) {
        const uint8_t *v;
        size_t len;
        pl_record_t r;
        T_ASSERT_OK(pl_store_get(rd, s, &v, &len));
        T_ASSERT_OK(pl_record_decode(v, len, &r));
        T_ASSERT_U64_EQ(r.sample_index, s);
    }
    pl_store_reader_close(rd);
    uint8_t id[32];
    memset(id, 7, 32);
    pl_file_progress_t p;
    T_ASSERT_OK(pl_store_file_progress(st, id, &p));
    T_ASSERT_U64_EQ(p.next_sample, 200); /* the newest shard's entry wins */
    T_ASSERT_EQ(p.state, PL_FILE_DONE);
    pl_store_close(st);
    pl_record_thread_cleanup();
}

T_CASE(store_map_full_grows)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_caps_t caps;
    pl_store_caps_default(&caps);
    caps.map_initial_bytes = 1u << 20; /* 1 MiB map, 6 MiB of records */
    caps.shard_max_bytes = 64u << 20;
    pl_store_t *st = mk(dir, &caps);
    for (uint64_t i = 0; i < 60; i += 10) {
        T_ASSERT_OK(tst_commit(st, 3, i, i + 10, 100000, 0));
    }
    T_ASSERT_EQ(pl_store_n_shards(st), 1);
    T_ASSERT_EQ(pl_store_count(st), 60);
    pl_store_close(st);
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    walk_t w = {0, 0, 0};
    T_ASSERT_OK(pl_store_foreach(st, walk_cb, &w));
    T_ASSERT_EQ(w.n, 60);
    T_ASSERT_EQ(w.bad, 0);
    pl_store_close(st);
    pl_record_thread_cleanup();
}

T_CASE(store_rotation_by_size)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_caps_t caps;
    pl_store_caps_default(&caps);
    caps.map_initial_bytes = 1u << 20;
    caps.shard_max_bytes = 1u << 20;
    pl_store_t *st = mk(dir, &caps);
    for (uint64_t i = 0; i < 40; i += 4) {
        T_ASSERT_OK(tst_commit(st, 3, i, i + 4, 100000, 0));
    }
    T_ASSERT(pl_store_n_shards(st) >= 3);
    T_ASSERT_EQ(pl_store_count(st), 40);
    pl_store_close(st);
    pl_record_thread_cleanup();
}

typedef struct {
    int n;
    uint32_t reasons[8];
    uint64_t idx[8];
} rej_t;

static int rej_cb(void *ud, const char *file, uint64_t idx, uint32_t reason, const char *key)
{
    rej_t *r = ud;
    T_ASSERT_STR_EQ(file, "f.tar");
    T_ASSERT(r->n < 8);
    r->idx[r->n] = idx;
    r->reasons[r->n++] = reason;
    (void)key;
    return 0;
}

T_CASE(store_rejects_overwrite)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_caps_t caps;
    pl_store_caps_default(&caps);
    caps.shard_max_records = 1;
    pl_store_t *st = mk(dir, &caps);
    pl_file_progress_t p;
    memset(&p, 0, sizeof(p));
    memset(p.id, 9, 32);
    snprintf(p.name, sizeof(p.name), "f.tar");
    pl_store_reject_t rj[2] = {{3, 2, "k3"}, {5, 4, "k5"}};
    size_t len;
    uint8_t *rec = tst_record(0, 16, &len);
    const uint8_t *recs[1] = {rec};
    pl_store_batch_t b = {recs, &len, 1, rj, 2, &p};
    p.next_sample = 6;
    T_ASSERT_OK(pl_store_commit(st, &b, NULL));
    /* the next batch lands in a new shard and relabels sample 3 */
    pl_store_reject_t rj2[1] = {{3, 9, "k3"}};
    pl_store_batch_t b2 = {NULL, NULL, 0, rj2, 1, &p};
    p.next_sample = 7;
    T_ASSERT_OK(pl_store_commit(st, &b2, NULL));
    T_ASSERT_EQ(pl_store_n_shards(st), 2);
    rej_t r;
    memset(&r, 0, sizeof(r));
    T_ASSERT_OK(pl_store_rejects(st, rej_cb, &r));
    T_ASSERT_EQ(r.n, 2);
    T_ASSERT_U64_EQ(r.idx[0], 3);
    T_ASSERT_EQ(r.reasons[0], 9);
    T_ASSERT_U64_EQ(r.idx[1], 5);
    T_ASSERT_EQ(r.reasons[1], 4);
    core_free(rec);
    pl_store_close(st);
    pl_record_thread_cleanup();
}

T_CASE(store_digest_order_independent_and_dup_sensitive)
{
    char d1[512], d2[512], d3[512];
    snprintf(d1, sizeof(d1), "%s/a", t_tmpdir());
    snprintf(d2, sizeof(d2), "%s/b", t_tmpdir());
    snprintf(d3, sizeof(d3), "%s/c", t_tmpdir());
    pl_store_t *a = mk(d1, NULL), *b = mk(d2, NULL), *c = mk(d3, NULL);
    T_ASSERT_OK(tst_commit(a, 1, 0, 30, 50, 1));
    T_ASSERT_OK(tst_commit(b, 1, 20, 30, 50, 0));
    T_ASSERT_OK(tst_commit(b, 2, 0, 20, 50, 1));
    T_ASSERT_OK(tst_commit(c, 1, 0, 30, 50, 0));
    T_ASSERT_OK(tst_commit(c, 2, 29, 30, 50, 1)); /* a duplicate of record 29 */
    char ha[65], hb[65], hc[65];
    uint64_t na, nb, nc;
    T_ASSERT_OK(pl_store_digest(a, ha, &na));
    T_ASSERT_OK(pl_store_digest(b, hb, &nb));
    T_ASSERT_OK(pl_store_digest(c, hc, &nc));
    T_ASSERT_STR_EQ(ha, hb);
    T_ASSERT_EQ(na, 30);
    T_ASSERT_EQ(nc, 31);
    T_ASSERT(strcmp(ha, hc) != 0);
    pl_store_close(a);
    pl_store_close(b);
    pl_store_close(c);
    pl_record_thread_cleanup();
}

T_CASE(store_file_identity)
{
    char p1[512], p2[512];
    snprintf(p1, sizeof(p1), "%s/f1", t_tmpdir());
    snprintf(p2, sizeof(p2), "%s/f2", t_tmpdir());
    size_t n = (3u << 20) + 17;
    uint8_t *buf = core_malloc(n);
    for (size_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)(i * 13);
    }
    FILE *f = fopen(p1, "wb");
    T_ASSERT(f && fwrite(buf, 1, n, f) == n);
    fclose(f);
    buf[n - 5] ^= 1; /* a change in the tail */
    f = fopen(p2, "wb");
    T_ASSERT(f && fwrite(buf, 1, n, f) == n);
    fclose(f);
    uint8_t a[32], b[32], c[32];
    uint64_t sz;
    T_ASSERT_OK(pl_store_file_identity(p1, a, &sz));
    T_ASSERT_U64_EQ(sz, n);
    T_ASSERT_OK(pl_store_file_identity(p2, b, &sz));
    T_ASSERT(memcmp(a, b, 32) != 0);
    char p3[600];
    snprintf(p3, sizeof(p3), "%s/renamed", t_tmpdir());
    T_ASSERT(rename(p1, p3) == 0);
    T_ASSERT_OK(pl_store_file_identity(p3, c, &sz));
    T_ASSERT(memcmp(a, c, 32) == 0);
    T_ASSERT_ERR(pl_store_file_identity(p1, c, &sz), CORE_ERR(ENOENT));
    core_free(buf);
}

/* Readers on several threads at once (MDB_NOTLS: each reader object owns its snapshots). */
typedef struct {
    pl_store_t *st;
    int id, bad;
} rthread_t;

static void *reader_main(void *arg)
{
    rthread_t *t = arg;
    pl_store_reader_t *rd = NULL;
    if (pl_store_reader_open(t->st, &rd) < 0) {
        t->bad++;
        return NULL;
    }
    for (int round = 0; round < 20; round++) {
        for (uint64_t s = (uint64_t)t->id; s < 300; s += 7) {
            const uint8_t *v;
            size_t len;
            pl_record_t r;
            if (pl_store_get(rd, s, &v, &len) < 0 || pl_record_decode(v, len, &r) < 0 ||
                r.sample_index != s) {
                t->bad++;
            }
        }
        pl_store_reader_reset(rd);
    }
    pl_store_reader_close(rd);
    return NULL;
}

T_CASE(store_find_key_index)
{
    /* Keys repeat across files (tst_record's key is the zero-padded sample index): the first
     * record in sequence order wins, across shard boundaries. */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/k", t_tmpdir());
    pl_store_caps_t caps;
    pl_store_caps_default(&caps);
    caps.shard_max_records = 40;
    pl_store_t *st = mk(dir, &caps);
    T_ASSERT_OK(tst_commit(st, 1, 0, 50, 64, 1));  /* seqs 0..49, keys 000000..000049 */
    T_ASSERT_OK(tst_commit(st, 2, 10, 30, 64, 1)); /* seqs 50..69, keys 000010..000029 again */
    T_ASSERT_OK(tst_commit(st, 3, 70, 90, 64, 1)); /* seqs 70..89 */
    T_ASSERT(pl_store_n_shards(st) >= 2);
    pl_store_close(st);
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    uint64_t seq = 999;
    T_ASSERT_OK(pl_store_find_key(st, "000015", 6, &seq));
    T_ASSERT_U64_EQ(seq, 15);
    T_ASSERT_OK(pl_store_find_key(st, "000045", 6, &seq));
    T_ASSERT_U64_EQ(seq, 45);
    T_ASSERT_OK(pl_store_find_key(st, "000085", 6, &seq));
    T_ASSERT_U64_EQ(seq, 85 - 70 + 70);
    T_ASSERT_ERR(pl_store_find_key(st, "000095", 6, &seq), CORE_ENOT_FOUND);
    T_ASSERT_ERR(pl_store_find_key(st, "00001", 5, &seq), CORE_ENOT_FOUND); /* prefix: no */
    pl_store_close(st);
}

T_CASE(store_find_key_shard_from_before_the_index)
{
    /* A shard written before the key index existed: reopened by a writer it gets the index for
     * new records only, and lookups still find its older records (by a scan). */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/old", t_tmpdir());
    pl_store_t *st = mk(dir, NULL);
    T_ASSERT_OK(tst_commit(st, 1, 0, 30, 64, 1));
    pl_store_close(st);
    /* Make shard 0 look old: no "keys" database, no keys_from. */
    char shard[600];
    snprintf(shard, sizeof shard, "%s/shard-000000.lmdb", dir);
    MDB_env *env = NULL;
    T_ASSERT_EQ(mdb_env_create(&env), 0);
    T_ASSERT_EQ(mdb_env_set_maxdbs(env, 5), 0);
    T_ASSERT_EQ(mdb_env_open(env, shard, MDB_NOSUBDIR, 0644), 0);
    MDB_txn *txn = NULL;
    MDB_dbi keys, info;
    T_ASSERT_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
    T_ASSERT_EQ(mdb_dbi_open(txn, "keys", MDB_DUPSORT | MDB_DUPFIXED, &keys), 0);
    T_ASSERT_EQ(mdb_drop(txn, keys, 1), 0);
    T_ASSERT_EQ(mdb_dbi_open(txn, "info", 0, &info), 0);
    MDB_val k = {9, "keys_from"};
    T_ASSERT_EQ(mdb_del(txn, info, &k, NULL), 0);
    T_ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDWR, &st));
    T_ASSERT_OK(tst_commit(st, 2, 30, 40, 64, 1)); /* indexed */
    pl_store_close(st);
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    uint64_t seq = 999;
    T_ASSERT_OK(pl_store_find_key(st, "000007", 6, &seq)); /* scan path */
    T_ASSERT_U64_EQ(seq, 7);
    T_ASSERT_OK(pl_store_find_key(st, "000035", 6, &seq)); /* index path */
    T_ASSERT_U64_EQ(seq, 35);
    T_ASSERT_ERR(pl_store_find_key(st, "000040", 6, &seq), CORE_ENOT_FOUND);
    pl_store_close(st);
}

T_CASE(store_concurrent_readers)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/s", t_tmpdir());
    pl_store_caps_t caps;
    pl_store_caps_default(&caps);
    caps.shard_max_records = 64;
    pl_store_t *st = mk(dir, &caps);
    for (uint64_t i = 0; i < 300; i += 50) {
        T_ASSERT_OK(tst_commit(st, 4, i, i + 50, 300, 0));
    }
    pl_store_close(st);
    T_ASSERT_OK(pl_store_open(dir, PL_STORE_RDONLY, &st));
    pthread_t th[4];
    rthread_t ts[4];
    for (int i = 0; i < 4; i++) {
        ts[i] = (rthread_t){st, i, 0};
        T_ASSERT(pthread_create(&th[i], NULL, reader_main, &ts[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        T_ASSERT_EQ(ts[i].bad, 0);
    }
    pl_store_close(st);
    pl_record_thread_cleanup();
}

T_MAIN()
