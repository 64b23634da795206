/* Client library of the batch protocol (proto/PROTOCOL.md): connects to sc-datad's data socket,
 * handshakes, receives batches, grants credits, and reconnects on its own.
 *
 * Resume contract: the cursor (epoch, position) is the one carried by the last batch that
 * pl_client_next returned. When the connection is lost (daemon restart, kill -9, idle timeout,
 * BYE), the client reconnects and sends that cursor in its HELLO; batches that had arrived but
 * were not yet returned are dropped. So the sequence of samples the caller sees has no gap and no
 * duplicate across any number of reconnects.
 *
 * Flow control: the HELLO grants `window` credits; each later pl_client_next call grants one more
 * for the batch the caller has finished with. At most `window` batches are on their way.
 *
 * Plain blocking sockets and poll(2); no event loop. A pl_client_t is used from one thread.
 * Errors: 0 or a negative code from core/err.h; pl_client_errmsg tells what happened. */
#ifndef PL_CLIENT_H
#define PL_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

typedef struct pl_client_opts_s {
    const char *socket_path; /* borrowed for pl_client_open only */
    proto_hello_t hello;     /* parameters and the starting cursor (epoch, position);
                                initial_credits is replaced by `window` */
    uint32_t window;         /* credits outstanding, 1..1024 (default 4). The daemon assembles
                                at most `window` of this client's batches at once: for one
                                trainer, a window near the daemon's worker count keeps every
                                worker busy */
    int connect_timeout_ms;  /* one attempt: connect + WELCOME (default 10000) */
    int io_timeout_ms;       /* silence while waiting for a batch before the connection is
                                considered lost (default 120000; 0 = wait forever) */
    int reconnect_ms;        /* keep retrying this long after a loss (default 60000; 0 = never) */
    int keepalive_ms;        /* while waiting for a batch, PING this often (default 30000; 0 =
                                never), so a live client waiting for data is not idle-closed */
    uint32_t vocab_size;     /* check label ids below this (0 = unchecked) */
    size_t max_frame;        /* largest frame accepted (default PROTO_MAX_BATCH_BYTES) */
    void *recv_buf;          /* optional caller-owned receive buffer (never freed by the client);
                                must hold the largest frame, else CORE_ETOO_LARGE */
    size_t recv_cap;
} pl_client_opts_t;

typedef struct pl_client_s pl_client_t;

void pl_client_opts_default(pl_client_opts_t *o);

/* Connects (retrying for reconnect_ms while the socket is absent or refuses), sends HELLO and
 * waits for WELCOME. On success *out is owned by the caller (pl_client_close). Errors:
 * CORE_ECONFIG (the server rejected a parameter: pl_client_errmsg names it; also bad opts),
 * CORE_ECLOSED (could not connect in time), -errno, -ENOMEM. */
int pl_client_open(const pl_client_opts_t *opts, pl_client_t **out);

/* Returns the next batch. `out` holds views into the client's receive buffer, valid until the next
 * call on c (copy what you keep). Reconnects transparently as described above. Errors:
 * CORE_ECLOSED (the connection could not be re-established within reconnect_ms), CORE_ECONFIG
 * (the server refused the parameters on a reconnect), CORE_ECORRUPT (a malformed batch from the
 * server: the connection is dropped and re-established first, this is returned only if it repeats
 * past reconnect_ms), -ENOMEM. */
int pl_client_next(pl_client_t *c, proto_batch_t *out);

/* The cursor after the last batch returned (or the starting cursor). */
void pl_client_cursor(const pl_client_t *c, uint64_t *epoch, uint64_t *position);
/* The WELCOME of the current connection (borrowed). */
const proto_welcome_t *pl_client_welcome(const pl_client_t *c);
/* Times the client reconnected. */
uint64_t pl_client_reconnects(const pl_client_t *c);
/* Text of the last error or reconnect reason ("" if none); borrowed. */
const char *pl_client_errmsg(const pl_client_t *c);

/* Sends BYE (best effort), closes the socket and frees c. NULL is a no-op. */
void pl_client_close(pl_client_t *c);

#endif
