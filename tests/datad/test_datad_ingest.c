/* sc-datad integration: continuous ingest. Spool ingest of the shared corpus while a client
 * streams; a half-written file is not taken early; SIGTERM during ingest loses nothing (the final
 * store equals one ingested in a single pass, by content digest). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/timing.h"
#include "pipeline/client.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "t.h"
#include "t_datad.h"

static json_t *status(const td_daemon_t *d)
{
    static char resp[1 << 16];
    T_ASSERT_OK(td_ctl(d->ctl, "{\"cmd\":\"status\"}", resp, sizeof resp));
    json_error_t e;
    json_t *j = json_loads(resp, 0, &e);
    if (j == NULL) {
        T_FAIL("status is not JSON: %s", resp);
    }
    return j;
}

static long long jget(json_t *root, const char *sec, const char *key)
{
    return (long long)json_integer_value(json_object_get(json_object_get(root, sec), key));
}

/* Waits until ingest has finished `files` files with an empty queue; returns the record count. */
static long long wait_ingested(const td_daemon_t *d, long long files, int timeout_ms)
{
    uint64_t deadline = core_now_ns() / 1000000u + (uint64_t)timeout_ms;
    for (;;) {
        json_t *j = status(d);
        long long done = jget(j, "ingest", "files_done") + jget(j, "ingest", "files_failed");
        long long q = jget(j, "ingest", "queue");
        const char *cur = json_string_value(json_object_get(json_object_get(j, "ingest"),
                                                            "current"));
        long long rec = jget(j, "store", "records");
        int idle = q == 0 && (cur == NULL || cur[0] == '\0');
        json_decref(j);
        if (done >= files && idle) {
            return rec;
        }
        if (core_now_ns() / 1000000u > deadline) {
            T_FAIL("ingest did not finish %lld files in time (done %lld, queue %lld)", files, done,
                   q);
        }
        td_sleep_ms(50);
    }
}

static void copy_file(const char *src, const char *dst, size_t from, size_t to)
{
    size_t len = 0;
    char *data = t_read_file(src, &len);
    if (to == 0 || to > len) {
        to = len;
    }
    int fd = open(dst, O_WRONLY | O_CREAT | O_APPEND, 0644);
    T_ASSERT(fd >= 0);
    T_ASSERT(write(fd, data + from, to - from) == (ssize_t)(to - from));
    T_ASSERT(close(fd) == 0);
    core_free(data);
}

/* Drops a corpus file into the spool the safe way: write a dotfile, rename it in. */
static void drop(const td_daemon_t *d, const char *rel, const char *name)
{
    char tmp[2048], dst[2048], src[4096];
    snprintf(src, sizeof src, "%s", td_corpus(rel));
    snprintf(tmp, sizeof tmp, "%s/.%s.part", d->spool, name);
    snprintf(dst, sizeof dst, "%s/%s", d->spool, name);
    copy_file(src, tmp, 0, 0);
    T_ASSERT(rename(tmp, dst) == 0);
}

static int count_dir(const char *path, const char *suffix)
{
    DIR *dir = opendir(path);
    if (dir == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        size_t l = strlen(de->d_name), sl = strlen(suffix);
        if (de->d_name[0] != '.' && l > sl && strcmp(de->d_name + l - sl, suffix) == 0) {
            n++;
        }
    }
    closedir(dir);
    return n;
}

static void creating_daemon(td_daemon_t *d, const char *name, int settle_ms)
{
    td_init(d, name);
    td_set(d, "store.create=true");
    td_set(d, "store.vocab=%s", t_shared("tokenizer/bpe_simple_vocab_16e6.txt.gz"));
    td_set(d, "spool.settle_ms=%d", settle_ms);
    td_set(d, "spool.rescan_s=1");
    td_set(d, "server.workers=2");
    td_set(d, "ingest.batch_records=64");
}

T_CASE(datad_spool_ingest_while_streaming)
{
    td_daemon_t d;
    creating_daemon(&d, "spool", 200);
    td_start(&d);
    drop(&d, "digits/digits-000000.tar", "a.tar");

    pl_client_opts_t o;
    td_client_opts(&o, d.sock, 0, 1, 16, 3);
    pl_client_t *c = NULL;
    T_ASSERT_OK(pl_client_open(&o, &c));
    /* The first batch waits for the first commit (an epoch needs one batch of records). */
    proto_batch_t b;
    T_ASSERT_OK(pl_client_next(c, &b));
    long long n_a = wait_ingested(&d, 1, 60000);
    T_ASSERT(n_a > 0);

    /* More shards arrive while the client streams. */
    drop(&d, "digits/digits-000001.tar", "b.tar");
    drop(&d, "emoji-google/google-000000.tar", "c.tar");
    uint64_t max_key_epoch0 = 0, max_key_later = 0;
    int batches = 1;
    uint64_t deadline = core_now_ns() / 1000000u + 120000;
    long long total = 0;
    for (;;) {
        T_ASSERT_OK(pl_client_next(c, &b));
        batches++;
        for (uint32_t i = 0; i < b.n; i++) {
            uint64_t k = proto_batch_key(&b, i);
            uint64_t *m = b.cursor_epoch == 0 || (b.cursor_epoch == 1 && b.cursor_position == 0)
                              ? &max_key_epoch0
                              : &max_key_later;
            if (k > *m) {
                *m = k;
            }
        }
        if (batches % 20 == 0) {
            json_t *j = status(&d);
            long long done = jget(j, "ingest", "files_done");
            total = jget(j, "store", "records");
            json_decref(j);
            if (done == 3 && max_key_later >= (uint64_t)n_a) {
                break;
            }
        }
        T_ASSERT(core_now_ns() / 1000000u < deadline);
    }
    /* Epoch 0 was fixed before the later files: its records are the first file's only. The next
     * epochs include the new records. */
    T_ASSERT((long long)max_key_epoch0 < n_a);
    T_ASSERT((long long)max_key_later >= n_a);
    T_ASSERT(total > n_a);
    T_ASSERT_U64_EQ(pl_client_reconnects(c), 0);
    pl_client_close(c);

    char sub[2048];
    snprintf(sub, sizeof sub, "%s/done", d.spool);
    T_ASSERT_EQ(count_dir(sub, ".tar"), 3);
    T_ASSERT_EQ(count_dir(d.spool, ".tar"), 0);
    snprintf(sub, sizeof sub, "%s/failed", d.spool);
    T_ASSERT_EQ(count_dir(sub, ".tar"), 0);
    td_stop_clean(&d);
}

T_CASE(datad_half_written_not_taken)
{
    td_daemon_t ref;
    td_init(&ref, "half-ref");
    static const char *const one[] = {"digits/digits-000000.tar"};
    uint64_t expect = td_store_build(ref.store, one, 1);

    td_daemon_t d;
    creating_daemon(&d, "half", 1500);
    td_start(&d);
    char src[4096], dst[2048], hidden[2048];
    snprintf(src, sizeof src, "%s", td_corpus("digits/digits-000000.tar"));
    snprintf(dst, sizeof dst, "%s/slow.tar", d.spool);
    snprintf(hidden, sizeof hidden, "%s/.hidden.tar", d.spool);
    struct stat st;
    T_ASSERT(stat(src, &st) == 0);
    size_t len = (size_t)st.st_size;
    /* Written in place in three pieces with pauses shorter than settle_ms. */
    copy_file(src, dst, 0, len / 3);
    td_sleep_ms(900);
    copy_file(src, dst, len / 3, 2 * len / 3);
    td_sleep_ms(900);
    json_t *j = status(&d);
    T_ASSERT_EQ(jget(j, "ingest", "files_done"), 0);
    T_ASSERT_EQ(jget(j, "store", "records"), 0);
    json_decref(j);
    copy_file(src, dst, 2 * len / 3, len);
    copy_file(src, hidden, 0, 0); /* hidden names are never taken */
    long long n = wait_ingested(&d, 1, 60000);
    T_ASSERT_U64_EQ((uint64_t)n, expect);
    j = status(&d);
    T_ASSERT_EQ(jget(j, "ingest", "files_failed"), 0);
    json_t *rej = json_object_get(json_object_get(j, "ingest"), "rejects");
    T_ASSERT(json_object_get(rej, "archive_damaged") == NULL);
    json_decref(j);
    T_ASSERT(access(hidden, F_OK) == 0);
    td_stop_clean(&d);
}

static void digest(const char *store, char hex[65], uint64_t *n)
{
    pl_store_t *st = NULL;
    T_ASSERT_OK(pl_store_open(store, PL_STORE_RDONLY, &st));
    T_ASSERT_OK(pl_store_digest(st, hex, n));
    pl_store_close(st);
    pl_record_thread_cleanup();
}

static void sigterm_case(const char *name, int stop_timeout_s)
{
    static const char *const files[] = {"emoji-google/google-000000.tar",
                                        "emoji-google/google-000001.tar",
                                        "emoji-google/google-000002.tar"};
    td_daemon_t ref;
    td_init(&ref, "ref");
    uint64_t n_ref = td_store_build(ref.store, files, 3);
    char hex_ref[65];
    uint64_t n2 = 0;
    digest(ref.store, hex_ref, &n2);
    T_ASSERT_U64_EQ(n2, n_ref);

    td_daemon_t d;
    creating_daemon(&d, name, 200);
    td_set(&d, "spool.enabled=false");
    td_set(&d, "ingest.stop_timeout_s=%d", stop_timeout_s);
    td_start(&d);
    char req[4200], resp[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof req, "{\"cmd\":\"ingest\",\"path\":\"%s\"}", td_corpus(files[i]));
        T_ASSERT_OK(td_ctl(d.ctl, req, resp, sizeof resp));
        T_ASSERT(strstr(resp, "\"ok\":true") != NULL);
    }
    /* SIGTERM as soon as the first commit is visible: ingest is mid-file. */
    uint64_t deadline = core_now_ns() / 1000000u + 60000;
    for (;;) {
        json_t *j = status(&d);
        long long rec = jget(j, "store", "records");
        json_decref(j);
        if (rec > 0) {
            break;
        }
        T_ASSERT(core_now_ns() / 1000000u < deadline);
        td_sleep_ms(5);
    }
    int st = td_stop(&d, SIGTERM);
    T_ASSERT(WIFEXITED(st));
    T_ASSERT_EQ(WEXITSTATUS(st), 0);
    char hex[65];
    uint64_t n_mid = 0;
    digest(d.store, hex, &n_mid);
    T_ASSERT(n_mid > 0);
    T_ASSERT(n_mid <= n_ref);

    /* Restart and give it all files again: finished ones add nothing, the interrupted one resumes
     * after its last commit. */
    td_start(&d);
    for (int i = 0; i < 3; i++) {
        snprintf(req, sizeof req, "{\"cmd\":\"ingest\",\"path\":\"%s\"}", td_corpus(files[i]));
        T_ASSERT_OK(td_ctl(d.ctl, req, resp, sizeof resp));
    }
    long long n_final = wait_ingested(&d, 3, 120000);
    td_stop_clean(&d);
    T_ASSERT_U64_EQ((uint64_t)n_final, n_ref);
    uint64_t n_dig = 0;
    digest(d.store, hex, &n_dig);
    T_ASSERT_U64_EQ(n_dig, n_ref);
    T_ASSERT_STR_EQ(hex, hex_ref);
}

T_CASE(datad_sigterm_during_spool_ingest_keeps_file)
{
    /* SIGTERM while a spool file is half ingested: the writer commits what it has and stops, the
     * file stays in the spool (not failed/), and the next start finishes it exactly once. */
    static const char *const files[] = {"emoji-google/google-000000.tar",
                                        "emoji-google/google-000001.tar"};
    td_daemon_t ref;
    td_init(&ref, "sref");
    uint64_t n_ref = td_store_build(ref.store, files, 2);
    char hex_ref[65];
    uint64_t n2 = 0;
    digest(ref.store, hex_ref, &n2);

    td_daemon_t d;
    creating_daemon(&d, "sterm", 100);
    td_set(&d, "ingest.batch_records=32");
    td_start(&d);
    drop(&d, files[0], "a.tar");
    drop(&d, files[1], "b.tar");
    uint64_t deadline = core_now_ns() / 1000000u + 60000;
    for (;;) {
        json_t *j = status(&d);
        long long rec = jget(j, "store", "records");
        json_decref(j);
        if (rec > 0) {
            break;
        }
        T_ASSERT(core_now_ns() / 1000000u < deadline);
        td_sleep_ms(2);
    }
    td_stop_clean(&d);
    char sub[2048];
    snprintf(sub, sizeof sub, "%s/failed", d.spool);
    T_ASSERT_EQ(count_dir(sub, ".tar"), 0);
    snprintf(sub, sizeof sub, "%s/done", d.spool);
    int done_before = count_dir(sub, ".tar");
    T_ASSERT_EQ(count_dir(d.spool, ".tar") + done_before, 2);
    T_ASSERT(count_dir(d.spool, ".tar") >= 1); /* interrupted mid-file: still in the spool */

    td_start(&d);
    deadline = core_now_ns() / 1000000u + 120000;
    while (count_dir(d.spool, ".tar") > 0) {
        T_ASSERT(core_now_ns() / 1000000u < deadline);
        td_sleep_ms(50);
    }
    wait_ingested(&d, 2 - done_before, 60000);
    td_stop_clean(&d);
    T_ASSERT_EQ(count_dir(sub, ".tar"), 2);
    char hex[65];
    uint64_t n_dig = 0;
    digest(d.store, hex, &n_dig);
    T_ASSERT_U64_EQ(n_dig, n_ref);
    T_ASSERT_STR_EQ(hex, hex_ref);
}

T_CASE(datad_sigterm_during_ingest_loses_nothing)
{
    sigterm_case("term", 30);
}

T_CASE(datad_sigterm_stop_timeout_zero_loses_nothing)
{
    /* stop_timeout 0: the daemon leaves while the writer is mid-transaction. */
    sigterm_case("term0", 0);
}

T_CASE(datad_ctl_queue_survives_restart)
{
    /* Files queued with sc-ctl ingest but not yet taken when the daemon stops are taken after the
     * restart: the queue is journaled in the store directory, not only held in memory. */
    static const char *const files[] = {"digits/digits-000000.tar", "digits/digits-000001.tar"};
    td_daemon_t ref;
    td_init(&ref, "qref");
    uint64_t n_ref = td_store_build(ref.store, files, 2);
    char hex_ref[65];
    uint64_t n2 = 0;
    digest(ref.store, hex_ref, &n2);

    td_daemon_t d;
    creating_daemon(&d, "qrestart", 200);
    td_set(&d, "spool.enabled=false");
    td_start(&d);
    char req[4096], resp[1024];
    T_ASSERT_OK(td_ctl(d.ctl, "{\"cmd\":\"pause\"}", resp, sizeof resp));
    for (size_t i = 0; i < 2; i++) {
        snprintf(req, sizeof req, "{\"cmd\":\"ingest\",\"path\":\"%s\"}", td_corpus(files[i]));
        T_ASSERT_OK(td_ctl(d.ctl, req, resp, sizeof resp));
        T_ASSERT(strstr(resp, "\"ok\":true") != NULL);
    }
    json_t *j = status(&d);
    T_ASSERT_EQ(jget(j, "ingest", "queue"), 2); /* paused: nothing taken yet */
    json_decref(j);
    td_stop_clean(&d);

    td_start(&d); /* not paused any more: the journal brings both files back */
    long long n_final = wait_ingested(&d, 2, 120000);
    td_stop_clean(&d);
    T_ASSERT_U64_EQ((uint64_t)n_final, n_ref);
    char hex[65];
    uint64_t n_dig = 0;
    digest(d.store, hex, &n_dig);
    T_ASSERT_STR_EQ(hex, hex_ref);

    /* Finished files leave the journal: a third start queues nothing. */
    td_start(&d);
    td_sleep_ms(300);
    j = status(&d);
    T_ASSERT_EQ(jget(j, "ingest", "queue"), 0);
    T_ASSERT_EQ(jget(j, "ingest", "files_done"), 0);
    json_decref(j);
    td_stop_clean(&d);
}

static int sh(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    T_ASSERT(p != NULL);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

T_CASE(datad_sc_ctl_commands)
{
    td_daemon_t d;
    creating_daemon(&d, "ctl", 200);
    td_set(&d, "spool.enabled=false");
    td_start(&d);
    const char *root = getenv("SC_BUILD_ROOT");
    char cmd[8192], out[1 << 16];
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s pause", root, d.ctl);
    T_ASSERT_EQ(sh(cmd, out, sizeof out), 0);
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s ingest %s", root, d.ctl,
             td_corpus("digits/digits-000001.tar"));
    T_ASSERT_EQ(sh(cmd, out, sizeof out), 0);
    td_sleep_ms(600);
    json_t *j = status(&d);
    T_ASSERT_EQ(jget(j, "ingest", "queue"), 1); /* paused: not taken */
    T_ASSERT(json_is_true(json_object_get(json_object_get(j, "ingest"), "paused")));
    json_decref(j);
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s resume", root, d.ctl);
    T_ASSERT_EQ(sh(cmd, out, sizeof out), 0);
    long long n = wait_ingested(&d, 1, 60000);
    T_ASSERT(n > 0);
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s status", root, d.ctl);
    T_ASSERT_EQ(sh(cmd, out, sizeof out), 0);
    char want[64];
    snprintf(want, sizeof want, "%lld records", n);
    if (strstr(out, want) == NULL) {
        T_FAIL("human status lacks '%s':\n%s", want, out);
    }
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s --json status", root, d.ctl);
    T_ASSERT_EQ(sh(cmd, out, sizeof out), 0);
    json_error_t e;
    j = json_loads(out, 0, &e);
    T_ASSERT(j != NULL);
    T_ASSERT_EQ(jget(j, "store", "records"), n);
    T_ASSERT(json_is_array(json_object_get(j, "trainers")));
    json_decref(j);
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s ingest /nonexistent.tar 2>&1", root,
             d.ctl);
    T_ASSERT_EQ(sh(cmd, out, sizeof out), 1);
    snprintf(cmd, sizeof cmd, "%s/tools/sc-ctl --socket %s stop", root, d.ctl);
    T_ASSERT_EQ(sh(cmd, out, sizeof out), 0);
    int st = td_stop(&d, 0); /* signal 0: just wait for the exit that `stop` asked for */
    T_ASSERT(WIFEXITED(st));
    T_ASSERT_EQ(WEXITSTATUS(st), 0);
    T_ASSERT(access(d.sock, F_OK) != 0); /* sockets removed on a clean exit */
}

T_CASE(datad_waiting_client_keepalive)
{
    /* A trainer connected to an empty store waits for ingest; its PINGs keep the server's short
     * idle timeout from closing it, so it never reconnects. */
    td_daemon_t d;
    creating_daemon(&d, "wait", 200);
    td_set(&d, "spool.enabled=false");
    td_set(&d, "server.idle_timeout_ms=1000");
    td_start(&d);
    pl_client_opts_t o;
    td_client_opts(&o, d.sock, 0, 1, 16, 8);
    o.keepalive_ms = 300;
    o.io_timeout_ms = 20000;
    o.reconnect_ms = 0;
    pl_client_t *c = NULL;
    T_ASSERT_OK(pl_client_open(&o, &c));
    T_ASSERT_U64_EQ(pl_client_welcome(c)->records, 0);
    fflush(NULL);
    pid_t pid = fork();
    T_ASSERT(pid >= 0);
    if (pid == 0) {
        td_sleep_ms(2500);
        char req[4200], resp[512];
        snprintf(req, sizeof req, "{\"cmd\":\"ingest\",\"path\":\"%s\"}",
                 td_corpus("digits/digits-000001.tar"));
        _exit(td_ctl(d.ctl, req, resp, sizeof resp) == 0 && strstr(resp, "true") ? 0 : 1);
    }
    double t0 = core_now_s();
    proto_batch_t b;
    T_ASSERT_OK(pl_client_next(c, &b));
    T_ASSERT(core_now_s() - t0 > 2.0);
    T_ASSERT_EQ(b.n, 16);
    int ws = 0;
    T_ASSERT(waitpid(pid, &ws, 0) == pid);
    T_ASSERT(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    T_ASSERT_U64_EQ(pl_client_reconnects(c), 0);
    pl_client_close(c);
    td_stop_clean(&d);
}

T_MAIN()
