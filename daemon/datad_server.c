/* Sockets of sc-datad: the data and control listeners, accepted connections (peer credentials,
 * read buffer + parse position, write queue), asynchronous close, and shutdown. Everything here
 * runs on the loop thread. Parsing is a call into proto/ (pure); a connection that sends a bad
 * frame gets an ERROR frame and is closed, nothing else is touched. */
#include <errno.h>
#include <grp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "datad.h"

typedef struct wreq_s {
    uv_write_t req;
    datad_conn_t *conn;
    uint8_t *buf;
    size_t len;
} wreq_t;

uint64_t datad__now_ms(void) { return core_now_ns() / 1000000u; }

/* ---- close ---- */

static void conn_free(datad_conn_t *c)
{
    datad__stream_release(c);
    core_free(c);
}

static void conn_close_cb(uv_handle_t *h)
{
    datad_conn_t *c = h->data;
    c->handles_open--;
    if (c->handles_open == 0 && c->refs == 0) {
        conn_free(c);
    }
}

void datad__conn_unref(datad_conn_t *c)
{
    c->refs--;
    if (c->refs == 0 && c->handles_open == 0) {
        conn_free(c);
    }
}

void datad__conn_close(datad_conn_t *c)
{
    if (uv_is_closing((uv_handle_t *)&c->pipe)) {
        return;
    }
    datad_t *d = c->d;
    c->state = DATAD_ST_CLOSING;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else if (d->conns == c) {
        d->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    d->n_conns--;
    core_log_debug("conn %llu: closed (%llu batches sent)", (unsigned long long)c->id,
                   (unsigned long long)c->batches_sent);
    /* Memory goes only in close_cb (and after the last job in flight comes back). */
    uv_close((uv_handle_t *)&c->pipe, conn_close_cb);
}

/* ---- writes ---- */

static void write_cb(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    datad_conn_t *c = w->conn;
    c->wq_bytes -= w->len;
    core_free(w->buf);
    core_free(w);
    if (status < 0) {
        if (status != UV_ECANCELED) {
            core_log_debug("conn %llu: write: %s", (unsigned long long)c->id, uv_strerror(status));
        }
        datad__conn_close(c);
        return;
    }
    if (c->state == DATAD_ST_CLOSING && c->wq_bytes == 0) {
        datad__conn_close(c);
    }
}

int datad__conn_write(datad_conn_t *c, uint8_t *buf, size_t len)
{
    if (uv_is_closing((uv_handle_t *)&c->pipe)) {
        core_free(buf);
        return CORE_ECLOSED;
    }
    wreq_t *w = core_malloc(sizeof(*w));
    if (w == NULL) {
        core_free(buf);
        datad__conn_close(c);
        return CORE_ERR(ENOMEM);
    }
    w->conn = c;
    w->buf = buf;
    w->len = len;
    uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len);
    int rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, write_cb);
    if (rc < 0) {
        /* The callback never runs when uv_write fails. */
        core_free(buf);
        core_free(w);
        datad__conn_close(c);
        return rc;
    }
    c->wq_bytes += len;
    return 0;
}

void datad__conn_fail(datad_conn_t *c, int code, const char *param, const char *text)
{
    if (c->state == DATAD_ST_CLOSING) {
        return;
    }
    core_log_info("conn %llu (pid %d uid %u): %s%s%s: %s", (unsigned long long)c->id, (int)c->pid,
                  (unsigned)c->uid, core_err_name(code), param ? " " : "", param ? param : "",
                  text);
    c->state = DATAD_ST_CLOSING;
    uv_read_stop((uv_stream_t *)&c->pipe);
    if (c->kind == DATAD_CONN_DATA) {
        size_t cap = PROTO_HEADER_SIZE + PROTO_MAX_SMALL_PAYLOAD;
        uint8_t *buf = core_malloc(cap);
        size_t n = 0;
        if (buf != NULL && proto_error_encode(buf, cap, code, param, text, &n) == 0) {
            datad__conn_write(c, buf, n);
        } else {
            core_free(buf);
        }
    }
    if (c->wq_bytes == 0) {
        datad__conn_close(c);
    }
}

/* ---- reads ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    datad_conn_t *c = h->data;
    buf->base = (char *)c->rbuf + c->rlen;
    buf->len = DATAD_RBUF - c->rlen;
}

static void parse_data(datad_conn_t *c)
{
    size_t pos = 0;
    while (c->state != DATAD_ST_CLOSING && pos < c->rlen) {
        proto_frame_t f;
        size_t used = 0;
        int rc = proto_frame_decode(c->rbuf + pos, c->rlen - pos, PROTO_MAX_SMALL_PAYLOAD, &f,
                                    &used);
        if (rc == CORE_ENEED_MORE) {
            break;
        }
        if (rc < 0) {
            c->d->frames_bad++;
            datad__conn_fail(c, rc, NULL, "malformed frame");
            return;
        }
        datad__stream_frame(c, &f);
        pos += used;
    }
    if (c->state == DATAD_ST_CLOSING) {
        return;
    }
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
}

static void parse_ctl(datad_conn_t *c)
{
    size_t pos = 0;
    while (c->state != DATAD_ST_CLOSING) {
        uint8_t *nl = memchr(c->rbuf + pos, '\n', c->rlen - pos);
        if (nl == NULL) {
            break;
        }
        size_t len = (size_t)(nl - (c->rbuf + pos));
        *nl = '\0';
        datad__ctl_line(c, (const char *)c->rbuf + pos, len);
        pos += len + 1;
    }
    if (c->state == DATAD_ST_CLOSING) {
        return;
    }
    memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
    c->rlen -= pos;
    if (c->rlen == DATAD_RBUF) {
        c->d->frames_bad++;
        const char *msg = "{\"ok\":false,\"error\":\"line too long\"}\n";
        size_t n = strlen(msg);
        uint8_t *b = core_malloc(n);
        if (b != NULL) {
            memcpy(b, msg, n);
            datad__conn_write(c, b, n);
        }
        datad__conn_fail(c, CORE_ETOO_LARGE, NULL, "control line too long");
    }
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    datad_conn_t *c = s->data;
    if (nread < 0) {
        if (nread != UV_EOF) {
            core_log_debug("conn %llu: read: %s", (unsigned long long)c->id,
                           uv_strerror((int)nread));
        }
        datad__conn_close(c);
        return;
    }
    if (nread == 0 || c->state == DATAD_ST_CLOSING) {
        return;
    }
    c->rlen += (size_t)nread;
    c->last_rx_ms = datad__now_ms();
    if (c->kind == DATAD_CONN_DATA) {
        parse_data(c);
    } else {
        parse_ctl(c);
    }
}

/* ---- accept ---- */

static int gid_allowed(const datad_cfg_t *cfg, gid_t gid)
{
    for (unsigned i = 0; i < cfg->n_allow_gid; i++) {
        if (cfg->allow_gid[i] == gid) {
            return 1;
        }
    }
    return 0;
}

/* Is one of the peer's supplementary groups allowed? Users are usually put into the service's
 * group as a supplementary group (usermod -aG), which SO_PEERCRED's gid does not show; the kernel
 * hands them over with SO_PEERGROUPS (Linux 4.13), taken at connect() like SO_PEERCRED. */
static int peer_groups_allowed(const datad_cfg_t *cfg, int fd)
{
    gid_t small[64];
    gid_t *groups = small;
    socklen_t len = sizeof small;
    int ok = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
        if (errno != ERANGE || len == 0) {
            return 0;
        }
        groups = core_malloc(len); /* len now says how much is needed */
        if (groups == NULL || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0) {
            core_free(groups);
            return 0;
        }
    }
    for (size_t i = 0; i < len / sizeof(gid_t) && !ok; i++) {
        ok = gid_allowed(cfg, groups[i]);
    }
    if (groups != small) {
        core_free(groups);
    }
    return ok;
}

static int peer_allowed(const datad_t *d, int fd, uid_t uid, gid_t gid)
{
    const datad_cfg_t *cfg = d->cfg;
    if (cfg->n_allow_uid == 0 && cfg->n_allow_gid == 0) {
        return 1;
    }
    if (uid == d->self_uid) {
        return 1;
    }
    for (unsigned i = 0; i < cfg->n_allow_uid; i++) {
        if (cfg->allow_uid[i] == uid) {
            return 1;
        }
    }
    if (gid_allowed(cfg, gid)) {
        return 1;
    }
    return cfg->n_allow_gid > 0 && peer_groups_allowed(cfg, fd);
}

static void on_connection(uv_stream_t *srv, int status, int kind)
{
    datad_t *d = srv->data;
    if (status < 0) {
        core_log_warn("accept: %s", uv_strerror(status));
        return;
    }
    datad_conn_t *c = core_calloc(1, sizeof(*c));
    if (c == NULL) {
        core_log_err("accept: out of memory");
        return;
    }
    c->d = d;
    c->kind = kind;
    c->id = ++d->next_conn_id;
    uv_pipe_init(d->loop, &c->pipe, 0);
    c->pipe.data = c;
    c->handles_open = 1;
    c->connected_s = core_now_s();
    c->last_rx_ms = c->accepted_ms = datad__now_ms();
    c->next = d->conns;
    if (d->conns != NULL) {
        d->conns->prev = c;
    }
    d->conns = c;
    d->n_conns++;
    d->conns_total++;
    if (uv_accept(srv, (uv_stream_t *)&c->pipe) < 0) {
        datad__conn_close(c);
        return;
    }
    uv_os_fd_t fd;
    struct ucred cr;
    socklen_t crlen = sizeof(cr);
    memset(&cr, 0, sizeof(cr));
    if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) != 0) {
        core_log_warn("conn %llu: SO_PEERCRED failed; refused", (unsigned long long)c->id);
        d->conns_refused++;
        datad__conn_close(c);
        return;
    }
    c->pid = cr.pid;
    c->uid = cr.uid;
    c->gid = cr.gid;
    const char *what = kind == DATAD_CONN_DATA ? "data" : "control";
    if (!peer_allowed(d, fd, cr.uid, cr.gid)) {
        core_log_warn("%s conn %llu from pid %d uid %u gid %u: not in the allow-list; refused",
                      what, (unsigned long long)c->id, (int)cr.pid, (unsigned)cr.uid,
                      (unsigned)cr.gid);
        d->conns_refused++;
        c->state = DATAD_ST_HANDSHAKE;
        datad__conn_fail(c, CORE_ERR(EACCES), NULL, "peer not allowed");
        return;
    }
    core_log_info("%s conn %llu from pid %d uid %u gid %u", what, (unsigned long long)c->id,
                  (int)cr.pid, (unsigned)cr.uid, (unsigned)cr.gid);
    if (d->stopping) {
        datad__conn_fail(c, CORE_ECLOSED, NULL, "shutting down");
        return;
    }
    if (d->n_conns > d->cfg->max_clients) {
        d->conns_refused++;
        datad__conn_fail(c, CORE_EFULL, NULL, "too many clients");
        return;
    }
    int rc = uv_read_start((uv_stream_t *)&c->pipe, alloc_cb, read_cb);
    if (rc < 0) {
        datad__conn_close(c);
    }
}

static void on_data_conn(uv_stream_t *srv, int status) { on_connection(srv, status, DATAD_CONN_DATA); }
static void on_ctl_conn(uv_stream_t *srv, int status) { on_connection(srv, status, DATAD_CONN_CTL); }

/* A socket path left by a dead daemon is removed; a live one (something answers) or a path that is
 * not a socket is an error, so we never unlink another daemon's socket or a regular file. */
static int clear_stale(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : CORE_ERR(errno);
    }
    if (!S_ISSOCK(st.st_mode)) {
        core_log_err("%s exists and is not a socket; refusing to remove it", path);
        return CORE_ERR(EEXIST);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return CORE_ERR(errno);
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    int err = errno;
    close(fd);
    if (live) {
        core_log_err("%s: another daemon is listening there", path);
        return CORE_ERR(EADDRINUSE);
    }
    if (err != ECONNREFUSED && err != ENOENT) {
        core_log_err("%s: cannot probe the old socket: %s", path, strerror(err));
        return CORE_ERR(err);
    }
    core_log_info("%s: removing a stale socket", path);
    if (unlink(path) != 0 && errno != ENOENT) {
        return CORE_ERR(errno);
    }
    return 0;
}

/* *state: 0 untouched, 1 handle initialised, 2 bound (the path is ours to unlink). */
static int listen_one(datad_t *d, uv_pipe_t *srv, const char *path, uv_connection_cb cb,
                      int *state)
{
    int rc = clear_stale(path);
    if (rc < 0) {
        return rc;
    }
    uv_pipe_init(d->loop, srv, 0);
    srv->data = d;
    *state = 1;
    /* Bind under a umask that leaves no access beyond the final mode, then set the exact mode and
     * group: no window in which the socket is more open than configured. Threads that could
     * create files are not running yet. */
    mode_t old = umask(0177);
    rc = uv_pipe_bind(srv, path);
    umask(old);
    if (rc < 0) {
        core_log_err("%s: bind: %s", path, uv_strerror(rc));
        return rc;
    }
    *state = 2;
    if (d->cfg->gid != (gid_t)-1 && chown(path, (uid_t)-1, d->cfg->gid) != 0) {
        rc = CORE_ERR(errno);
        core_log_err("%s: chown to group %u: %s", path, (unsigned)d->cfg->gid, strerror(errno));
        return rc;
    }
    if (chmod(path, (mode_t)d->cfg->mode) != 0) {
        rc = CORE_ERR(errno);
        core_log_err("%s: chmod %o: %s", path, d->cfg->mode, strerror(errno));
        return rc;
    }
    rc = uv_listen((uv_stream_t *)srv, 128, cb);
    if (rc < 0) {
        core_log_err("%s: listen: %s", path, uv_strerror(rc));
        return rc;
    }
    return 0;
}

int datad__server_listen(datad_t *d)
{
    int rc = listen_one(d, &d->data_srv, d->cfg->sock_data, on_data_conn, &d->data_srv_open);
    if (rc < 0) {
        return rc;
    }
    rc = listen_one(d, &d->ctl_srv, d->cfg->sock_control, on_ctl_conn, &d->ctl_srv_open);
    if (rc < 0) {
        return rc;
    }
    core_log_info("listening on %s (data) and %s (control), mode %04o", d->cfg->sock_data,
                  d->cfg->sock_control, d->cfg->mode);
    return 0;
}

static void srv_close_cb(uv_handle_t *h) { (void)h; }

void datad__server_stop_accepting(datad_t *d)
{
    if (d->data_srv_open) {
        if (d->data_srv_open == 2) {
            unlink(d->cfg->sock_data);
        }
        d->data_srv_open = 0;
        uv_close((uv_handle_t *)&d->data_srv, srv_close_cb);
    }
    if (d->ctl_srv_open) {
        if (d->ctl_srv_open == 2) {
            unlink(d->cfg->sock_control);
        }
        d->ctl_srv_open = 0;
        uv_close((uv_handle_t *)&d->ctl_srv, srv_close_cb);
    }
}
