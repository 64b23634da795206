/* sc-datad integration: malformed frames of every kind close only the offending connection (after
 * an ERROR frame naming the problem when possible) while another client keeps streaming. */
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <grp.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/timing.h"
#include "pipeline/client.h"
#include "proto/proto.h"
#include "t.h"
#include "t_datad.h"

static const char *const digits[] = {"digits/digits-000000.tar"};

/* Reads until the daemon closes; returns the ERROR frame's code (0 if the connection closed with
 * no ERROR) and copies its param. Fails if the connection stays open for 5 s. */
static int expect_close(int fd, char *param, size_t pcap)
{
    uint8_t buf[8192];
    long n = td_read_until_eof(fd, buf, sizeof buf, 5000);
    close(fd);
    if (n < 0) {
        T_FAIL("the daemon kept a bad connection open");
    }
    if (param != NULL) {
        param[0] = '\0';
    }
    if (n == 0) {
        return 0;
    }
    proto_frame_t f;
    size_t used = 0;
    T_ASSERT_OK(proto_frame_decode(buf, (size_t)n, 0, &f, &used));
    if (f.type == PROTO_WELCOME) {
        /* skip it: the error follows */
        T_ASSERT_OK(proto_frame_decode(buf + used, (size_t)n - used, 0, &f, &used));
    }
    T_ASSERT_EQ(f.type, PROTO_ERROR);
    proto_error_t e;
    T_ASSERT_OK(proto_error_parse(&f, &e));
    if (param != NULL) {
        snprintf(param, pcap, "%s", e.param);
    }
    return e.code;
}

static void send_raw(int fd, const void *p, size_t n)
{
    T_ASSERT(send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n);
}

static size_t hello_bytes(uint8_t *buf, size_t cap, uint32_t batch)
{
    pl_client_opts_t o;
    td_client_opts(&o, "", 0, 1, 8, 1);
    o.hello.batch_size = batch;
    o.hello.initial_credits = 1;
    size_t n = 0;
    T_ASSERT_OK(proto_hello_encode(buf, cap, &o.hello, &n));
    return n;
}

static void reheader(uint8_t *hdr)
{
    proto_put_u32(hdr + 16, core_crc32c(0, hdr, 16));
}

static void keep_streaming(pl_client_t *c, int n)
{
    for (int i = 0; i < n; i++) {
        proto_batch_t b;
        T_ASSERT_OK(pl_client_next(c, &b));
        T_ASSERT_EQ(b.n, 8);
    }
}

T_CASE(datad_malformed_frames)
{
    td_daemon_t d;
    td_init(&d, "frames");
    td_store_build(d.store, digits, 1);
    td_set(&d, "spool.enabled=false");
    td_set(&d, "server.workers=2");
    td_set(&d, "server.handshake_timeout_ms=1500");
    td_start(&d);

    pl_client_opts_t o;
    td_client_opts(&o, d.sock, 0, 1, 8, 5);
    o.reconnect_ms = 0; /* this client must never need a reconnect */
    pl_client_t *good = NULL;
    T_ASSERT_OK(pl_client_open(&o, &good));
    keep_streaming(good, 2);

    uint8_t buf[4096];
    char param[80];
    int bad = 0;

    /* 1. bad magic */
    int fd = td_connect(d.sock);
    send_raw(fd, "XXXXgarbage-garbage-garbage", 27);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_EBAD_MAGIC);
    bad++;
    keep_streaming(good, 1);

    /* 2. wrong version (valid header CRC) */
    size_t n = hello_bytes(buf, sizeof buf, 8);
    proto_put_u16(buf + 4, 2);
    reheader(buf);
    fd = td_connect(d.sock);
    send_raw(fd, buf, n);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_EBAD_VERSION);
    bad++;
    keep_streaming(good, 1);

    /* 3. oversized length: refused from the header alone, nothing allocated, no wait */
    n = hello_bytes(buf, sizeof buf, 8);
    proto_put_u32(buf + 8, 1u << 30);
    reheader(buf);
    fd = td_connect(d.sock);
    send_raw(fd, buf, PROTO_HEADER_SIZE);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_ETOO_LARGE);
    bad++;
    keep_streaming(good, 1);

    /* 4. truncated length: a HELLO whose length is shorter than its fixed part */
    n = hello_bytes(buf, sizeof buf, 8);
    T_ASSERT_OK(proto_frame_encode(buf + 2048, 2048, PROTO_HELLO, buf + PROTO_HEADER_SIZE, 10, &n));
    fd = td_connect(d.sock);
    send_raw(fd, buf + 2048, n);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_ECORRUPT);
    bad++;
    keep_streaming(good, 1);

    /* 5. truncated frame: half a HELLO, then the client hangs up */
    n = hello_bytes(buf, sizeof buf, 8);
    fd = td_connect(d.sock);
    send_raw(fd, buf, n / 2);
    shutdown(fd, SHUT_WR);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), 0);
    keep_streaming(good, 1);

    /* 6. garbage */
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
    buf[0] = 'S'; /* get past the first-byte check: the header CRC catches it */
    fd = td_connect(d.sock);
    send_raw(fd, buf, sizeof buf);
    int code = expect_close(fd, NULL, 0);
    T_ASSERT(code == CORE_EBAD_MAGIC || code == CORE_ECORRUPT);
    bad++;
    keep_streaming(good, 1);

    /* 7. bad payload CRC */
    n = hello_bytes(buf, sizeof buf, 8);
    buf[PROTO_HEADER_SIZE + 3] ^= 0x40;
    fd = td_connect(d.sock);
    send_raw(fd, buf, n);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_ECORRUPT);
    bad++;
    keep_streaming(good, 1);

    /* 8. a parameter out of range: ERROR names it */
    n = hello_bytes(buf, sizeof buf, 0);
    fd = td_connect(d.sock);
    send_raw(fd, buf, n);
    T_ASSERT_EQ(expect_close(fd, param, sizeof param), CORE_ECONFIG);
    T_ASSERT_STR_EQ(param, "batch_size");
    keep_streaming(good, 1);

    /* 9. CREDIT before HELLO */
    T_ASSERT_OK(proto_u32_encode(buf, sizeof buf, PROTO_CREDIT, 1, &n));
    fd = td_connect(d.sock);
    send_raw(fd, buf, n);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_ESTATE);
    keep_streaming(good, 1);

    /* 10. a server-only frame type after the handshake */
    n = hello_bytes(buf, sizeof buf, 8);
    size_t m = 0;
    uint8_t wbuf[256];
    memset(wbuf, 0, sizeof wbuf);
    T_ASSERT_OK(proto_frame_encode(buf + n, sizeof buf - n, PROTO_WELCOME, wbuf, 64, &m));
    fd = td_connect(d.sock);
    send_raw(fd, buf, n + m);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_EUNSUPPORTED);
    keep_streaming(good, 1);

    /* 11. slow but valid: one byte every 5 ms completes the handshake */
    n = hello_bytes(buf, sizeof buf, 8);
    fd = td_connect(d.sock);
    for (size_t i = 0; i < n; i++) {
        send_raw(fd, buf + i, 1);
        td_sleep_ms(5);
    }
    uint8_t rb[PROTO_HEADER_SIZE + PROTO_WELCOME_SIZE];
    size_t got = 0;
    while (got < sizeof rb) {
        ssize_t r = recv(fd, rb + got, sizeof rb - got, 0);
        T_ASSERT(r > 0);
        got += (size_t)r;
    }
    proto_frame_t f;
    T_ASSERT_OK(proto_frame_decode(rb, got, 0, &f, &m));
    T_ASSERT_EQ(f.type, PROTO_WELCOME);
    close(fd);
    keep_streaming(good, 1);

    /* 12. slow-loris: a partial frame, then nothing: the handshake timeout closes it */
    fd = td_connect(d.sock);
    send_raw(fd, buf, 7);
    T_ASSERT_EQ(expect_close(fd, NULL, 0), CORE_ECLOSED);
    keep_streaming(good, 1);

    /* 13. control socket: an over-long line and junk close only that connection */
    fd = td_connect(d.ctl);
    memset(buf, 'a', sizeof buf);
    send_raw(fd, buf, sizeof buf);
    send_raw(fd, buf, sizeof buf);
    send_raw(fd, buf, sizeof buf);
    T_ASSERT(td_read_until_eof(fd, buf, sizeof buf, 5000) > 0);
    close(fd);
    char resp[8192];
    T_ASSERT_OK(td_ctl(d.ctl, "{\"cmd\":\"nonsense\"}", resp, sizeof resp));
    T_ASSERT(strstr(resp, "\"ok\":false") != NULL);
    keep_streaming(good, 1);

    /* The good client never reconnected; the daemon counted the bad frames. */
    T_ASSERT_U64_EQ(pl_client_reconnects(good), 0);
    T_ASSERT_OK(td_ctl(d.ctl, "{\"cmd\":\"status\"}", resp, sizeof resp));
    char *p = strstr(resp, "\"bad_frames\":");
    T_ASSERT(p != NULL);
    T_ASSERT(atoi(p + 13) >= bad);
    pl_client_close(good);
    td_stop_clean(&d);
}

T_CASE(datad_permissions_and_notify)
{
    td_daemon_t d;
    td_init(&d, "perm");
    td_store_build(d.store, digits, 1);
    td_set(&d, "spool.enabled=false");
    td_set(&d, "server.workers=1");
    td_set(&d, "socket.mode=0666");
    td_set(&d, "socket.group=100");
    td_set(&d, "socket.allow_uids=4242");
    d.keep_notify = 1;
    d.watchdog_usec = 400000;
    td_start(&d);

    /* Mode and group set right after bind. */
    struct stat st;
    T_ASSERT(stat(d.sock, &st) == 0);
    T_ASSERT(S_ISSOCK(st.st_mode));
    T_ASSERT_EQ(st.st_mode & 0777, 0666);
    T_ASSERT_EQ(st.st_gid, 100);
    T_ASSERT(stat(d.ctl, &st) == 0);
    T_ASSERT_EQ(st.st_mode & 0777, 0666);

    /* sd_notify: WATCHDOG=1 at half the interval and STATUS= lines arrive after READY. */
    int got_wd = 0, got_status = 0;
    uint64_t deadline = core_now_ns() / 1000000u + 5000;
    while ((!got_wd || !got_status) && core_now_ns() / 1000000u < deadline) {
        struct pollfd p = {d.notify_fd, POLLIN, 0};
        if (poll(&p, 1, 100) > 0) {
            char msg[512];
            ssize_t r = recv(d.notify_fd, msg, sizeof msg - 1, 0);
            if (r > 0) {
                msg[r] = '\0';
                got_wd |= strstr(msg, "WATCHDOG=1") != NULL;
                got_status |= strstr(msg, "STATUS=") != NULL;
            }
        }
    }
    T_ASSERT(got_wd);
    T_ASSERT(got_status);
    close(d.notify_fd);

    /* The daemon's own uid passes the allow-list. */
    pl_client_opts_t o;
    td_client_opts(&o, d.sock, 0, 1, 8, 5);
    pl_client_t *c = NULL;
    T_ASSERT_OK(pl_client_open(&o, &c));
    proto_batch_t b;
    T_ASSERT_OK(pl_client_next(c, &b));

    /* Another uid that is not listed is refused with EACCES (needs root to switch uid; the test
     * directories are made traversable for it). */
    if (geteuid() == 0) {
        T_ASSERT(chmod(t_tmpdir(), 0711) == 0);
        T_ASSERT(chmod(d.dir, 0711) == 0);
        fflush(NULL);
        pid_t pid = fork();
        T_ASSERT(pid >= 0);
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) {
                _exit(3);
            }
            /* Refused at accept, before any frame: just read the ERROR. */
            int fd = td_connect(d.sock);
            char param[8];
            _exit(expect_close(fd, param, sizeof param) == CORE_ERR(EACCES) ? 0 : 1);
        }
        int ws = 0;
        T_ASSERT(waitpid(pid, &ws, 0) == pid);
        T_ASSERT(WIFEXITED(ws));
        T_ASSERT_EQ(WEXITSTATUS(ws), 0);
        char resp[8192];
        T_ASSERT_OK(td_ctl(d.ctl, "{\"cmd\":\"status\"}", resp, sizeof resp));
        T_ASSERT(strstr(resp, "\"connections_refused\":1") != NULL);
    }
    T_ASSERT_OK(pl_client_next(c, &b));
    pl_client_close(c);
    td_stop_clean(&d);
}

/* In a child running as nobody with supplementary groups `groups`: does a status request on the
 * control socket succeed? Exit code 0 = answered ok, 1 = refused, 3 = could not switch ids. */
static int ctl_as_nobody_with_groups(const char *ctl, const gid_t *groups, size_t n)
{
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        if (setgroups(n, groups) != 0 || setgid(65534) != 0 || setuid(65534) != 0) {
            _exit(3);
        }
        char resp[8192];
        int rc = td_ctl(ctl, "{\"cmd\":\"status\"}", resp, sizeof resp);
        _exit(rc == 0 && strstr(resp, "\"store\"") != NULL ? 0 : 1);
    }
    int ws = 0;
    T_ASSERT(waitpid(pid, &ws, 0) == pid);
    T_ASSERT(WIFEXITED(ws));
    return WEXITSTATUS(ws);
}

T_CASE(datad_allow_gids_supplementary_groups)
{
    /* allow_gids admits a peer whose primary group is not listed but one of its supplementary
     * groups is (how `usermod -aG superclass alice` users connect), and still refuses others. */
    if (geteuid() != 0) {
        T_SKIP("needs root to switch uid and groups");
    }
    td_daemon_t d;
    td_init(&d, "suppl");
    td_store_build(d.store, digits, 1);
    td_set(&d, "spool.enabled=false");
    td_set(&d, "server.workers=1");
    td_set(&d, "socket.mode=0666");
    td_set(&d, "socket.allow_gids=4343");
    td_start(&d);
    T_ASSERT(chmod(t_tmpdir(), 0711) == 0);
    T_ASSERT(chmod(d.dir, 0711) == 0);
    const gid_t member[] = {4100, 4343, 4200};
    const gid_t outsider[] = {4100, 4344};
    T_ASSERT_EQ(ctl_as_nobody_with_groups(d.ctl, member, 3), 0);
    T_ASSERT_EQ(ctl_as_nobody_with_groups(d.ctl, outsider, 2), 1);
    T_ASSERT_EQ(ctl_as_nobody_with_groups(d.ctl, NULL, 0), 1);
    td_stop_clean(&d);
}

static long long status_int(const char *ctl, const char *key)
{
    char resp[1 << 16];
    T_ASSERT_OK(td_ctl(ctl, "{\"cmd\":\"status\"}", resp, sizeof resp));
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    char *p = strstr(resp, pat);
    T_ASSERT(p != NULL);
    return atoll(p + strlen(pat));
}

T_CASE(datad_slow_client_never_stalls_another)
{
    td_daemon_t d;
    td_init(&d, "slow");
    td_store_build(d.store, digits, 1);
    td_set(&d, "spool.enabled=false");
    td_set(&d, "server.workers=2");
    td_start(&d);

    /* S asks for 8 big batches (224x224, 32 images: ~4.8 MB each) and never reads. */
    pl_client_opts_t so;
    td_client_opts(&so, d.sock, 0, 1, 32, 11);
    so.hello.out_h = so.hello.out_w = 224;
    so.hello.initial_credits = 8;
    uint8_t buf[512];
    size_t n = 0;
    T_ASSERT_OK(proto_hello_encode(buf, sizeof buf, &so.hello, &n));
    int slow = td_connect(d.sock);
    send_raw(slow, buf, n);

    /* F streams small batches meanwhile. */
    pl_client_opts_t o;
    td_client_opts(&o, d.sock, 0, 1, 16, 12);
    o.reconnect_ms = 0;
    pl_client_t *fast = NULL;
    T_ASSERT_OK(pl_client_open(&o, &fast));
    double t0 = core_now_s();
    for (int i = 0; i < 150; i++) {
        proto_batch_t b;
        T_ASSERT_OK(pl_client_next(fast, &b));
    }
    double dt = core_now_s() - t0;
    T_ASSERT(dt < 60.0);
    /* S got what its credits allow and no more. */
    long long sent = status_int(d.ctl, "batches_sent");
    T_ASSERT(sent >= 150);
    T_ASSERT(sent <= 150 + 2 + 8); /* F's window + S's credits */
    T_ASSERT_EQ(status_int(d.ctl, "clients"), 2);

    /* S reads part of a frame and hangs up: cleaned up, F unaffected. */
    uint8_t part[1000];
    T_ASSERT(recv(slow, part, sizeof part, 0) > 0);
    close(slow);
    for (int i = 0; i < 20; i++) {
        proto_batch_t b;
        T_ASSERT_OK(pl_client_next(fast, &b));
    }
    uint64_t deadline = core_now_ns() / 1000000u + 5000;
    while (status_int(d.ctl, "clients") != 1) {
        T_ASSERT(core_now_ns() / 1000000u < deadline);
        td_sleep_ms(20);
    }
    T_ASSERT_U64_EQ(pl_client_reconnects(fast), 0);
    pl_client_close(fast);
    td_stop_clean(&d);
}

T_MAIN()
