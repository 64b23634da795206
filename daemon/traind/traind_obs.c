/* sc-traind observability: the JSONL metrics log, the Prometheus textfile (replaced atomically),
 * and the control socket (a thread answering one JSON request line with one JSON reply line, the
 * format of sc-datad's control socket, so `sc-ctl --socket PATH --json status` reads both). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/timing.h"
#include "traind.h"

int traind__metrics_line(const char *path, const traind_status_t *st, double t)
{
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        return CORE_ERR(errno);
    }
    fprintf(f,
            "{\"time\":%.3f,\"step\":%llu,\"total_steps\":%llu,\"loss\":%.6g,\"lr\":%.6g,"
            "\"images_per_s\":%.2f,\"data_wait\":%.5f,\"grad_norm\":%.6g,\"skipped\":%llu,"
            "\"epoch\":%llu,\"position\":%llu}\n",
            t, (unsigned long long)st->step, (unsigned long long)st->total_steps, st->loss, st->lr,
            st->img_s, st->data_wait, st->grad_norm, (unsigned long long)st->skipped,
            (unsigned long long)st->epoch, (unsigned long long)st->position);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        return CORE_ERR(EIO);
    }
    return 0;
}

int traind__prom_write(const char *path, const traind_status_t *st)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE *f = fopen(tmp, "w");
    if (f == NULL) {
        return CORE_ERR(errno);
    }
    fprintf(f,
            "# HELP superclass_traind_step Training steps done.\n"
            "# TYPE superclass_traind_step counter\n"
            "superclass_traind_step %llu\n"
            "# HELP superclass_traind_total_steps Steps the schedule runs for.\n"
            "# TYPE superclass_traind_total_steps gauge\n"
            "superclass_traind_total_steps %llu\n"
            "# HELP superclass_traind_loss Training loss (mean over the last logging interval).\n"
            "# TYPE superclass_traind_loss gauge\n"
            "superclass_traind_loss %.6g\n"
            "# HELP superclass_traind_lr Learning rate of the last step.\n"
            "# TYPE superclass_traind_lr gauge\n"
            "superclass_traind_lr %.6g\n"
            "# HELP superclass_traind_images_per_second Training throughput.\n"
            "# TYPE superclass_traind_images_per_second gauge\n"
            "superclass_traind_images_per_second %.3f\n"
            "# HELP superclass_traind_data_wait_ratio Fraction of time spent waiting for data.\n"
            "# TYPE superclass_traind_data_wait_ratio gauge\n"
            "superclass_traind_data_wait_ratio %.6f\n"
            "# HELP superclass_traind_grad_norm Global gradient norm (before clipping).\n"
            "# TYPE superclass_traind_grad_norm gauge\n"
            "superclass_traind_grad_norm %.6g\n"
            "# HELP superclass_traind_nonfinite_skipped_total Steps skipped for non-finite values.\n"
            "# TYPE superclass_traind_nonfinite_skipped_total counter\n"
            "superclass_traind_nonfinite_skipped_total %llu\n"
            "# HELP superclass_traind_checkpoints_total Checkpoints written by this process.\n"
            "# TYPE superclass_traind_checkpoints_total counter\n"
            "superclass_traind_checkpoints_total %llu\n"
            "# HELP superclass_traind_data_reconnects_total Data-service reconnects.\n"
            "# TYPE superclass_traind_data_reconnects_total counter\n"
            "superclass_traind_data_reconnects_total %llu\n",
            (unsigned long long)st->step, (unsigned long long)st->total_steps, st->loss, st->lr,
            st->img_s, st->data_wait, st->grad_norm, (unsigned long long)st->skipped,
            (unsigned long long)st->ckpts_written, (unsigned long long)st->reconnects);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        unlink(tmp);
        return CORE_ERR(EIO);
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return CORE_ERR(e);
    }
    return 0;
}

struct traind_ctl_s {
    int lfd;
    int pipe[2];
    pthread_t th;
    char path[108];
    traind_status_t *st;
    volatile sig_atomic_t *ckpt_flag, *stop_flag;
};

static json_t *status_json(traind_status_t *st)
{
    json_t *o = json_object();
    pthread_mutex_lock(&st->mu);
    json_object_set_new(o, "ok", json_true());
    json_object_set_new(o, "daemon", json_string("sc-traind"));
    json_t *t = json_object();
    json_object_set_new(t, "state", json_string(st->state));
    json_object_set_new(t, "backbone", json_string(st->backbone));
    json_object_set_new(t, "step", json_integer((json_int_t)st->step));
    json_object_set_new(t, "total_steps", json_integer((json_int_t)st->total_steps));
    json_object_set_new(t, "loss", json_real(st->loss));
    json_object_set_new(t, "lr", json_real(st->lr));
    json_object_set_new(t, "images_per_s", json_real(st->img_s));
    json_object_set_new(t, "data_wait", json_real(st->data_wait));
    json_object_set_new(t, "grad_norm", json_real(st->grad_norm));
    json_object_set_new(t, "nonfinite_skipped", json_integer((json_int_t)st->skipped));
    json_object_set_new(t, "checkpoints_written", json_integer((json_int_t)st->ckpts_written));
    json_object_set_new(t, "last_checkpoint", json_string(st->last_ckpt));
    json_object_set_new(t, "data_reconnects", json_integer((json_int_t)st->reconnects));
    json_object_set_new(t, "uptime_s", json_real(core_now_s() - st->started_s));
    json_t *cur = json_object();
    json_object_set_new(cur, "epoch", json_integer((json_int_t)st->epoch));
    json_object_set_new(cur, "position", json_integer((json_int_t)st->position));
    json_object_set_new(t, "cursor", cur);
    pthread_mutex_unlock(&st->mu);
    json_object_set_new(o, "trainer", t);
    return o;
}

static void handle(traind_ctl_t *c, int fd)
{
    char line[8192];
    size_t n = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 2000) <= 0) {
            return;
        }
        ssize_t r = recv(fd, line + n, sizeof line - 1 - n, 0);
        if (r <= 0) {
            return;
        }
        n += (size_t)r;
        if (memchr(line, '\n', n) != NULL || n == sizeof line - 1) {
            break;
        }
    }
    line[n] = '\0';
    char *nl = strchr(line, '\n');
    if (nl != NULL) {
        *nl = '\0';
    }
    json_t *req = json_loads(line, 0, NULL);
    const char *cmd = NULL;
    if (req != NULL && json_is_object(req)) {
        cmd = json_string_value(json_object_get(req, "cmd"));
    } else if (req == NULL && line[0] != '{') {
        cmd = line; /* a bare word, as sc-datad accepts */
    }
    json_t *rep;
    if (cmd != NULL && strcmp(cmd, "status") == 0) {
        rep = status_json(c->st);
    } else if (cmd != NULL && (strcmp(cmd, "checkpoint") == 0 || strcmp(cmd, "save") == 0)) {
        *c->ckpt_flag = 1;
        rep = json_pack("{s:b,s:s}", "ok", 1, "queued", "checkpoint after the current step");
    } else if (cmd != NULL && strcmp(cmd, "stop") == 0) {
        *c->stop_flag = 1;
        rep = json_pack("{s:b,s:s}", "ok", 1, "queued",
                        "stop after the current step (with a checkpoint)");
    } else {
        rep = json_pack("{s:b,s:s}", "ok", 0, "error",
                        "unknown command (status, checkpoint, stop)");
    }
    json_decref(req);
    char *text = json_dumps(rep, JSON_COMPACT);
    json_decref(rep);
    if (text != NULL) {
        size_t len = strlen(text);
        text[len] = '\n'; /* the terminating NUL becomes the newline; length + 1 sent */
        (void)!send(fd, text, len + 1, MSG_NOSIGNAL);
        text[len] = '\0';
        core_free(text);
    }
}

static void *ctl_thread(void *arg)
{
    traind_ctl_t *c = arg;
    for (;;) {
        struct pollfd p[2] = {{c->lfd, POLLIN, 0}, {c->pipe[0], POLLIN, 0}};
        int r = poll(p, 2, -1);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 || (p[1].revents & POLLIN)) {
            break;
        }
        if (p[0].revents & POLLIN) {
            int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                handle(c, fd);
                close(fd);
            }
        }
    }
    return NULL;
}

int traind__ctl_start(const char *path, traind_status_t *st, volatile sig_atomic_t *ckpt_flag,
                      volatile sig_atomic_t *stop_flag, traind_ctl_t **out)
{
    traind_ctl_t *c = core_calloc(1, sizeof *c);
    if (c == NULL) {
        return CORE_ERR(ENOMEM);
    }
    c->st = st;
    c->ckpt_flag = ckpt_flag;
    c->stop_flag = stop_flag;
    c->lfd = -1;
    c->pipe[0] = c->pipe[1] = -1;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t path_len = path != NULL ? strlen(path) : sizeof sa.sun_path;
    if (path_len >= sizeof sa.sun_path || path_len >= sizeof c->path) {
        core_free(c);
        return CORE_ECONFIG;
    }
    memcpy(c->path, path, path_len + 1);
    memcpy(sa.sun_path, path, path_len + 1);
    int rc = 0;
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->lfd < 0 || pipe2(c->pipe, O_CLOEXEC) != 0) {
        rc = CORE_ERR(errno);
        goto fail;
    }
    /* A stale socket file of a dead process would make bind fail. */
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = CORE_ERR(errno);
        goto fail;
    }
    if (bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(path, 0660) != 0 ||
        listen(c->lfd, 16) != 0) {
        rc = CORE_ERR(errno);
        goto fail;
    }
    if (pthread_create(&c->th, NULL, ctl_thread, c) != 0) {
        rc = CORE_ERR(EAGAIN);
        unlink(path);
        goto fail;
    }
    *out = c;
    return 0;
fail:
    if (c->lfd >= 0) {
        close(c->lfd);
    }
    if (c->pipe[0] >= 0) {
        close(c->pipe[0]);
        close(c->pipe[1]);
    }
    core_free(c);
    return rc;
}

void traind__ctl_stop(traind_ctl_t *c)
{
    if (c == NULL) {
        return;
    }
    (void)!write(c->pipe[1], "x", 1);
    pthread_join(c->th, NULL);
    close(c->lfd);
    close(c->pipe[0]);
    close(c->pipe[1]);
    unlink(c->path);
    core_free(c);
}
