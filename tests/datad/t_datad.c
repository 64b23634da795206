/* sc-datad integration-test helpers (t_datad.h). */
#include "t_datad.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
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
#include "core/log.h"
#include "core/timing.h"
#include "pipeline/ingest.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"
#include "t.h"

static void set_sun(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n >= sizeof sa->sun_path) {
        T_FAIL("socket path too long: %s", path);
    }
    memcpy(sa->sun_path, path, n + 1);
}

/* Daemons still running when a test fails are killed at exit (only by the test process itself,
 * not by a forked child that exits). */
static pid_t g_pids[8];
static pid_t g_owner;

static void kill_leftovers(void)
{
    if (getpid() != g_owner) {
        return;
    }
    for (int i = 0; i < 8; i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
        }
    }
}

static void track(pid_t old, pid_t pid)
{
    if (g_owner == 0) {
        g_owner = getpid();
        atexit(kill_leftovers);
    }
    for (int i = 0; i < 8; i++) {
        if (g_pids[i] == old) {
            g_pids[i] = pid;
            return;
        }
    }
}

void td_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

const char *td_corpus(const char *rel)
{
    static char buf[4096];
    char r[1024];
    snprintf(r, sizeof r, "corpus/%s", rel);
    snprintf(buf, sizeof buf, "%s", t_shared(r));
    return buf;
}

void td_init(td_daemon_t *d, const char *name)
{
    memset(d, 0, sizeof(*d));
    (void)t_shared("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    snprintf(d->dir, sizeof d->dir, "%s/%s", t_tmpdir(), name);
    if (mkdir(d->dir, 0700) != 0 && errno != EEXIST) {
        T_FAIL("mkdir %s: %s", d->dir, strerror(errno));
    }
    snprintf(d->store, sizeof d->store, "%s/store", d->dir);
    snprintf(d->spool, sizeof d->spool, "%s/spool", d->dir);
    snprintf(d->sock, sizeof d->sock, "%s/d.sock", d->dir);
    snprintf(d->ctl, sizeof d->ctl, "%s/c.sock", d->dir);
    d->pid = -1;
}

void td_set(td_daemon_t *d, const char *fmt, ...)
{
    T_ASSERT(d->n_sets < 16);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->sets[d->n_sets++], sizeof d->sets[0], fmt, ap);
    va_end(ap);
}

uint64_t td_store_build(const char *store_dir, const char *const *tars, size_t n)
{
    const char *vocab = t_shared("tokenizer/bpe_simple_vocab_16e6.txt.gz");
    char vpath[4096];
    snprintf(vpath, sizeof vpath, "%s", vocab);
    pl_tok_t *tok = NULL;
    T_ASSERT_OK(pl_tok_load(vpath, &tok));
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    T_ASSERT_OK(pl_store_create(store_dir, pl_tok_hash(tok), vpath, &pol, NULL));
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(store_dir, PL_STORE_RDWR, &st));
    pl_ingest_t *ing = NULL;
    T_ASSERT_OK(pl_ingest_new(st, tok, NULL, &ing));
    for (size_t i = 0; i < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s", td_corpus(tars[i]));
        T_ASSERT_OK(pl_ingest_file(ing, p));
    }
    uint64_t count = pl_store_count(st);
    pl_ingest_free(ing);
    pl_store_close(st);
    pl_tok_free(tok);
    pl_record_thread_cleanup();
    return count;
}

void td_start(td_daemon_t *d)
{
    char notify[1200];
    snprintf(notify, sizeof notify, "%s/notify.sock", d->dir);
    unlink(notify);
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    T_ASSERT(nfd >= 0);
    struct sockaddr_un sa;
    set_sun(&sa, notify);
    T_ASSERT(bind(nfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);

    const char *root = getenv("SC_BUILD_ROOT");
    char exe[4096];
    snprintf(exe, sizeof exe, "%s/daemon/sc-datad", root != NULL ? root : ".");
    char *argv[64];
    int ac = 0;
    static char a_store[1200], a_spool[1200], a_sock[1200], a_ctl[1200];
    snprintf(a_store, sizeof a_store, "store.dir=%s", d->store);
    snprintf(a_spool, sizeof a_spool, "spool.dir=%s", d->spool);
    snprintf(a_sock, sizeof a_sock, "socket.data=%s", d->sock);
    snprintf(a_ctl, sizeof a_ctl, "socket.control=%s", d->ctl);
    argv[ac++] = exe;
    argv[ac++] = (char *)"--config";
    argv[ac++] = (char *)"/dev/null";
    char *base[] = {a_store, a_spool, a_sock, a_ctl};
    for (int i = 0; i < 4; i++) {
        argv[ac++] = (char *)"--set";
        argv[ac++] = base[i];
    }
    for (int i = 0; i < d->n_sets; i++) {
        argv[ac++] = (char *)"--set";
        argv[ac++] = d->sets[i];
    }
    argv[ac] = NULL;
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        setenv("NOTIFY_SOCKET", notify, 1);
        if (d->watchdog_usec != 0) {
            char us[32];
            snprintf(us, sizeof us, "%u", d->watchdog_usec);
            setenv("WATCHDOG_USEC", us, 1);
        }
        if (getenv("SC_DATAD_LOG") == NULL) {
            setenv("SC_LOG_LEVEL", "info", 1);
        }
        execv(exe, argv);
        _exit(127);
    }
    d->pid = pid;
    track(0, pid);
    uint64_t deadline = core_now_ns() / 1000000u + 30000;
    for (;;) {
        struct pollfd p = {nfd, POLLIN, 0};
        int pr = poll(&p, 1, 100);
        if (pr > 0) {
            char msg[512];
            ssize_t r = recv(nfd, msg, sizeof msg - 1, 0);
            if (r > 0) {
                msg[r] = '\0';
                if (strstr(msg, "READY=1") != NULL) {
                    break;
                }
            }
        }
        int st = 0;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            track(pid, 0);
            d->pid = -1;
            close(nfd);
            T_FAIL("sc-datad exited before READY (status %d)", st);
        }
        if (core_now_ns() / 1000000u > deadline) {
            close(nfd);
            T_FAIL("sc-datad did not become ready in 30 s");
        }
    }
    if (d->keep_notify) {
        d->notify_fd = nfd;
        return;
    }
    close(nfd);
    unlink(notify);
}

int td_stop(td_daemon_t *d, int sig)
{
    if (d->pid <= 0) {
        return -1;
    }
    kill(d->pid, sig);
    int st = 0;
    uint64_t deadline = core_now_ns() / 1000000u + 60000;
    for (;;) {
        pid_t r = waitpid(d->pid, &st, WNOHANG);
        if (r == d->pid) {
            track(d->pid, 0);
            break;
        }
        if (core_now_ns() / 1000000u > deadline) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            track(d->pid, 0);
            d->pid = -1;
            T_FAIL("sc-datad did not exit within 60 s of signal %d", sig);
        }
        td_sleep_ms(20);
    }
    d->pid = -1;
    return st;
}

void td_stop_clean(td_daemon_t *d)
{
    int st = td_stop(d, SIGTERM);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        T_FAIL("sc-datad did not exit cleanly on SIGTERM (status 0x%x)", st);
    }
}

int td_connect(const char *sock)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    T_ASSERT(fd >= 0);
    struct sockaddr_un sa;
    set_sun(&sa, sock);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        T_FAIL("connect %s: %s", sock, strerror(errno));
    }
    return fd;
}

long td_read_until_eof(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    size_t n = 0;
    uint64_t deadline = core_now_ns() / 1000000u + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = core_now_ns() / 1000000u;
        if (now >= deadline) {
            return -1;
        }
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, (int)(deadline - now));
        if (pr <= 0) {
            continue;
        }
        uint8_t tmp[4096];
        ssize_t r = recv(fd, tmp, sizeof tmp, 0);
        if (r <= 0) {
            return (long)n;
        }
        size_t take = (size_t)r;
        if (take > cap - n) {
            take = cap - n;
        }
        memcpy(buf + n, tmp, take);
        n += take;
    }
}

int td_ctl(const char *ctl_path, const char *req, char *resp, size_t cap)
{
    int fd = td_connect(ctl_path);
    size_t len = strlen(req);
    if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    uint64_t deadline = core_now_ns() / 1000000u + 10000;
    while (n + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0) {
            if (core_now_ns() / 1000000u > deadline) {
                break;
            }
            continue;
        }
        ssize_t r = recv(fd, resp + n, cap - n - 1, 0);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        if (memchr(resp, '\n', n) != NULL) {
            break;
        }
    }
    resp[n] = '\0';
    close(fd);
    return n > 0 ? 0 : -1;
}

void td_client_opts(pl_client_opts_t *o, const char *sock, uint32_t rank, uint32_t world,
                    uint32_t batch, uint64_t seed)
{
    pl_client_opts_default(o);
    o->socket_path = sock;
    o->hello.rank = rank;
    o->hello.world = world;
    o->hello.batch_size = batch;
    o->hello.out_h = o->hello.out_w = 16;
    o->hello.scale_min = 0.5f;
    o->hello.scale_max = 1.0f;
    o->hello.flip = 1;
    o->hello.seed = seed;
    o->hello.flags = PROTO_HELLO_WANT_KEYS;
    snprintf(o->hello.name, sizeof o->hello.name, "test-r%u", rank);
    o->window = 2;
    o->io_timeout_ms = 30000;
    o->reconnect_ms = 30000;
}
