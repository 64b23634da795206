/* Helpers for the sc-datad integration tests: build a small store from the shared corpus, spawn a
 * real sc-datad on temporary sockets (readiness through its sd_notify READY=1 on a NOTIFY_SOCKET we
 * own), talk raw bytes or the client library to it, and stop it with a signal. */
#ifndef T_DATAD_H
#define T_DATAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pipeline/client.h"

typedef struct td_daemon_s {
    pid_t pid;
    char dir[1024]; /* test root */
    char store[1100], spool[1100], sock[1100], ctl[1100];
    char sets[16][512]; /* extra --set assignments */
    int n_sets;
    int keep_notify;         /* keep the NOTIFY_SOCKET open after READY (notify_fd) */
    int notify_fd;
    unsigned watchdog_usec;  /* sets WATCHDOG_USEC for the daemon when non-zero */
} td_daemon_t;

/* Paths under a fresh subdirectory `name` of t_tmpdir(). Skips when the vocabulary is absent. */
void td_init(td_daemon_t *d, const char *name);
/* Adds a --set override for the next td_start. */
void td_set(td_daemon_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Creates d->store and ingests the given shared-corpus tars (paths relative to
 * ../shared/data/corpus; skips when absent). Returns the record count. */
uint64_t td_store_build(const char *store_dir, const char *const *tars, size_t n);
/* Starts sc-datad and waits (up to 30 s) for READY=1. Fails the test if it exits first. */
void td_start(td_daemon_t *d);
/* Sends sig and waits; returns the wait status. */
int td_stop(td_daemon_t *d, int sig);
/* SIGTERM, then asserts a clean exit 0 (a sanitizer abort or signal fails the test). */
void td_stop_clean(td_daemon_t *d);
/* One control request line; the reply (one line) into resp. Returns 0 or -1. */
int td_ctl(const char *ctl_path, const char *req, char *resp, size_t cap);
/* A raw connection to the data socket; returns the fd. */
int td_connect(const char *sock);
/* Reads until EOF or timeout; returns bytes read into buf (may be cut at cap), or -1 on timeout. */
long td_read_until_eof(int fd, uint8_t *buf, size_t cap, int timeout_ms);
/* Client options for a small test stream (16x16, batch `batch`, keys on). */
void td_client_opts(pl_client_opts_t *o, const char *sock, uint32_t rank, uint32_t world,
                    uint32_t batch, uint64_t seed);
/* Path of a shared corpus tar (skips when absent). Static buffer. */
const char *td_corpus(const char *rel);
/* Sleeps ms. */
void td_sleep_ms(int ms);

#endif
