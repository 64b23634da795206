/* sc-datad integration: real daemons on temporary sockets and stores. Streaming, ranks, resume,
 * malformed frames, kill -9 + restart. */
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "pipeline/client.h"
#include "proto/proto.h"
#include "t.h"
#include "t_datad.h"

static const char *const digits[] = {"digits/digits-000000.tar", "digits/digits-000001.tar"};

/* A copy of everything in a batch but its per-connection index. */
typedef struct {
    uint64_t epoch, position;
    uint32_t n, nnz;
    uint32_t crc_images, crc_labels;
    uint64_t keys[64];
} snap_t;

static void snap(const proto_batch_t *b, snap_t *s)
{
    memset(s, 0, sizeof(*s));
    s->epoch = b->cursor_epoch;
    s->position = b->cursor_position;
    s->n = b->n;
    s->nnz = b->nnz;
    s->crc_images = core_crc32c(0, b->images, (size_t)b->n * b->h * b->w * 3);
    s->crc_labels = core_crc32c(0, b->label_offsets, 4 * ((size_t)b->n + 1));
    s->crc_labels = core_crc32c(s->crc_labels, b->label_ids, 4 * (size_t)b->nnz);
    for (uint32_t i = 0; i < b->n && i < 64; i++) {
        s->keys[i] = proto_batch_key(b, i);
    }
}

static void start_digits(td_daemon_t *d, const char *name, int workers)
{
    td_init(d, name);
    td_store_build(d->store, digits, 2);
    td_set(d, "spool.enabled=false");
    td_set(d, "server.workers=%d", workers);
}

T_CASE(datad_two_ranks_cover_epoch)
{
    td_daemon_t d;
    start_digits(&d, "ranks", 2);
    td_start(&d);
    uint32_t B = 16, W = 2;
    uint64_t n = 0, per_rank = 0;
    uint8_t *seen = NULL;
    uint64_t total = 0;
    for (uint32_t r = 0; r < W; r++) {
        pl_client_opts_t o;
        td_client_opts(&o, d.sock, r, W, B, 42);
        pl_client_t *c = NULL;
        T_ASSERT_OK(pl_client_open(&o, &c));
        const proto_welcome_t *w = pl_client_welcome(c);
        if (r == 0) {
            n = w->records;
            T_ASSERT(n > 1000);
            per_rank = n / (W * B) * B;
            T_ASSERT_U64_EQ(w->epoch_batches, per_rank / B);
            seen = core_calloc(n, 1);
        }
        T_ASSERT_U64_EQ(w->records, n);
        for (uint64_t k = 0; k < per_rank / B; k++) {
            proto_batch_t b;
            T_ASSERT_OK(pl_client_next(c, &b));
            T_ASSERT_EQ(b.n, B);
            T_ASSERT_EQ(b.h, 16);
            for (uint32_t i = 0; i < b.n; i++) {
                uint64_t key = proto_batch_key(&b, i);
                T_ASSERT(key < n);
                if (seen[key]) {
                    T_FAIL("record %llu served twice in epoch 0", (unsigned long long)key);
                }
                seen[key] = 1;
                total++;
            }
        }
        uint64_t e = 0, p = 0;
        pl_client_cursor(c, &e, &p);
        T_ASSERT_U64_EQ(e, 1); /* the cursor after an epoch's last batch is (epoch + 1, 0) */
        T_ASSERT_U64_EQ(p, 0);
        pl_client_close(c);
    }
    T_ASSERT_U64_EQ(total, W * per_rank);
    T_ASSERT(n - total < (uint64_t)W * B); /* only the remainder is dropped */
    core_free(seen);
    td_stop_clean(&d);
}

static void run_stream(const char *sock, uint64_t epoch, uint64_t pos, int nb, snap_t *out)
{
    pl_client_opts_t o;
    td_client_opts(&o, sock, 0, 1, 32, 7);
    o.hello.epoch = epoch;
    o.hello.position = pos;
    pl_client_t *c = NULL;
    T_ASSERT_OK(pl_client_open(&o, &c));
    for (int i = 0; i < nb; i++) {
        proto_batch_t b;
        T_ASSERT_OK(pl_client_next(c, &b));
        snap(&b, &out[i]);
    }
    pl_client_close(c);
}

T_CASE(datad_resume_and_worker_count)
{
    /* Same (seed, params, cursor) -> the same bytes, whether resumed or not, with 1 or 3 workers,
     * across the epoch boundary too. */
    td_daemon_t d;
    start_digits(&d, "resume", 1);
    td_start(&d);
    enum { NB = 8 };
    snap_t full[NB + 4], part[NB];
    /* 1797 records / 32 = 56 batches per epoch: start near the end of epoch 0. */
    run_stream(d.sock, 0, 52 * 32, NB + 4, full);
    run_stream(d.sock, 0, 52 * 32, 3, part);
    run_stream(d.sock, part[2].epoch, part[2].position, NB - 3, part + 3);
    td_stop_clean(&d);
    for (int i = 0; i < NB; i++) {
        T_ASSERT(memcmp(&full[i], &part[i], sizeof(snap_t)) == 0);
    }
    /* Crossed into epoch 1 somewhere in the middle. */
    T_ASSERT_U64_EQ(full[NB - 1].epoch, 1);
    /* A different permutation in epoch 1. */
    T_ASSERT(full[0].keys[0] != full[NB - 1].keys[0] || full[0].keys[1] != full[NB - 1].keys[1]);

    td_set(&d, "server.workers=3");
    td_start(&d);
    snap_t again[NB + 4];
    run_stream(d.sock, 0, 52 * 32, NB + 4, again);
    td_stop_clean(&d);
    for (int i = 0; i < NB + 4; i++) {
        T_ASSERT(memcmp(&full[i], &again[i], sizeof(snap_t)) == 0);
    }
}

T_CASE(datad_kill9_restart_no_gap)
{
    td_daemon_t d;
    start_digits(&d, "kill9", 2);
    td_start(&d);
    pl_client_opts_t o;
    td_client_opts(&o, d.sock, 0, 1, 32, 99);
    o.reconnect_ms = 30000;
    pl_client_t *c = NULL;
    T_ASSERT_OK(pl_client_open(&o, &c));
    uint64_t n = pl_client_welcome(c)->records;
    uint64_t per_epoch = n / 32 * 32;
    uint8_t *seen = core_calloc(n, 1);
    uint64_t got = 0;
    int killed = 0;
    /* One whole epoch, with two kill -9 + restarts in the middle. */
    while (got < per_epoch) {
        proto_batch_t b;
        T_ASSERT_OK(pl_client_next(c, &b));
        for (uint32_t i = 0; i < b.n; i++) {
            uint64_t key = proto_batch_key(&b, i);
            T_ASSERT(key < n);
            if (seen[key]) {
                T_FAIL("record %llu seen twice", (unsigned long long)key);
            }
            seen[key] = 1;
        }
        got += b.n;
        if ((got == 15 * 32 || got == 40 * 32) && killed < 2) {
            int st = td_stop(&d, SIGKILL);
            T_ASSERT(WIFSIGNALED(st));
            killed++;
            td_start(&d); /* removes the stale socket, re-reads the epoch log */
        }
    }
    T_ASSERT_EQ(killed, 2);
    T_ASSERT(pl_client_reconnects(c) >= 2);
    T_ASSERT_U64_EQ(got, per_epoch);
    uint64_t e = 0, p = 0;
    pl_client_cursor(c, &e, &p);
    T_ASSERT_U64_EQ(e, 1);
    pl_client_close(c);
    core_free(seen);
    td_stop_clean(&d);
}

T_MAIN()
