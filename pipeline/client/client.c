/* The batch-protocol client (pipeline/client.h): blocking Unix socket + poll, a growable receive
 * buffer whose size is checked against max_frame before it grows, credits, and reconnects that
 * resume at the last returned cursor. */
#include "pipeline/client.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"

struct pl_client_s {
    pl_client_opts_t o;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    int fd;
    uint8_t *buf;
    size_t cap, len;
    int owns_buf;
    size_t pending_consume; /* bytes of the frame returned last time */
    int owe_credit;         /* the caller finished a batch: grant one credit */
    uint64_t epoch, position;
    proto_welcome_t welcome;
    uint64_t reconnects;
    uint64_t ping_token;
    char err[256];
};

static void set_err(pl_client_t *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof c->err, fmt, ap);
    va_end(ap);
}

void pl_client_opts_default(pl_client_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->window = 4;
    o->connect_timeout_ms = 10000;
    o->io_timeout_ms = 120000;
    o->reconnect_ms = 60000;
    o->keepalive_ms = 30000;
    o->max_frame = (size_t)PROTO_HEADER_SIZE + PROTO_MAX_BATCH_BYTES;
    o->hello.world = 1;
    o->hello.batch_size = 32;
    o->hello.out_h = o->hello.out_w = 224;
    o->hello.scale_min = 0.9f;
    o->hello.scale_max = 1.0f;
    o->hello.ratio_min = 3.0f / 4.0f;
    o->hello.ratio_max = 4.0f / 3.0f;
}

static uint64_t now_ms(void) { return core_now_ns() / 1000000u; }

static void drop(pl_client_t *c)
{
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    c->len = 0;
    c->pending_consume = 0;
    c->owe_credit = 0;
}

static int send_all(pl_client_t *c, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            set_err(c, "send: %s", strerror(e));
            return CORE_ERR(e);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int ensure_cap(pl_client_t *c, size_t need)
{
    if (need <= c->cap) {
        return 0;
    }
    if (!c->owns_buf || need > c->o.max_frame + PROTO_HEADER_SIZE) {
        set_err(c, "frame of %zu bytes exceeds the receive buffer / max_frame", need);
        return CORE_ETOO_LARGE;
    }
    size_t n = c->cap ? c->cap : 65536;
    while (n < need) {
        n *= 2;
    }
    uint8_t *b = core_realloc(c->buf, n);
    if (b == NULL) {
        return CORE_ERR(ENOMEM);
    }
    c->buf = b;
    c->cap = n;
    return 0;
}

/* Reads one whole frame into buf[0..). deadline_ms 0 = none. Returns 0 with *f and *used, or a
 * negative code (CORE_ECLOSED on EOF, -ETIMEDOUT at the deadline, decode errors). */
static int read_frame(pl_client_t *c, uint64_t deadline_ms, proto_frame_t *f, size_t *used)
{
    for (;;) {
        if (c->len > 0) {
            int rc = proto_frame_decode(c->buf, c->len, c->o.max_frame, f, used);
            if (rc == 0) {
                return 0;
            }
            if (rc != CORE_ENEED_MORE) {
                set_err(c, "bad frame from the server: %s", core_strerror(rc));
                return rc;
            }
            if (c->len >= PROTO_HEADER_SIZE) {
                size_t need = PROTO_HEADER_SIZE + (size_t)proto_get_u32(c->buf + 8);
                rc = ensure_cap(c, need);
                if (rc < 0) {
                    return rc;
                }
            }
        }
        if (c->len == c->cap) {
            int rc = ensure_cap(c, c->cap + 1);
            if (rc < 0) {
                return rc;
            }
        }
        int timeout = -1;
        if (deadline_ms != 0) {
            uint64_t now = now_ms();
            if (now >= deadline_ms) {
                set_err(c, "timed out waiting for the server");
                return CORE_ERR(ETIMEDOUT);
            }
            timeout = (int)(deadline_ms - now);
        }
        struct pollfd pfd = {c->fd, POLLIN, 0};
        int pr = poll(&pfd, 1, timeout);
        if (pr < 0) {
            if (errno == EINTR) {
                continue;
            }
            int e = errno;
            set_err(c, "poll: %s", strerror(e));
            return CORE_ERR(e);
        }
        if (pr == 0) {
            continue; /* deadline check above */
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            int e = errno;
            set_err(c, "recv: %s", strerror(e));
            return CORE_ECLOSED;
        }
        if (r == 0) {
            set_err(c, "the server closed the connection");
            return CORE_ECLOSED;
        }
        c->len += (size_t)r;
    }
}

static void consume(pl_client_t *c, size_t used)
{
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
}

static int send_small(pl_client_t *c, uint16_t type, uint64_t v, int is64)
{
    uint8_t b[PROTO_HEADER_SIZE + 8];
    size_t n = 0;
    int rc = is64 ? proto_u64_encode(b, sizeof b, type, v, &n)
                  : proto_u32_encode(b, sizeof b, type, (uint32_t)v, &n);
    if (rc < 0) {
        return rc;
    }
    return send_all(c, b, n);
}

/* One attempt: connect, HELLO, WELCOME. CORE_ECONFIG is final (a parameter was refused); other
 * errors may be retried. */
static int connect_once(pl_client_t *c)
{
    drop(c);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return CORE_ERR(errno);
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, c->path, sizeof sa.sun_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        set_err(c, "connect %s: %s", c->path, strerror(e));
        return CORE_ERR(e);
    }
    c->fd = fd;
    proto_hello_t h = c->o.hello;
    h.epoch = c->epoch;
    h.position = c->position;
    h.initial_credits = c->o.window;
    uint8_t hb[PROTO_HEADER_SIZE + PROTO_HELLO_FIXED + 2 + PROTO_MAX_NAME];
    size_t n = 0;
    int rc = proto_hello_encode(hb, sizeof hb, &h, &n);
    if (rc < 0) {
        set_err(c, "cannot encode HELLO: %s", core_strerror(rc));
        drop(c);
        return CORE_ECONFIG;
    }
    rc = send_all(c, hb, n);
    if (rc < 0) {
        drop(c);
        return rc;
    }
    uint64_t deadline = now_ms() + (uint64_t)c->o.connect_timeout_ms;
    for (;;) {
        proto_frame_t f;
        size_t used = 0;
        rc = read_frame(c, deadline, &f, &used);
        if (rc < 0) {
            drop(c);
            return rc;
        }
        if (f.type == PROTO_WELCOME) {
            rc = proto_welcome_parse(&f, &c->welcome);
            consume(c, used);
            if (rc < 0) {
                set_err(c, "malformed WELCOME");
                drop(c);
                return rc;
            }
            return 0;
        }
        if (f.type == PROTO_ERROR) {
            proto_error_t e;
            if (proto_error_parse(&f, &e) == 0) {
                set_err(c, "server refused%s%s: %s (%s)", e.param[0] ? " parameter " : "",
                        e.param, e.text, core_err_name(e.code));
                drop(c);
                /* A parameter the server refuses will be refused again. */
                return e.param[0] != '\0' || e.code == CORE_ECONFIG || e.code == CORE_ETOO_LARGE
                           ? CORE_ECONFIG
                           : CORE_ECLOSED;
            }
            drop(c);
            return CORE_ECORRUPT;
        }
        if (f.type == PROTO_BYE) {
            set_err(c, "server is shutting down");
            drop(c);
            return CORE_ECLOSED;
        }
        consume(c, used); /* PING/PONG before WELCOME: ignore */
    }
}

/* Connects, retrying until reconnect_ms (at least one attempt). */
static int connect_retry(pl_client_t *c)
{
    uint64_t until = now_ms() + (uint64_t)(c->o.reconnect_ms > 0 ? c->o.reconnect_ms : 0);
    unsigned delay = 20;
    for (;;) {
        int rc = connect_once(c);
        if (rc == 0 || rc == CORE_ECONFIG || rc == CORE_ERR(ENOMEM)) {
            return rc;
        }
        if (now_ms() >= until) {
            return CORE_ECLOSED;
        }
        struct timespec ts = {0, (long)delay * 1000000L};
        nanosleep(&ts, NULL);
        delay = delay < 500 ? delay * 2 : 500;
    }
}

int pl_client_open(const pl_client_opts_t *opts, pl_client_t **out)
{
    if (opts->socket_path == NULL ||
        strlen(opts->socket_path) >= sizeof(((struct sockaddr_un *)0)->sun_path) ||
        opts->window == 0 || opts->window > PROTO_MAX_CREDITS) {
        return CORE_ECONFIG;
    }
    pl_client_t *c = core_calloc(1, sizeof(*c));
    if (c == NULL) {
        return CORE_ERR(ENOMEM);
    }
    c->o = *opts;
    c->o.socket_path = NULL;
    if (c->o.max_frame == 0) {
        c->o.max_frame = (size_t)PROTO_HEADER_SIZE + PROTO_MAX_BATCH_BYTES;
    }
    snprintf(c->path, sizeof c->path, "%s", opts->socket_path);
    c->fd = -1;
    c->epoch = opts->hello.epoch;
    c->position = opts->hello.position;
    if (opts->recv_buf != NULL) {
        c->buf = opts->recv_buf;
        c->cap = opts->recv_cap;
    } else {
        c->owns_buf = 1;
    }
    int rc = connect_retry(c);
    if (rc < 0) {
        core_log_debug("client: %s", c->err);
        pl_client_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int reconnect(pl_client_t *c)
{
    core_log_info("client: connection lost (%s); reconnecting at cursor %llu:%llu", c->err,
                  (unsigned long long)c->epoch, (unsigned long long)c->position);
    c->reconnects++;
    return connect_retry(c);
}

int pl_client_next(pl_client_t *c, proto_batch_t *out)
{
    if (c->pending_consume > 0) {
        consume(c, c->pending_consume);
        c->pending_consume = 0;
    }
    uint64_t give_up = 0;
    for (;;) {
        int rc = 0;
        if (c->fd < 0) {
            rc = reconnect(c);
            if (rc < 0) {
                return rc;
            }
        }
        if (c->owe_credit) {
            rc = send_small(c, PROTO_CREDIT, 1, 0);
            if (rc == 0) {
                c->owe_credit = 0;
            }
        }
        proto_frame_t f;
        size_t used = 0;
        if (rc == 0) {
            /* Wait for a frame; while waiting (e.g. for ingest to fill an empty store) send a PING
             * every keepalive interval, so the server's idle timeout only catches dead clients.
             * The PONG resets io_timeout's silence count below. */
            uint64_t start = now_ms();
            uint64_t io_deadline = c->o.io_timeout_ms > 0 ? start + (uint64_t)c->o.io_timeout_ms
                                                          : UINT64_MAX;
            for (;;) {
                uint64_t ka = c->o.keepalive_ms > 0 ? now_ms() + (uint64_t)c->o.keepalive_ms
                                                    : UINT64_MAX;
                uint64_t dl = ka < io_deadline ? ka : io_deadline;
                rc = read_frame(c, dl == UINT64_MAX ? 0 : dl, &f, &used);
                if (rc != CORE_ERR(ETIMEDOUT) || now_ms() >= io_deadline) {
                    break;
                }
                rc = send_small(c, PROTO_PING, ++c->ping_token, 1);
                if (rc < 0) {
                    break;
                }
            }
            if (rc == CORE_ERR(ETIMEDOUT)) {
                rc = CORE_ECLOSED;
            }
        }
        if (rc == 0 && f.type == PROTO_BATCH) {
            proto_batch_t b;
            rc = proto_batch_parse(&f, c->o.vocab_size, &b);
            if (rc == 0) {
                c->epoch = b.cursor_epoch;
                c->position = b.cursor_position;
                c->pending_consume = used;
                c->owe_credit = 1;
                *out = b;
                return 0;
            }
            set_err(c, "malformed BATCH: %s", core_strerror(rc));
        } else if (rc == 0 && f.type == PROTO_PING) {
            uint64_t token = 0;
            rc = proto_ping_parse(&f, &token);
            consume(c, used);
            if (rc == 0) {
                rc = send_small(c, PROTO_PONG, token, 1);
            }
            if (rc == 0) {
                continue;
            }
        } else if (rc == 0 && f.type == PROTO_ERROR) {
            proto_error_t e;
            if (proto_error_parse(&f, &e) == 0) {
                set_err(c, "server error%s%s: %s (%s)", e.param[0] ? " on " : "", e.param,
                        e.text, core_err_name(e.code));
            }
            rc = CORE_ECLOSED;
        } else if (rc == 0 && f.type == PROTO_BYE) {
            set_err(c, "server said BYE");
            rc = CORE_ECLOSED;
        } else if (rc == 0) {
            consume(c, used); /* PONG and anything harmless */
            continue;
        }
        /* Lost or bad connection: drop everything not yet returned and reconnect at the cursor. */
        drop(c);
        if (c->o.reconnect_ms <= 0) {
            return rc == CORE_ECORRUPT ? rc : CORE_ECLOSED;
        }
        if (give_up == 0) {
            give_up = now_ms() + (uint64_t)c->o.reconnect_ms;
        } else if (now_ms() >= give_up) {
            return rc == CORE_ECORRUPT ? rc : CORE_ECLOSED;
        }
    }
}

void pl_client_cursor(const pl_client_t *c, uint64_t *epoch, uint64_t *position)
{
    *epoch = c->epoch;
    *position = c->position;
}

const proto_welcome_t *pl_client_welcome(const pl_client_t *c) { return &c->welcome; }
uint64_t pl_client_reconnects(const pl_client_t *c) { return c->reconnects; }
const char *pl_client_errmsg(const pl_client_t *c) { return c->err; }

void pl_client_close(pl_client_t *c)
{
    if (c == NULL) {
        return;
    }
    if (c->fd >= 0) {
        (void)send_small(c, PROTO_BYE, 0, 0);
    }
    drop(c);
    if (c->owns_buf) {
        core_free(c->buf);
    }
    core_free(c);
}
