/* bench_stream: batches/s and GB/s from a real sc-datad through its Unix socket to a client that
 * discards them (pl_client, credits window 8). Each batch is decoded and augmented by the daemon's
 * workers, so the figure is the end-to-end rate a trainer would see. For scale, a last line gives
 * the ceiling of the socket itself on this machine: 12 MiB frames pushed through a Unix
 * socketpair by one thread and discarded by another (no decode, no protocol).
 *
 *   bench_stream [--datad PATH] [--store DIR] [--workers N] [--seconds S]
 *
 * Without --store it builds one in a temporary directory from ../shared/data/corpus/emoji-google
 * (64x64 JPEG; needs the CLIP vocabulary there too). Prints one line per configuration. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "pipeline/client.h"
#include "pipeline/ingest.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"

static int build_store(const char *dir, const char *shared)
{
    char vocab[4096];
    snprintf(vocab, sizeof vocab, "%s/tokenizer/bpe_simple_vocab_16e6.txt.gz", shared);
    pl_tok_t *tok = NULL;
    int rc = pl_tok_load(vocab, &tok);
    if (rc < 0) {
        fprintf(stderr, "bench_stream: vocabulary %s: %s\n", vocab, core_strerror(rc));
        return rc;
    }
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    rc = pl_store_create(dir, pl_tok_hash(tok), vocab, &pol, NULL);
    pl_store_t *st = NULL;
    if (rc == 0) {
        rc = pl_store_open(dir, PL_STORE_RDWR, &st);
    }
    pl_ingest_t *ing = NULL;
    if (rc == 0) {
        rc = pl_ingest_new(st, tok, NULL, &ing);
    }
    const char *files[] = {"emoji-google/google-000000.tar", "emoji-google/google-000001.tar",
                           "emoji-google/google-000002.tar", "emoji-google/google-000003.tar",
                           "digits/digits-000000.tar", "digits/digits-000001.tar"};
    for (size_t i = 0; i < sizeof files / sizeof files[0] && rc == 0; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/corpus/%s", shared, files[i]);
        rc = pl_ingest_file(ing, p);
    }
    if (rc == 0) {
        fprintf(stderr, "bench_stream: store with %llu records\n",
                (unsigned long long)pl_store_count(st));
    }
    pl_ingest_free(ing);
    pl_store_close(st);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
    return rc;
}

static pid_t start_datad(const char *exe, const char *store, const char *dir, unsigned workers)
{
    static char a[5][8400];
    snprintf(a[0], sizeof a[0], "store.dir=%s", store);
    snprintf(a[1], sizeof a[1], "socket.data=%s/d.sock", dir);
    snprintf(a[2], sizeof a[2], "socket.control=%s/c.sock", dir);
    snprintf(a[3], sizeof a[3], "server.workers=%u", workers);
    snprintf(a[4], sizeof a[4], "store.epoch_log=%s/epochs.log", dir);
    pid_t pid = fork();
    if (pid == 0) {
        setenv("SC_LOG_LEVEL", "warning", 1);
        execl(exe, exe, "--config", "/dev/null", "--set", "spool.enabled=false", "--set",
              "log.level=warning", "--set", a[0], "--set", a[1], "--set", a[2], "--set", a[3],
              "--set", a[4], (char *)NULL);
        _exit(127);
    }
    return pid;
}

typedef struct run_s {
    const char *name;
    uint32_t size, batch;
    int eval;
} run_t;

static int bench_one(const char *sock, const run_t *r, double seconds, uint64_t seed)
{
    pl_client_opts_t o;
    pl_client_opts_default(&o);
    o.socket_path = sock;
    o.hello.batch_size = r->batch;
    o.hello.out_h = o.hello.out_w = r->size;
    o.hello.mode = r->eval ? PROTO_MODE_EVAL : PROTO_MODE_TRAIN;
    o.hello.flip = 1;
    o.hello.seed = seed;
    snprintf(o.hello.name, sizeof o.hello.name, "bench_stream");
    o.window = 8;
    o.reconnect_ms = 20000;
    pl_client_t *c = NULL;
    int rc = pl_client_open(&o, &c);
    if (rc < 0) {
        fprintf(stderr, "bench_stream: connect: %s\n", core_strerror(rc));
        return rc;
    }
    proto_batch_t b;
    /* Warm-up: the workers' decoders and buffers grow on the first batches. */
    for (int i = 0; i < 8 && rc == 0; i++) {
        rc = pl_client_next(c, &b);
    }
    uint64_t n = 0, bytes = 0, samples = 0;
    double t0 = core_now_s(), t = t0;
    while (rc == 0 && t - t0 < seconds) {
        rc = pl_client_next(c, &b);
        if (rc == 0) {
            n++;
            samples += b.n;
            bytes += PROTO_HEADER_SIZE + PROTO_BATCH_FIXED + (uint64_t)b.n * b.h * b.w * 3 +
                     4ull * (b.n + 1 + b.nnz);
        }
        t = core_now_s();
    }
    pl_client_close(c);
    if (rc < 0) {
        fprintf(stderr, "bench_stream: %s\n", core_strerror(rc));
        return rc;
    }
    double dt = t - t0;
    printf("%-22s %4ux%-4u B=%-4u %8.1f batches/s %9.0f images/s %7.3f GB/s  (%llu batches, "
           "%.1f s)\n",
           r->name, r->size, r->size, r->batch, (double)n / dt, (double)samples / dt,
           (double)bytes / dt / 1e9, (unsigned long long)n, dt);
    fflush(stdout);
    return 0;
}

typedef struct pump_s {
    int fd;
    double seconds;
    uint64_t bytes;
} pump_t;

static void *pump_main(void *arg)
{
    pump_t *p = arg;
    size_t len = 12u << 20;
    uint8_t *buf = core_calloc(1, len);
    double t0 = core_now_s();
    while (buf != NULL && core_now_s() - t0 < p->seconds) {
        size_t off = 0;
        while (off < len) {
            ssize_t w = send(p->fd, buf + off, len - off, MSG_NOSIGNAL);
            if (w <= 0) {
                goto out;
            }
            off += (size_t)w;
        }
        p->bytes += len;
    }
out:
    core_free(buf);
    shutdown(p->fd, SHUT_WR);
    return NULL;
}

static void socket_ceiling(double seconds)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        return;
    }
    pump_t p = {sv[0], seconds, 0};
    pthread_t th;
    if (pthread_create(&th, NULL, pump_main, &p) != 0) {
        close(sv[0]);
        close(sv[1]);
        return;
    }
    static uint8_t sink[1 << 20];
    double t0 = core_now_s();
    while (recv(sv[1], sink, sizeof sink, 0) > 0) {
    }
    double dt = core_now_s() - t0;
    pthread_join(th, NULL);
    printf("%-22s 12 MiB frames        %7.3f GB/s through a socketpair (no decode)\n",
           "socket ceiling", (double)p.bytes / dt / 1e9);
    close(sv[0]);
    close(sv[1]);
}

int main(int argc, char **argv)
{
    core_log_init("bench_stream");
    const char *exe = NULL, *store = NULL;
    unsigned workers = 0;
    double seconds = 5.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--datad") == 0 && i + 1 < argc) {
            exe = argv[++i];
        } else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc) {
            store = argv[++i];
        } else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            workers = (unsigned)atoi(argv[++i]);
        } else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: bench_stream [--datad PATH] [--store DIR] [--workers N] "
                            "[--seconds S]\n");
            return 2;
        }
    }
    if (workers == 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        workers = nc > 0 ? (unsigned)nc : 1;
    }
    char exe_buf[4096];
    if (exe == NULL) {
        const char *b = getenv("SC_BUILD_ROOT");
        snprintf(exe_buf, sizeof exe_buf, "%s/daemon/sc-datad", b != NULL ? b : ".");
        exe = exe_buf;
    }
    char dir[] = "/tmp/bench-stream-XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    char store_buf[4200];
    if (store == NULL) {
        const char *shared = getenv("SC_SHARED_DATA");
        if (shared == NULL) {
            shared = "../shared/data";
        }
        snprintf(store_buf, sizeof store_buf, "%s/store", dir);
        if (build_store(store_buf, shared) < 0) {
            return 1;
        }
        store = store_buf;
    }
    pid_t pid = start_datad(exe, store, dir, workers);
    char sock[4200];
    snprintf(sock, sizeof sock, "%s/d.sock", dir);
    printf("bench_stream: sc-datad with %u workers, %ld CPUs online\n", workers,
           sysconf(_SC_NPROCESSORS_ONLN));
    static const run_t runs[] = {
        {"train rrc+flip", 64, 256, 0},
        {"train rrc+flip", 224, 64, 0},
        {"eval resize+crop", 64, 256, 1},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof runs / sizeof runs[0] && rc == 0; i++) {
        rc = bench_one(sock, &runs[i], seconds, 1 + i);
    }
    kill(pid, SIGTERM);
    socket_ceiling(seconds);
    int st = 0;
    waitpid(pid, &st, 0);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_stream: could not remove %s\n", dir);
    }
    return rc < 0 ? 1 : 0;
}
