/* The LMDB shard store (docs/FORMAT.md §3): meta.lmdb plus shard-NNNNNN.lmdb envs, each holding
 * records, per-file progress and rejects, so that one transaction covers a batch of records and
 * the progress that accounts for them. */
#include "pipeline/store.h"

#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/sha256.h"
#include "pipeline/record.h"
#include "store_internal.h"

#define META_NAME "meta.lmdb"
#define LOCK_NAME "writer.lock"
#define MAX_SHARDS 1000000u

typedef struct shard_s {
    MDB_env *env;
    MDB_dbi recs, prog, rej, info, keys;
    int valid; /* DBs and info present */
    uint64_t first_seq, next_seq;
    uint64_t keys_from; /* records from this seq on are in `keys` (older shards: not before) */
    char name[32];
} shard_t;

struct pl_store_s {
    char *dir;
    int writable;
    int lock_fd;
    int failed; /* sticky error of the writer */
    char vocab_hash[72];
    char *vocab_path;
    pl_store_policy_t policy;
    pl_store_caps_t caps;
    pthread_rwlock_t lock; /* guards the shard array (grown by the writer) */
    shard_t *shards;
    uint32_t n_shards, cap_shards;
};

struct pl_store_reader_s {
    pl_store_t *st;
    MDB_txn **txns; /* per shard, lazily begun */
    uint32_t n_txns;
};

void pl_store_policy_default(pl_store_policy_t *p)
{
    memset(p, 0, sizeof(*p));
    p->verify = PL_VERIFY_FULL;
    p->max_side = 0;
    p->caption_max_bytes = 4096;
    p->caption_overflow = PL_CAPTION_TRUNCATE;
    p->max_dim = PL_IMG_DEFAULT_MAX_SIDE;
    p->max_pixels = PL_IMG_DEFAULT_MAX_PIXELS;
    p->max_member_bytes = 64ull << 20;
}

void pl_store_caps_default(pl_store_caps_t *c)
{
    c->shard_max_bytes = 1ull << 30;
    c->shard_max_records = 0;
    c->map_initial_bytes = 64ull << 20;
}

int pl__store_mdb_err(int e, const char *what, const char *path)
{
    if (e == 0) {
        return 0;
    }
    int rc;
    switch (e) {
    case MDB_NOTFOUND:
        return CORE_ENOT_FOUND; /* expected in lookups: not logged */
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_BAD_TXN:
    case MDB_BAD_VALSIZE:
    case MDB_BAD_DBI:
    case MDB_INCOMPATIBLE:
        rc = CORE_ECORRUPT;
        break;
    case MDB_VERSION_MISMATCH:
        rc = CORE_EBAD_VERSION;
        break;
    case MDB_MAP_FULL:
    case MDB_READERS_FULL:
    case MDB_DBS_FULL:
    case MDB_TXN_FULL:
    case MDB_CURSOR_FULL:
    case MDB_PAGE_FULL:
        rc = CORE_EFULL;
        break;
    case MDB_MAP_RESIZED:
        rc = CORE_ESTATE;
        break;
    default:
        rc = e > 0 ? CORE_ERR(e) : CORE_ECORRUPT;
        break;
    }
    core_log_err("lmdb: %s %s: %s", what, path ? path : "", mdb_strerror(e));
    return rc;
}

/* ---- small codecs ---- */

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}
static uint64_t rd_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}
static void le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}
static uint32_t rd_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t rd_le64(const uint8_t *p)
{
    return (uint64_t)rd_le32(p) | ((uint64_t)rd_le32(p + 4) << 32);
}

#define POLICY_BYTES 40
static void policy_enc(const pl_store_policy_t *p, uint8_t b[POLICY_BYTES])
{
    memset(b, 0, POLICY_BYTES);
    le32(b + 0, (uint32_t)p->verify);
    le32(b + 4, p->max_side);
    le32(b + 8, p->caption_max_bytes);
    le32(b + 12, (uint32_t)p->caption_overflow);
    le32(b + 16, p->max_dim);
    le64(b + 24, p->max_pixels);
    le64(b + 32, p->max_member_bytes);
}
static int policy_dec(const uint8_t *b, size_t n, pl_store_policy_t *p)
{
    if (n != POLICY_BYTES || rd_le32(b) > 1 || rd_le32(b + 12) > 1) {
        return CORE_ECORRUPT;
    }
    p->verify = (pl_verify_t)rd_le32(b);
    p->max_side = rd_le32(b + 4);
    p->caption_max_bytes = rd_le32(b + 8);
    p->caption_overflow = (pl_caption_overflow_t)rd_le32(b + 12);
    p->max_dim = rd_le32(b + 16);
    p->max_pixels = rd_le64(b + 24);
    p->max_member_bytes = rd_le64(b + 32);
    return 0;
}

#define PROG_FIXED 72
static size_t progress_enc(const pl_file_progress_t *p, uint8_t *b)
{
    size_t nl = strnlen(p->name, sizeof(p->name) - 1);
    le32(b + 0, 1); /* progress value version */
    le32(b + 4, (uint32_t)p->state);
    le64(b + 8, p->next_sample);
    le64(b + 16, p->n_kept);
    le64(b + 24, p->n_rejected);
    le64(b + 32, p->size);
    memcpy(b + 40, p->id, PL_STORE_FILE_ID_LEN);
    memcpy(b + PROG_FIXED, p->name, nl);
    return PROG_FIXED + nl;
}
static int progress_dec(const uint8_t *b, size_t n, pl_file_progress_t *p)
{
    memset(p, 0, sizeof(*p));
    if (n < PROG_FIXED || n - PROG_FIXED >= sizeof(p->name) || rd_le32(b) != 1 ||
        rd_le32(b + 4) > PL_FILE_DAMAGED) {
        return CORE_ECORRUPT;
    }
    p->state = (pl_file_state_t)rd_le32(b + 4);
    p->next_sample = rd_le64(b + 8);
    p->n_kept = rd_le64(b + 16);
    p->n_rejected = rd_le64(b + 24);
    p->size = rd_le64(b + 32);
    memcpy(p->id, b + 40, PL_STORE_FILE_ID_LEN);
    memcpy(p->name, b + PROG_FIXED, n - PROG_FIXED);
    return 0;
}

/* ---- env helpers ---- */

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = core_malloc(n);
    if (p) {
        snprintf(p, n, "%s/%s", dir, name);
    }
    return p;
}

static int env_open(const char *path, int writable, uint64_t mapsize, unsigned maxdbs,
                    MDB_env **out)
{
    MDB_env *env = NULL;
    int e = mdb_env_create(&env);
    if (e) {
        return pl__store_mdb_err(e, "env_create", path);
    }
    e = mdb_env_set_maxdbs(env, maxdbs);
    if (!e) {
        e = mdb_env_set_mapsize(env, (size_t)mapsize);
    }
    if (!e) {
        /* MDB_NOTLS: read txns belong to reader objects, not threads. MDB_NOSUBDIR: one file. */
        /* MDB_NOMETASYNC (writers): one fdatasync per commit instead of two. LMDB keeps the
         * database intact; a machine crash may only undo the last transaction, and that
         * transaction carries its own progress record, so exactly-once still holds. A file's
         * final commit is followed by mdb_env_sync (pl_store_commit). */
        unsigned flags = MDB_NOSUBDIR | MDB_NOTLS | (writable ? MDB_NOMETASYNC : MDB_RDONLY);
        e = mdb_env_open(env, path, flags, 0644);
    }
    if (e) {
        int rc = pl__store_mdb_err(e, "env_open", path);
        mdb_env_close(env);
        return rc;
    }
    int dead = 0;
    e = mdb_reader_check(env, &dead);
    if (e) {
        int rc = pl__store_mdb_err(e, "reader_check", path);
        mdb_env_close(env);
        return rc;
    }
    if (dead > 0) {
        core_log_info("%s: cleared %d stale reader slot(s)", path, dead);
    }
    *out = env;
    return 0;
}

/* Begins a read txn, adopting a map grown by another process (MDB_MAP_RESIZED). */
static int rtxn_begin(MDB_env *env, MDB_txn **txn, const char *what)
{
    int e = mdb_txn_begin(env, NULL, MDB_RDONLY, txn);
    if (e == MDB_MAP_RESIZED) {
        e = mdb_env_set_mapsize(env, 0);
        if (!e) {
            e = mdb_txn_begin(env, NULL, MDB_RDONLY, txn);
        }
    }
    return pl__store_mdb_err(e, what, NULL);
}

/* ---- meta ---- */

static int meta_put(MDB_txn *txn, MDB_dbi dbi, const char *k, const void *v, size_t n)
{
    MDB_val key = {strlen(k), (void *)k}, val = {n, (void *)v};
    return pl__store_mdb_err(mdb_put(txn, dbi, &key, &val, 0), "put meta", k);
}

int pl_store_create(const char *dir, const char *vocab_hash, const char *vocab_path,
                    const pl_store_policy_t *policy, const pl_store_caps_t *caps)
{
    int rc = 0;
    char *path = NULL;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    pl_store_caps_t c;
    if (caps) {
        c = *caps;
    } else {
        pl_store_caps_default(&c);
    }
    if (vocab_hash == NULL || strlen(vocab_hash) == 0 || strlen(vocab_hash) > 64 ||
        c.shard_max_bytes == 0 || c.map_initial_bytes < (1u << 20)) {
        return CORE_ECONFIG;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        rc = CORE_ERR(errno);
        core_log_err("store %s: mkdir: %s", dir, core_strerror(rc));
        return rc;
    }
    path = path_join(dir, META_NAME);
    CORE_FAIL_IF(path == NULL, CORE_ERR(ENOMEM));
    if (access(path, F_OK) == 0) {
        core_log_err("store %s: already exists", dir);
        CORE_FAIL_IF(1, CORE_ERR(EEXIST));
    }
    CORE_TRY(env_open(path, 1, 1u << 20, 2, &env));
    MDB_dbi dbi;
    CORE_TRY(pl__store_mdb_err(mdb_txn_begin(env, NULL, 0, &txn), "txn_begin", path));
    CORE_TRY(pl__store_mdb_err(mdb_dbi_open(txn, "info", MDB_CREATE, &dbi), "dbi_open", path));
    uint8_t b[POLICY_BYTES];
    uint8_t fv[4];
    le32(fv, PL_STORE_FORMAT_VERSION);
    CORE_TRY(meta_put(txn, dbi, "format_version", fv, 4));
    CORE_TRY(meta_put(txn, dbi, "vocab_hash", vocab_hash, strlen(vocab_hash)));
    const char *vp = vocab_path ? vocab_path : "";
    CORE_TRY(meta_put(txn, dbi, "vocab_path", vp, strlen(vp)));
    policy_enc(policy, b);
    CORE_TRY(meta_put(txn, dbi, "policy", b, POLICY_BYTES));
    uint8_t cb[24];
    le64(cb, c.shard_max_bytes);
    le64(cb + 8, c.shard_max_records);
    le64(cb + 16, c.map_initial_bytes);
    CORE_TRY(meta_put(txn, dbi, "caps", cb, sizeof(cb)));
    rc = pl__store_mdb_err(mdb_txn_commit(txn), "commit", path);
    txn = NULL;
    CORE_TRY(rc);
    mdb_env_close(env);
    env = NULL;
    core_free(path);
    return 0;
fail:
    if (txn) {
        mdb_txn_abort(txn);
    }
    if (env) {
        mdb_env_close(env);
    }
    core_free(path);
    return rc;
}

static int meta_get(MDB_txn *txn, MDB_dbi dbi, const char *k, MDB_val *v)
{
    MDB_val key = {strlen(k), (void *)k};
    int e = mdb_get(txn, dbi, &key, v);
    if (e == MDB_NOTFOUND) {
        core_log_err("store meta: missing key %s", k);
        return CORE_ECORRUPT;
    }
    return pl__store_mdb_err(e, "get meta", k);
}

static int meta_load(pl_store_t *st)
{
    int rc = 0;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    char *path = path_join(st->dir, META_NAME);
    CORE_FAIL_IF(path == NULL, CORE_ERR(ENOMEM));
    if (access(path, F_OK) != 0) {
        core_log_err("%s: not a store (no %s)", st->dir, META_NAME);
        CORE_FAIL_IF(1, CORE_ENOT_FOUND);
    }
    CORE_TRY(env_open(path, 0, 1u << 20, 2, &env));
    CORE_TRY(rtxn_begin(env, &txn, "meta txn"));
    MDB_dbi dbi;
    CORE_TRY(pl__store_mdb_err(mdb_dbi_open(txn, "info", 0, &dbi), "dbi_open info", path));
    MDB_val v;
    CORE_TRY(meta_get(txn, dbi, "format_version", &v));
    CORE_FAIL_IF(v.mv_size != 4, CORE_ECORRUPT);
    uint32_t fv = rd_le32(v.mv_data);
    if (fv != PL_STORE_FORMAT_VERSION) {
        core_log_err("%s: store format version %u, this build reads %d", st->dir, fv,
                     PL_STORE_FORMAT_VERSION);
        CORE_FAIL_IF(1, CORE_EBAD_VERSION);
    }
    CORE_TRY(meta_get(txn, dbi, "vocab_hash", &v));
    CORE_FAIL_IF(v.mv_size == 0 || v.mv_size >= sizeof(st->vocab_hash), CORE_ECORRUPT);
    memcpy(st->vocab_hash, v.mv_data, v.mv_size);
    st->vocab_hash[v.mv_size] = '\0';
    CORE_TRY(meta_get(txn, dbi, "vocab_path", &v));
    st->vocab_path = core_strndup(v.mv_data, v.mv_size);
    CORE_FAIL_IF(st->vocab_path == NULL, CORE_ERR(ENOMEM));
    CORE_TRY(meta_get(txn, dbi, "policy", &v));
    CORE_TRY(policy_dec(v.mv_data, v.mv_size, &st->policy));
    CORE_TRY(meta_get(txn, dbi, "caps", &v));
    CORE_FAIL_IF(v.mv_size != 24, CORE_ECORRUPT);
    st->caps.shard_max_bytes = rd_le64(v.mv_data);
    st->caps.shard_max_records = rd_le64((const uint8_t *)v.mv_data + 8);
    st->caps.map_initial_bytes = rd_le64((const uint8_t *)v.mv_data + 16);
    rc = 0;
fail:
    if (txn) {
        mdb_txn_abort(txn);
    }
    if (env) {
        mdb_env_close(env);
    }
    core_free(path);
    return rc;
}

/* ---- shards ---- */

static void shard_close(shard_t *s)
{
    if (s->env) {
        mdb_env_close(s->env);
    }
    s->env = NULL;
}

/* Opens DBs of an open shard env and reads first/next seq. A writer creates missing DBs and the
 * info entries (first_seq = `first_seq_if_new`) in one transaction, so a crash while a shard is
 * being created leaves either nothing or a complete empty shard. */
static int shard_load(pl_store_t *st, shard_t *s, uint64_t first_seq_if_new)
{
    int rc = 0;
    MDB_txn *txn = NULL;
    unsigned fl = st->writable ? MDB_CREATE : 0;
    if (st->writable) {
        CORE_TRY(pl__store_mdb_err(mdb_txn_begin(s->env, NULL, 0, &txn), "txn_begin", s->name));
    } else {
        CORE_TRY(rtxn_begin(s->env, &txn, s->name));
    }
    int e = mdb_dbi_open(txn, "records", fl, &s->recs);
    if (e == MDB_NOTFOUND && !st->writable) {
        s->valid = 0; /* an empty shard a writer crashed while creating */
        s->first_seq = s->next_seq = first_seq_if_new;
        mdb_txn_abort(txn);
        return 0;
    }
    CORE_TRY(pl__store_mdb_err(e, "dbi records", s->name));
    CORE_TRY(
        pl__store_mdb_err(mdb_dbi_open(txn, "progress", fl, &s->prog), "dbi progress", s->name));
    CORE_TRY(pl__store_mdb_err(mdb_dbi_open(txn, "rejects", fl, &s->rej), "dbi rejects", s->name));
    CORE_TRY(pl__store_mdb_err(mdb_dbi_open(txn, "info", fl, &s->info), "dbi info", s->name));
    MDB_val k = {9, "first_seq"}, v;
    e = mdb_get(txn, s->info, &k, &v);
    if (e == MDB_NOTFOUND && st->writable) {
        uint8_t b[8];
        be64(b, first_seq_if_new);
        v.mv_size = 8;
        v.mv_data = b;
        CORE_TRY(pl__store_mdb_err(mdb_put(txn, s->info, &k, &v, 0), "put first_seq", s->name));
        MDB_val hk = {10, "vocab_hash"}, hv = {strlen(st->vocab_hash), st->vocab_hash};
        CORE_TRY(pl__store_mdb_err(mdb_put(txn, s->info, &hk, &hv, 0), "put vocab", s->name));
        s->first_seq = first_seq_if_new;
    } else {
        CORE_TRY(pl__store_mdb_err(e, "get first_seq", s->name));
        CORE_FAIL_IF(v.mv_size != 8, CORE_ECORRUPT);
        s->first_seq = rd_be64(v.mv_data);
    }
    s->next_seq = s->first_seq;
    MDB_cursor *cur = NULL;
    CORE_TRY(pl__store_mdb_err(mdb_cursor_open(txn, s->recs, &cur), "cursor", s->name));
    MDB_val ck, cv;
    e = mdb_cursor_get(cur, &ck, &cv, MDB_LAST);
    mdb_cursor_close(cur);
    if (e == 0) {
        CORE_FAIL_IF(ck.mv_size != 8, CORE_ECORRUPT);
        s->next_seq = rd_be64(ck.mv_data) + 1;
    } else if (e != MDB_NOTFOUND) {
        CORE_TRY(pl__store_mdb_err(e, "cursor last", s->name));
    }
    /* The member-key index (FORMAT.md §3) covers the records from info "keys_from" on: a shard
     * written before the index existed gets it from its next record, its older ones stay findable
     * by a scan. The flags are persistent, so readers pass the same ones. */
    s->keys_from = s->next_seq;
    e = mdb_dbi_open(txn, "keys", fl | MDB_DUPSORT | MDB_DUPFIXED, &s->keys);
    if (e == 0) {
        MDB_val fk = {9, "keys_from"}, fv;
        e = mdb_get(txn, s->info, &fk, &fv);
        if (e == MDB_NOTFOUND && st->writable) {
            uint8_t b[8];
            be64(b, s->next_seq);
            fv.mv_size = 8;
            fv.mv_data = b;
            CORE_TRY(pl__store_mdb_err(mdb_put(txn, s->info, &fk, &fv, 0), "put keys_from",
                                       s->name));
        } else if (e == 0) {
            CORE_FAIL_IF(fv.mv_size != 8, CORE_ECORRUPT);
            s->keys_from = rd_be64(fv.mv_data);
        } else if (e != MDB_NOTFOUND) {
            CORE_TRY(pl__store_mdb_err(e, "get keys_from", s->name));
        }
    } else if (e != MDB_NOTFOUND) {
        CORE_TRY(pl__store_mdb_err(e, "dbi keys", s->name));
    }
    /* Commit even a read txn: DBI handles opened in an aborted txn are closed with it. */
    rc = pl__store_mdb_err(mdb_txn_commit(txn), "commit", s->name);
    txn = NULL;
    CORE_TRY(rc);
    s->valid = 1;
    return 0;
fail:
    if (txn) {
        mdb_txn_abort(txn);
    }
    return rc;
}

static int shard_open(pl_store_t *st, uint32_t idx, uint64_t first_seq_if_new, int create)
{
    int rc = 0;
    char name[32];
    snprintf(name, sizeof(name), "shard-%06u.lmdb", idx);
    char *path = path_join(st->dir, name);
    if (path == NULL) {
        return CORE_ERR(ENOMEM);
    }
    if (!create && access(path, F_OK) != 0) {
        core_free(path);
        return CORE_ENOT_FOUND;
    }
    if (st->n_shards == st->cap_shards) {
        uint32_t nc = st->cap_shards ? st->cap_shards * 2 : 8;
        /* A new array swapped in under the lock: readers never see freed memory. */
        shard_t *ns = core_malloc(nc * sizeof(shard_t));
        CORE_FAIL_IF(ns == NULL, CORE_ERR(ENOMEM));
        pthread_rwlock_wrlock(&st->lock);
        shard_t *old = st->shards;
        if (st->n_shards) {
            memcpy(ns, old, st->n_shards * sizeof(shard_t));
        }
        st->shards = ns;
        st->cap_shards = nc;
        pthread_rwlock_unlock(&st->lock);
        core_free(old);
    }
    shard_t s;
    memset(&s, 0, sizeof(s));
    memcpy(s.name, name, sizeof(name));
    CORE_TRY(env_open(path, st->writable, st->caps.map_initial_bytes, 5, &s.env));
    rc = shard_load(st, &s, first_seq_if_new);
    if (rc < 0) {
        shard_close(&s);
        goto fail;
    }
    pthread_rwlock_wrlock(&st->lock);
    st->shards[st->n_shards++] = s;
    pthread_rwlock_unlock(&st->lock);
    rc = 0;
fail:
    core_free(path);
    return rc;
}

int pl_store_open(const char *dir, int mode, pl_store_t **out)
{
    int rc = 0;
    pl_store_t *st = core_calloc(1, sizeof(*st));
    if (st == NULL) {
        return CORE_ERR(ENOMEM);
    }
    st->lock_fd = -1;
    pthread_rwlock_init(&st->lock, NULL);
    st->writable = mode == PL_STORE_RDWR;
    st->dir = core_strdup(dir);
    CORE_FAIL_IF(st->dir == NULL, CORE_ERR(ENOMEM));
    CORE_TRY(meta_load(st));
    if (st->writable) {
        char *lp = path_join(dir, LOCK_NAME);
        CORE_FAIL_IF(lp == NULL, CORE_ERR(ENOMEM));
        st->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        core_free(lp);
        CORE_FAIL_IF(st->lock_fd < 0, CORE_ERR(errno));
        if (flock(st->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            rc = CORE_ERR(errno);
            core_log_err("%s: another writer holds the store (%s)", dir, core_strerror(rc));
            goto fail;
        }
    }
    uint64_t next = 0;
    for (uint32_t i = 0; i < MAX_SHARDS; i++) {
        rc = shard_open(st, i, next, 0);
        if (rc == CORE_ENOT_FOUND) {
            break;
        }
        CORE_TRY(rc);
        next = st->shards[i].next_seq;
    }
    if (st->writable && st->n_shards == 0) {
        CORE_TRY(shard_open(st, 0, 0, 1));
    }
    *out = st;
    return 0;
fail:
    pl_store_close(st);
    return rc;
}

void pl_store_close(pl_store_t *st)
{
    if (st == NULL) {
        return;
    }
    for (uint32_t i = 0; i < st->n_shards; i++) {
        shard_close(&st->shards[i]);
    }
    core_free(st->shards);
    if (st->lock_fd >= 0) {
        close(st->lock_fd); /* releases the flock */
    }
    pthread_rwlock_destroy(&st->lock);
    core_free(st->vocab_path);
    core_free(st->dir);
    core_free(st);
}

const char *pl_store_vocab_hash(const pl_store_t *st)
{
    return st->vocab_hash;
}
const char *pl_store_vocab_path(const pl_store_t *st)
{
    return st->vocab_path;
}
const pl_store_policy_t *pl_store_policy(const pl_store_t *st)
{
    return &st->policy;
}
const pl_store_caps_t *pl_store_caps(const pl_store_t *st)
{
    return &st->caps;
}
const char *pl_store_dir(const pl_store_t *st)
{
    return st->dir;
}

int pl_store_check_vocab(const pl_store_t *st, const char *vocab_hash)
{
    if (strcmp(st->vocab_hash, vocab_hash) != 0) {
        core_log_err("%s: vocabulary mismatch: the store was built with vocabulary %.16s..., the "
                     "given vocabulary is %.16s... (labels would mean different tokens)",
                     st->dir, st->vocab_hash, vocab_hash);
        return CORE_EMISMATCH;
    }
    return 0;
}

uint64_t pl_store_count(const pl_store_t *st)
{
    /* The lock is a mutable part of a logically const store: other threads may be committing. */
    pthread_rwlock_t *lock = (pthread_rwlock_t *)&st->lock;
    pthread_rwlock_rdlock(lock);
    uint64_t n = 0;
    for (uint32_t i = 0; i < st->n_shards; i++) {
        n += st->shards[i].next_seq - st->shards[i].first_seq;
    }
    pthread_rwlock_unlock(lock);
    return n;
}

uint32_t pl_store_n_shards(const pl_store_t *st)
{
    return st->n_shards;
}

int pl_store_shard_info(const pl_store_t *st, uint32_t i, const char **name, uint64_t *first_seq,
                        uint64_t *next_seq, uint64_t *file_bytes)
{
    if (i >= st->n_shards) {
        return CORE_ENOT_FOUND;
    }
    const shard_t *s = &st->shards[i];
    if (name) {
        *name = s->name;
    }
    if (first_seq) {
        *first_seq = s->first_seq;
    }
    if (next_seq) {
        *next_seq = s->next_seq;
    }
    if (file_bytes) {
        *file_bytes = 0;
        char *p = path_join(st->dir, s->name);
        struct stat sb;
        if (p && stat(p, &sb) == 0) {
            *file_bytes = (uint64_t)sb.st_size;
        }
        core_free(p);
    }
    return 0;
}

/* ---- identity and progress ---- */

int pl_store_file_identity(const char *path, uint8_t id[PL_STORE_FILE_ID_LEN], uint64_t *size_out)
{
    int rc = 0;
    uint8_t *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return CORE_ERR(errno);
    }
    struct stat sb;
    CORE_FAIL_IF(fstat(fd, &sb) != 0, CORE_ERR(errno));
    uint64_t size = (uint64_t)sb.st_size;
    const size_t head = 1u << 20, tail = 64u << 10;
    buf = core_malloc(head);
    CORE_FAIL_IF(buf == NULL, CORE_ERR(ENOMEM));
    core_sha256_t h;
    core_sha256_init(&h);
    uint8_t sz[8];
    le64(sz, size);
    core_sha256_update(&h, sz, 8);
    /* The head and the tail, each read fully (pread loops over short reads). */
    struct {
        uint64_t off, len;
    } parts[2] = {{0, size < head ? size : head}, {0, 0}};
    if (size > head) {
        uint64_t tl = size - head < tail ? size - head : tail;
        parts[1].off = size - tl;
        parts[1].len = tl;
    }
    for (int k = 0; k < 2; k++) {
        uint64_t done = 0;
        while (done < parts[k].len) {
            ssize_t r = pread(fd, buf, (size_t)(parts[k].len - done), (off_t)(parts[k].off + done));
            if (r < 0 && errno == EINTR) {
                continue;
            }
            CORE_FAIL_IF(r < 0, CORE_ERR(errno));
            CORE_FAIL_IF(r == 0, CORE_ERR(EIO)); /* shrank while reading */
            core_sha256_update(&h, buf, (size_t)r);
            done += (uint64_t)r;
        }
    }
    core_sha256_final(&h, id);
    if (size_out) {
        *size_out = size;
    }
    rc = 0;
fail:
    core_free(buf);
    close(fd);
    return rc;
}

int pl_store_file_progress(pl_store_t *st, const uint8_t id[PL_STORE_FILE_ID_LEN],
                           pl_file_progress_t *out)
{
    for (uint32_t i = st->n_shards; i-- > 0;) {
        shard_t *s = &st->shards[i];
        if (!s->valid) {
            continue;
        }
        MDB_txn *txn;
        int rc = rtxn_begin(s->env, &txn, s->name);
        if (rc < 0) {
            return rc;
        }
        MDB_val k = {PL_STORE_FILE_ID_LEN, (void *)id}, v;
        int e = mdb_get(txn, s->prog, &k, &v);
        if (e == 0) {
            rc = progress_dec(v.mv_data, v.mv_size, out);
            mdb_txn_abort(txn);
            return rc;
        }
        mdb_txn_abort(txn);
        if (e != MDB_NOTFOUND) {
            return pl__store_mdb_err(e, "get progress", s->name);
        }
    }
    return CORE_ENOT_FOUND;
}

/* Collects (key, shard, value) of a per-shard DB over all shards and emits, for each key, the
 * value from the newest shard. Used for progress and rejects, which are small. */
typedef struct kv_s {
    uint8_t *key;
    size_t klen;
    uint8_t *val;
    size_t vlen;
    uint32_t shard;
} kv_t;

static int kv_cmp(const void *a, const void *b)
{
    const kv_t *x = a, *y = b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    if (c) {
        return c;
    }
    if (x->klen != y->klen) {
        return x->klen < y->klen ? -1 : 1;
    }
    return x->shard > y->shard ? -1 : (x->shard < y->shard ? 1 : 0); /* newest first */
}

typedef int (*kv_emit_cb)(void *ud, const kv_t *kv);

static int collect_newest(pl_store_t *st, int which, kv_emit_cb emit, void *ud)
{
    int rc = 0;
    kv_t *arr = NULL;
    size_t n = 0, cap = 0;
    for (uint32_t i = 0; i < st->n_shards; i++) {
        shard_t *s = &st->shards[i];
        if (!s->valid) {
            continue;
        }
        MDB_txn *txn = NULL;
        MDB_cursor *cur = NULL;
        CORE_TRY(rtxn_begin(s->env, &txn, s->name));
        int e = mdb_cursor_open(txn, which ? s->rej : s->prog, &cur);
        if (e) {
            mdb_txn_abort(txn);
            CORE_TRY(pl__store_mdb_err(e, "cursor", s->name));
        }
        MDB_val k, v;
        for (e = mdb_cursor_get(cur, &k, &v, MDB_FIRST); e == 0;
             e = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (n == cap) {
                size_t nc = cap ? cap * 2 : 64;
                kv_t *na = core_realloc(arr, nc * sizeof(kv_t));
                if (na == NULL) {
                    e = ENOMEM;
                    break;
                }
                arr = na;
                cap = nc;
            }
            kv_t *kv = &arr[n];
            kv->key = core_malloc(k.mv_size + v.mv_size + 1);
            if (kv->key == NULL) {
                e = ENOMEM;
                break;
            }
            memcpy(kv->key, k.mv_data, k.mv_size);
            kv->klen = k.mv_size;
            kv->val = kv->key + k.mv_size;
            memcpy(kv->val, v.mv_data, v.mv_size);
            kv->vlen = v.mv_size;
            kv->shard = i;
            n++;
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (e != MDB_NOTFOUND) {
            CORE_TRY(pl__store_mdb_err(e, "cursor walk", s->name));
        }
    }
    if (n) {
        qsort(arr, n, sizeof(kv_t), kv_cmp);
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && arr[i].klen == arr[i - 1].klen &&
            memcmp(arr[i].key, arr[i - 1].key, arr[i].klen) == 0) {
            continue; /* an older version of the same key */
        }
        rc = emit(ud, &arr[i]);
        if (rc != 0) {
            break;
        }
    }
fail:
    for (size_t i = 0; i < n; i++) {
        core_free(arr[i].key);
    }
    core_free(arr);
    return rc;
}

typedef struct {
    pl_store_file_cb cb;
    pl_store_reject_cb rcb;
    void *ud;
} emit_ctx_t;

static int emit_progress(void *ud, const kv_t *kv)
{
    emit_ctx_t *c = ud;
    pl_file_progress_t p;
    int rc = progress_dec(kv->val, kv->vlen, &p);
    if (rc < 0) {
        return rc;
    }
    return c->cb(c->ud, &p);
}

int pl_store_files(pl_store_t *st, pl_store_file_cb cb, void *ud)
{
    emit_ctx_t c = {cb, NULL, ud};
    return collect_newest(st, 0, emit_progress, &c);
}

/* Reject value: u32 reason, u16 key length, u16 file-name length, key, file name. */
static int emit_reject(void *ud, const kv_t *kv)
{
    emit_ctx_t *c = ud;
    if (kv->klen != 24 || kv->vlen < 8) {
        return CORE_ECORRUPT;
    }
    uint32_t reason = rd_le32(kv->val);
    size_t kl = (size_t)kv->val[4] | ((size_t)kv->val[5] << 8);
    size_t fl = (size_t)kv->val[6] | ((size_t)kv->val[7] << 8);
    if (8 + kl + fl != kv->vlen) {
        return CORE_ECORRUPT;
    }
    char key[PL_RECORD_MAX_NAME + 1], file[PL_RECORD_MAX_NAME + 1];
    if (kl > PL_RECORD_MAX_NAME || fl > PL_RECORD_MAX_NAME) {
        return CORE_ECORRUPT;
    }
    memcpy(key, kv->val + 8, kl);
    key[kl] = '\0';
    memcpy(file, kv->val + 8 + kl, fl);
    file[fl] = '\0';
    return c->rcb(c->ud, file, rd_be64(kv->key + 16), reason, key);
}

int pl_store_rejects(pl_store_t *st, pl_store_reject_cb cb, void *ud)
{
    emit_ctx_t c = {NULL, cb, ud};
    return collect_newest(st, 1, emit_reject, &c);
}

/* ---- commit ---- */

/* FNV-1a: the member-key index stores this 64-bit hash, not the key (LMDB keys are at most 511
 * bytes, member keys up to 4096); lookups compare the real keys of the hits. */
static uint64_t key_hash(const char *k, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)k[i]) * 1099511628211ull;
    }
    return h;
}

static int batch_write(pl_store_t *st, shard_t *s, const pl_store_batch_t *b, int *mdb_e)
{
    MDB_txn *txn = NULL;
    int e = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (e) {
        *mdb_e = e;
        return pl__store_mdb_err(e, "txn_begin", s->name);
    }
    uint8_t kb[24];
    for (size_t i = 0; i < b->n_recs && !e; i++) {
        be64(kb, s->next_seq + i);
        MDB_val k = {8, kb}, v = {b->rec_lens[i], (void *)b->recs[i]};
        e = mdb_put(txn, s->recs, &k, &v, MDB_APPEND);
        const char *mk;
        size_t mkl;
        if (!e && pl_record_member_key(b->recs[i], b->rec_lens[i], &mk, &mkl) == 0) {
            uint8_t hb[8];
            be64(hb, key_hash(mk, mkl));
            MDB_val hk = {8, hb}, hv = {8, kb}; /* dups sorted: BE seqs ascend */
            e = mdb_put(txn, s->keys, &hk, &hv, 0);
        }
    }
    const char *fname = b->progress->name;
    size_t fl = strnlen(fname, sizeof(b->progress->name));
    for (size_t i = 0; i < b->n_rejects && !e; i++) {
        const pl_store_reject_t *r = &b->rejects[i];
        size_t kl = strnlen(r->key, PL_RECORD_MAX_NAME);
        uint8_t vb[8 + 2 * PL_RECORD_MAX_NAME];
        memcpy(kb, b->progress->id, 16);
        be64(kb + 16, r->sample_index);
        le32(vb, r->reason);
        vb[4] = (uint8_t)kl;
        vb[5] = (uint8_t)(kl >> 8);
        vb[6] = (uint8_t)fl;
        vb[7] = (uint8_t)(fl >> 8);
        memcpy(vb + 8, r->key, kl);
        memcpy(vb + 8 + kl, fname, fl);
        MDB_val k = {24, kb}, v = {8 + kl + fl, vb};
        e = mdb_put(txn, s->rej, &k, &v, 0);
    }
    if (!e) {
        uint8_t pb[PROG_FIXED + 256];
        size_t pn = progress_enc(b->progress, pb);
        MDB_val k = {PL_STORE_FILE_ID_LEN, (void *)b->progress->id}, v = {pn, pb};
        e = mdb_put(txn, s->prog, &k, &v, 0);
    }
    if (e) {
        mdb_txn_abort(txn);
    } else {
        e = mdb_txn_commit(txn); /* frees the txn whatever the outcome */
    }
    *mdb_e = e;
    if (e == MDB_MAP_FULL) {
        return CORE_EFULL; /* the caller grows the map and retries: not an error yet */
    }
    return pl__store_mdb_err(e, "commit batch", s->name);
}

/* LMDB reports a short pwrite as EIO, and a full disk or a file-size limit first shows up as a
 * short write. Tell those apart from real I/O errors so the caller can say "disk full". */
static int diagnose_eio(const pl_store_t *st, const shard_t *s, uint64_t batch_bytes)
{
    uint64_t need = 2 * batch_bytes + (1u << 20);
    struct statvfs vfs;
    if (statvfs(st->dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
        return CORE_ERR(ENOSPC);
    }
    struct rlimit rl;
    char *p = path_join(st->dir, s->name);
    struct stat sb;
    int rc = CORE_ERR(EIO);
    if (p && stat(p, &sb) == 0 && getrlimit(RLIMIT_FSIZE, &rl) == 0 &&
        rl.rlim_cur != RLIM_INFINITY && (uint64_t)sb.st_size + need >= (uint64_t)rl.rlim_cur) {
        rc = CORE_ERR(EFBIG);
    }
    core_free(p);
    return rc;
}

int pl_store_commit(pl_store_t *st, const pl_store_batch_t *b, uint64_t *first_seq_out)
{
    if (!st->writable || st->failed) {
        return CORE_ESTATE;
    }
    if (b->progress == NULL) {
        return CORE_ECONFIG;
    }
    shard_t *s = &st->shards[st->n_shards - 1];
    size_t bytes = 0;
    for (size_t i = 0; i < b->n_recs; i++) {
        bytes += b->rec_lens[i];
    }
    uint64_t limit = 2 * st->caps.shard_max_bytes + 4 * (uint64_t)bytes + (64ull << 20);
    int rc;
    for (;;) {
        int e = 0;
        rc = batch_write(st, s, b, &e);
        if (e != MDB_MAP_FULL) {
            break;
        }
        MDB_envinfo info;
        e = mdb_env_info(s->env, &info);
        if (e) {
            rc = pl__store_mdb_err(e, "env_info", s->name);
            break;
        }
        uint64_t grown = (uint64_t)info.me_mapsize * 2;
        if (grown > limit) {
            core_log_err("%s: map cannot grow past %llu bytes", s->name, (unsigned long long)limit);
            rc = CORE_EFULL;
            break;
        }
        /* Safe: the writer holds no transaction now (batch_write aborted or committed it). */
        e = mdb_env_set_mapsize(s->env, (size_t)grown);
        if (e) {
            rc = pl__store_mdb_err(e, "set_mapsize", s->name);
            break;
        }
        core_log_debug("%s: map grown to %llu bytes", s->name, (unsigned long long)grown);
    }
    if (rc == CORE_ERR(EIO)) {
        rc = diagnose_eio(st, s, bytes);
        if (rc != CORE_ERR(EIO)) {
            core_log_err("%s: the short write was a full disk (%s)", s->name, core_strerror(rc));
        }
    }
    if (rc < 0) {
        st->failed = rc;
        return rc;
    }
    if (b->progress->state != PL_FILE_PARTIAL) {
        /* The file is finished: make its last commit durable now (see MDB_NOMETASYNC). */
        int e = mdb_env_sync(s->env, 1);
        if (e) {
            rc = pl__store_mdb_err(e, "env_sync", s->name);
            st->failed = rc;
            return rc;
        }
    }
    if (first_seq_out) {
        *first_seq_out = s->next_seq;
    }
    /* Readers copy shard structs under the read lock (pl_store_get): publish the new end under
     * the write lock so a concurrent reader never sees a torn value. */
    pthread_rwlock_wrlock(&st->lock);
    s->next_seq += b->n_recs;
    pthread_rwlock_unlock(&st->lock);
    /* Close the shard at its cap: later batches go to a new one. */
    MDB_envinfo info;
    MDB_stat ms;
    int e = mdb_env_info(s->env, &info);
    if (e == 0) {
        e = mdb_env_stat(s->env, &ms);
    }
    if (e) {
        rc = pl__store_mdb_err(e, "env_info", s->name);
        st->failed = rc;
        return rc;
    }
    uint64_t used = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
    uint64_t nrec = s->next_seq - s->first_seq;
    if (used >= st->caps.shard_max_bytes ||
        (st->caps.shard_max_records && nrec >= st->caps.shard_max_records)) {
        rc = shard_open(st, st->n_shards, s->next_seq, 1);
        if (rc < 0) {
            /* The batch is committed; only the next shard could not be created. */
            core_log_err("%s: batch committed, but the next shard could not be created: %s",
                         st->dir, core_strerror(rc));
            st->failed = rc;
            return rc;
        }
    }
    return 0;
}

/* ---- reads ---- */

int pl_store_reader_open(pl_store_t *st, pl_store_reader_t **out)
{
    pl_store_reader_t *rd = core_calloc(1, sizeof(*rd));
    if (rd == NULL) {
        return CORE_ERR(ENOMEM);
    }
    rd->st = st;
    *out = rd;
    return 0;
}

void pl_store_reader_reset(pl_store_reader_t *rd)
{
    for (uint32_t i = 0; i < rd->n_txns; i++) {
        if (rd->txns[i]) {
            mdb_txn_abort(rd->txns[i]);
            rd->txns[i] = NULL;
        }
    }
}

void pl_store_reader_close(pl_store_reader_t *rd)
{
    if (rd == NULL) {
        return;
    }
    pl_store_reader_reset(rd);
    core_free(rd->txns);
    core_free(rd);
}

int pl_store_get(pl_store_reader_t *rd, uint64_t seq, const uint8_t **val, size_t *len)
{
    pl_store_t *st = rd->st;
    pthread_rwlock_rdlock(&st->lock);
    uint32_t n = st->n_shards;
    /* The last shard whose first_seq <= seq. */
    uint32_t lo = 0, hi = n;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (st->shards[mid].first_seq <= seq) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    shard_t sc;
    memset(&sc, 0, sizeof(sc));
    if (lo > 0) {
        sc = st->shards[lo - 1]; /* a copy: the array may be replaced by the writer */
    }
    pthread_rwlock_unlock(&st->lock);
    shard_t *s = &sc;
    if (lo == 0 || !s->valid) {
        return CORE_ENOT_FOUND;
    }
    uint32_t si = lo - 1;
    if (si >= rd->n_txns) {
        MDB_txn **nt = core_realloc(rd->txns, n * sizeof(MDB_txn *));
        if (nt == NULL) {
            return CORE_ERR(ENOMEM);
        }
        for (uint32_t i = rd->n_txns; i < n; i++) {
            nt[i] = NULL;
        }
        rd->txns = nt;
        rd->n_txns = n;
    }
    if (rd->txns[si] == NULL) {
        int rc = rtxn_begin(s->env, &rd->txns[si], s->name);
        if (rc < 0) {
            rd->txns[si] = NULL;
            return rc;
        }
    }
    uint8_t kb[8];
    be64(kb, seq);
    MDB_val k = {8, kb}, v;
    int e = mdb_get(rd->txns[si], s->recs, &k, &v);
    if (e) {
        return pl__store_mdb_err(e, "get record", s->name);
    }
    *val = v.mv_data;
    *len = v.mv_size;
    return 0;
}

/* Does record (k, v) of a shard have member key `key`? 1 yes, 0 no, or an error. */
static int rec_has_key(const MDB_val *k, const MDB_val *v, const char *key, size_t len)
{
    const char *mk;
    size_t mkl;
    if (k->mv_size != 8 || pl_record_member_key(v->mv_data, v->mv_size, &mk, &mkl) < 0) {
        return CORE_ECORRUPT;
    }
    return mkl == len && memcmp(mk, key, len) == 0;
}

/* The first record with `key` in shard s: a scan of its unindexed seqs [first_seq, keys_from),
 * then the index's hits in seq order. */
static int shard_find_key(shard_t *s, MDB_txn *txn, const char *key, size_t len, uint64_t *seq)
{
    MDB_cursor *cur = NULL;
    int rc = 0, e, found = 0; /* CORE_TRY overwrites rc, so "found" is its own flag */
    if (s->keys_from > s->first_seq) {
        CORE_TRY(pl__store_mdb_err(mdb_cursor_open(txn, s->recs, &cur), "cursor", s->name));
        MDB_val k, v;
        for (e = mdb_cursor_get(cur, &k, &v, MDB_FIRST); e == 0; e = mdb_cursor_get(cur, &k, &v,
                                                                                       MDB_NEXT)) {
            if (k.mv_size == 8 && rd_be64(k.mv_data) >= s->keys_from) {
                break;
            }
            int m = rec_has_key(&k, &v, key, len);
            CORE_TRY(m < 0 ? m : 0);
            if (m) {
                *seq = rd_be64(k.mv_data);
                found = 1;
                goto fail;
            }
        }
        CORE_FAIL_IF(e != 0 && e != MDB_NOTFOUND, pl__store_mdb_err(e, "scan", s->name));
        mdb_cursor_close(cur);
        cur = NULL;
    }
    if (s->keys_from >= s->next_seq) {
        return CORE_ENOT_FOUND;
    }
    CORE_TRY(pl__store_mdb_err(mdb_cursor_open(txn, s->keys, &cur), "cursor keys", s->name));
    uint8_t hb[8];
    be64(hb, key_hash(key, len));
    MDB_val hk = {8, hb}, hv;
    for (e = mdb_cursor_get(cur, &hk, &hv, MDB_SET_KEY); e == 0;
         e = mdb_cursor_get(cur, &hk, &hv, MDB_NEXT_DUP)) {
        CORE_FAIL_IF(hv.mv_size != 8, CORE_ECORRUPT);
        MDB_val k = {8, hv.mv_data}, v;
        CORE_TRY(pl__store_mdb_err(mdb_get(txn, s->recs, &k, &v), "get indexed record", s->name));
        int m = rec_has_key(&k, &v, key, len);
        CORE_TRY(m < 0 ? m : 0);
        if (m) {
            *seq = rd_be64(k.mv_data);
            found = 1;
            goto fail;
        }
    }
    CORE_FAIL_IF(e != 0 && e != MDB_NOTFOUND, pl__store_mdb_err(e, "index walk", s->name));
fail:
    if (cur) {
        mdb_cursor_close(cur);
    }
    return rc < 0 ? rc : found ? 0 : CORE_ENOT_FOUND;
}

int pl_store_find_key(pl_store_t *st, const char *key, size_t len, uint64_t *seq)
{
    int rc = CORE_ENOT_FOUND;
    for (uint32_t i = 0; i < st->n_shards && rc == CORE_ENOT_FOUND; i++) {
        shard_t *s = &st->shards[i];
        if (!s->valid) {
            continue;
        }
        MDB_txn *txn = NULL;
        rc = rtxn_begin(s->env, &txn, s->name);
        if (rc < 0) {
            return rc;
        }
        rc = shard_find_key(s, txn, key, len, seq);
        mdb_txn_abort(txn);
    }
    return rc;
}

int pl_store_foreach(pl_store_t *st, pl_store_record_cb cb, void *ud)
{
    int rc = 0;
    for (uint32_t i = 0; i < st->n_shards && rc == 0; i++) {
        shard_t *s = &st->shards[i];
        if (!s->valid) {
            continue;
        }
        MDB_txn *txn = NULL;
        MDB_cursor *cur = NULL;
        rc = rtxn_begin(s->env, &txn, s->name);
        if (rc < 0) {
            return rc;
        }
        int e = mdb_cursor_open(txn, s->recs, &cur);
        if (e) {
            mdb_txn_abort(txn);
            return pl__store_mdb_err(e, "cursor", s->name);
        }
        MDB_val k, v;
        for (e = mdb_cursor_get(cur, &k, &v, MDB_FIRST); e == 0 && rc == 0;
             e = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            if (k.mv_size != 8) {
                rc = CORE_ECORRUPT;
                break;
            }
            rc = cb(ud, rd_be64(k.mv_data), v.mv_data, v.mv_size);
        }
        mdb_cursor_close(cur);
        mdb_txn_abort(txn);
        if (rc == 0 && e != MDB_NOTFOUND && e != 0) {
            rc = pl__store_mdb_err(e, "cursor walk", s->name);
        }
    }
    return rc;
}

/* ---- digest ---- */

typedef struct {
    uint8_t sum[32]; /* big-endian 256-bit accumulator */
    uint64_t n;
} digest_t;

void pl__store_record_hash(const pl_record_t *rec, const char *caption, uint8_t out[32])
{
    core_sha256_t h;
    core_sha256_init(&h);
    uint8_t b[8];
    core_sha256_update(&h, "SCD1", 4);
#define PUT_LEN(x)                                                                                 \
    do {                                                                                           \
        le64(b, (uint64_t)(x));                                                                    \
        core_sha256_update(&h, b, 8);                                                              \
    } while (0)
    PUT_LEN(rec->member_key_len);
    core_sha256_update(&h, rec->member_key, rec->member_key_len);
    PUT_LEN(rec->caption_len);
    core_sha256_update(&h, caption, rec->caption_len);
    PUT_LEN(rec->n_tokens);
    for (uint32_t i = 0; i < rec->n_tokens; i++) {
        le32(b, rec->tokens[i]);
        core_sha256_update(&h, b, 4);
    }
    PUT_LEN(rec->n_label);
    for (uint32_t i = 0; i < rec->n_label; i++) {
        le32(b, rec->label[i]);
        core_sha256_update(&h, b, 4);
    }
    PUT_LEN(rec->format);
    PUT_LEN(rec->width);
    PUT_LEN(rec->height);
    PUT_LEN(rec->image_len);
    core_sha256_update(&h, rec->image, rec->image_len);
#undef PUT_LEN
    core_sha256_final(&h, out);
}

static int digest_cb(void *ud, uint64_t seq, const uint8_t *val, size_t len)
{
    digest_t *d = ud;
    pl_record_t rec;
    int rc = pl_record_decode(val, len, &rec);
    if (rc < 0) {
        core_log_err("record %llu: %s", (unsigned long long)seq, core_strerror(rc));
        return rc;
    }
    char *cap = core_malloc(rec.caption_len + 1);
    if (cap == NULL) {
        return CORE_ERR(ENOMEM);
    }
    rc = pl_record_caption(&rec, cap, rec.caption_len + 1);
    if (rc == 0) {
        uint8_t hsh[32];
        pl__store_record_hash(&rec, cap, hsh);
        unsigned carry = 0;
        for (int i = 31; i >= 0; i--) {
            unsigned s = (unsigned)d->sum[i] + hsh[i] + carry;
            d->sum[i] = (uint8_t)s;
            carry = s >> 8;
        }
        d->n++;
    }
    core_free(cap);
    return rc;
}

int pl_store_digest(pl_store_t *st, char hex[65], uint64_t *n_records)
{
    digest_t d;
    memset(&d, 0, sizeof(d));
    int rc = pl_store_foreach(st, digest_cb, &d);
    if (rc < 0) {
        return rc;
    }
    core_hex(d.sum, 32, hex);
    if (n_records) {
        *n_records = d.n;
    }
    return 0;
}
