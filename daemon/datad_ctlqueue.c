/* The journal of files queued with `sc-ctl ingest`, so that a restart (crash, SIGTERM, upgrade)
 * does not forget them: spool files are found again by the rescan, a ctl-queued file lives
 * wherever its owner put it and only this journal remembers it.
 *
 * Format: one line per event, "CRC32C-HEX +|- PATH\n" (the CRC covers "+ PATH" / "- PATH"):
 * "+" when a file is queued, "-" when it is finished (ingested, or failed for good). A file is
 * pending while its "+" lines outnumber its "-" lines. Each line is appended and fdatasync'ed
 * before the request is acknowledged or the file is forgotten. An unterminated last line (a crash
 * while appending) is dropped; a line that fails its CRC is skipped with a warning: losing one
 * entry is better than a daemon that cannot start. Opening replays the journal and rewrites it
 * with only the pending files (temporary file, fsync, rename, directory fsync), so it stays small.
 * Paths with a newline cannot be journaled and are refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/err.h"
#include "core/log.h"
#include "datad.h"

#define CTLQ_MAX_FILE (16u << 20)
#define CTLQ_MAX_PATH 4096

static int pending_add(datad_ctlq_t *q, const char *path, size_t len)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        char **v = core_realloc(q->paths, cap * sizeof(*v));
        if (v == NULL) {
            return CORE_ERR(ENOMEM);
        }
        q->paths = v;
        q->cap = cap;
    }
    char *s = core_malloc(len + 1);
    if (s == NULL) {
        return CORE_ERR(ENOMEM);
    }
    memcpy(s, path, len);
    s[len] = '\0';
    q->paths[q->n++] = s;
    return 0;
}

/* Removes the oldest pending entry equal to path; 0 if there was none. */
static int pending_remove(datad_ctlq_t *q, const char *path, size_t len)
{
    for (size_t i = 0; i < q->n; i++) {
        if (strlen(q->paths[i]) == len && memcmp(q->paths[i], path, len) == 0) {
            core_free(q->paths[i]);
            memmove(q->paths + i, q->paths + i + 1, (q->n - i - 1) * sizeof(*q->paths));
            q->n--;
            return 1;
        }
    }
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int datad__ctlq_parse(datad_ctlq_t *q, const char *buf, size_t len, unsigned *bad_lines)
{
    *bad_lines = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        if (nl == NULL) {
            break; /* never synced as a whole: the request it records was never acknowledged */
        }
        size_t n = (size_t)(nl - line);
        pos += n + 1;
        /* 8 hex digits, ' ', '+' or '-', ' ', an absolute path without NUL */
        int ok = n >= 12 && line[8] == ' ' && (line[9] == '+' || line[9] == '-') &&
                 line[10] == ' ' && line[11] == '/' && n - 11 <= CTLQ_MAX_PATH &&
                 memchr(line + 11, '\0', n - 11) == NULL;
        uint32_t crc = 0;
        for (int i = 0; ok && i < 8; i++) {
            int h = hexval(line[i]);
            ok = h >= 0;
            crc = crc << 4 | (uint32_t)(h < 0 ? 0 : h);
        }
        if (!ok || core_crc32c(0, line + 9, n - 9) != crc) {
            (*bad_lines)++;
            continue;
        }
        if (line[9] == '+') {
            int rc = pending_add(q, line + 11, n - 11);
            if (rc < 0) {
                return rc;
            }
        } else {
            (void)pending_remove(q, line + 11, n - 11);
        }
    }
    return 0;
}

/* One journal line for (sign, path) into out (room for CTLQ_MAX_PATH + 16); returns its length. */
static size_t format_line(char *out, char sign, const char *path)
{
    size_t pl = strlen(path);
    out[9] = sign;
    out[10] = ' ';
    memcpy(out + 11, path, pl);
    uint32_t crc = core_crc32c(0, out + 9, pl + 2);
    char hex[9];
    snprintf(hex, sizeof hex, "%08x", crc);
    memcpy(out, hex, 8);
    out[8] = ' ';
    out[11 + pl] = '\n';
    return 12 + pl;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return CORE_ERR(w < 0 ? errno : EIO);
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Rewrites the journal with one "+" line per pending file, atomically. */
static int compact(datad_ctlq_t *q)
{
    char tmp[CTLQ_MAX_PATH + 32];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", q->path);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        return CORE_ETOO_LARGE;
    }
    int rc = 0;
    char *line = core_malloc(CTLQ_MAX_PATH + 16);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    CORE_FAIL_IF(line == NULL, CORE_ERR(ENOMEM));
    CORE_FAIL_IF(fd < 0, CORE_ERR(errno));
    for (size_t i = 0; i < q->n; i++) {
        CORE_TRY(write_all(fd, line, format_line(line, '+', q->paths[i])));
    }
    CORE_FAIL_IF(fsync(fd) != 0, CORE_ERR(errno));
    CORE_FAIL_IF(close(fd) != 0, CORE_ERR(errno));
    fd = -1;
    CORE_FAIL_IF(rename(tmp, q->path) != 0, CORE_ERR(errno));
    /* The rename is durable only once the directory is. */
    char dir[CTLQ_MAX_PATH + 32];
    snprintf(dir, sizeof dir, "%s", q->path);
    char *slash = strrchr(dir, '/');
    if (slash != NULL) {
        *slash = '\0';
    }
    int dfd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CORE_FAIL_IF(dfd < 0, CORE_ERR(errno));
    int sync_rc = fsync(dfd);
    int sync_errno = errno;
    close(dfd);
    CORE_FAIL_IF(sync_rc != 0, CORE_ERR(sync_errno));
fail:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    core_free(line);
    return rc;
}

int datad__ctlq_open(datad_ctlq_t *q, const char *path)
{
    memset(q, 0, sizeof(*q));
    q->fd = -1;
    pthread_mutex_init(&q->mu, NULL);
    q->inited = 1;
    q->path = core_strdup(path);
    if (q->path == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int rc = 0;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno != ENOENT) {
        rc = CORE_ERR(errno);
        core_log_err("ingest queue %s: %s", path, core_strerror(rc));
        return rc;
    }
    if (fd >= 0) {
        off_t size = lseek(fd, 0, SEEK_END);
        if (size < 0 || size > (off_t)CTLQ_MAX_FILE) {
            close(fd);
            core_log_err("ingest queue %s: unreadable or larger than 16 MiB; move it away to start "
                         "with an empty queue",
                         path);
            return CORE_ECORRUPT;
        }
        buf = core_malloc((size_t)size + 1);
        ssize_t got = buf != NULL ? pread(fd, buf, (size_t)size, 0) : -1;
        close(fd);
        CORE_FAIL_IF(buf == NULL, CORE_ERR(ENOMEM));
        CORE_FAIL_IF(got != (ssize_t)size, CORE_ERR(EIO));
        unsigned bad = 0;
        CORE_TRY(datad__ctlq_parse(q, buf, (size_t)size, &bad));
        if (bad > 0) {
            core_log_warn("ingest queue %s: %u corrupt line(s) skipped", path, bad);
        }
    }
    rc = compact(q);
    if (rc < 0) {
        core_log_err("ingest queue %s: cannot rewrite: %s", path, core_strerror(rc));
        goto fail;
    }
    q->fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    CORE_FAIL_IF(q->fd < 0, CORE_ERR(errno));
fail:
    core_free(buf);
    return rc;
}

static int append(datad_ctlq_t *q, char sign, const char *path)
{
    if (q->fd < 0) {
        return CORE_ESTATE;
    }
    char *line = core_malloc(CTLQ_MAX_PATH + 16);
    if (line == NULL) {
        return CORE_ERR(ENOMEM);
    }
    int rc = write_all(q->fd, line, format_line(line, sign, path));
    if (rc == 0 && fdatasync(q->fd) != 0) {
        rc = CORE_ERR(errno);
    }
    core_free(line);
    if (rc < 0) {
        core_log_err("ingest queue %s: %s", q->path, core_strerror(rc));
    }
    return rc;
}

int datad__ctlq_add(datad_ctlq_t *q, const char *path)
{
    size_t len = strlen(path);
    if (path[0] != '/' || len > CTLQ_MAX_PATH || strchr(path, '\n') != NULL) {
        return CORE_ECONFIG;
    }
    pthread_mutex_lock(&q->mu);
    int rc = append(q, '+', path);
    if (rc == 0) {
        rc = pending_add(q, path, len);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

int datad__ctlq_done(datad_ctlq_t *q, const char *path)
{
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    if (pending_remove(q, path, strlen(path))) {
        rc = append(q, '-', path);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void datad__ctlq_close(datad_ctlq_t *q)
{
    if (!q->inited) {
        return;
    }
    if (q->fd >= 0) {
        close(q->fd);
    }
    for (size_t i = 0; i < q->n; i++) {
        core_free(q->paths[i]);
    }
    core_free(q->paths);
    core_free(q->path);
    pthread_mutex_destroy(&q->mu);
    memset(q, 0, sizeof(*q));
    q->fd = -1;
}
