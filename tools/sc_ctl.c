/* sc-ctl: talks to sc-datad's control socket (one JSON request line, one JSON reply line).
 *   sc-ctl [--socket PATH] [--json] status | ingest PATH | pause | resume | stop */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/superclass/datad-ctl.sock"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sc-ctl [--socket PATH] [--json] COMMAND\n"
            "\n"
            "Controls a running sc-datad through its control socket.\n"
            "\n"
            "commands:\n"
            "  status        ingest queue and rates, rejects by reason, store size, connected\n"
            "                trainers with their cursors and rates\n"
            "  ingest PATH   queue a webdataset shard (.tar/.tar.gz/.tar.zst) for ingest\n"
            "  pause         stop taking new files (the file in progress finishes)\n"
            "  resume        take files again\n"
            "  stop          shut the daemon down (as SIGTERM)\n"
            "\n"
            "options:\n"
            "  --socket PATH control socket (default " DEFAULT_SOCKET ",\n"
            "                or $SC_DATAD_CONTROL)\n"
            "  --json        print the daemon's JSON reply as is\n"
            "  --help        this text\n"
            "\n"
            "exit status: 0 ok, 1 the daemon refused the request, 2 usage, 3 cannot connect\n");
}

static int request(const char *path, const char *line, char **reply)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa.sun_path) {
        close(fd);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t len = strlen(line);
    if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
        int e = errno;
        close(fd);
        return -e;
    }
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int pr = poll(&p, 1, 10000);
        if (pr <= 0) {
            free(buf);
            close(fd);
            return pr == 0 ? -ETIMEDOUT : -errno;
        }
        if (n + 1 >= cap) {
            char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
            if (nb == NULL) {
                free(buf);
                close(fd);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + n, cap - n - 1, 0);
        if (r <= 0) {
            break;
        }
        n += (size_t)r;
        if (memchr(buf, '\n', n) != NULL) {
            break;
        }
    }
    close(fd);
    buf[n] = '\0';
    *reply = buf;
    return n > 0 ? 0 : -ECONNRESET;
}

static long long geti(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static void print_status(json_t *root)
{
    json_t *st = json_object_get(root, "store");
    json_t *in = json_object_get(root, "ingest");
    json_t *sv = json_object_get(root, "serve");
    printf("store     %s: %lld records\n", json_string_value(json_object_get(st, "dir")),
           geti(st, "records"));
    printf("ingest    %s%s, queue %lld, files done %lld, failed %lld, %.1f records/s\n",
           json_is_true(json_object_get(in, "enabled")) ? "on" : "off",
           json_is_true(json_object_get(in, "paused")) ? " (paused)" : "", geti(in, "queue"),
           geti(in, "files_done"), geti(in, "files_failed"),
           json_real_value(json_object_get(in, "records_per_s")));
    const char *cur = json_string_value(json_object_get(in, "current"));
    if (cur != NULL && cur[0] != '\0') {
        printf("          now: %s\n", cur);
    }
    printf("          kept %lld, rejected %lld\n", geti(in, "kept"), geti(in, "rejected"));
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(in, "rejects"), key, v)
    {
        printf("            %-24s %lld\n", key, (long long)json_integer_value(v));
    }
    const char *le = json_string_value(json_object_get(in, "last_error"));
    if (le != NULL && le[0] != '\0') {
        printf("          last error: %s\n", le);
    }
    printf("serve     %lld clients, %lld batches sent, %.1f batches/s, %.1f MB/s, %lld bad "
           "frames, %lld workers\n",
           geti(sv, "clients"), geti(sv, "batches_sent"),
           json_real_value(json_object_get(sv, "batches_per_s")),
           json_real_value(json_object_get(sv, "bytes_per_s")) / 1e6, geti(sv, "bad_frames"),
           geti(sv, "workers"));
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(root, "trainers"), i, t)
    {
        json_t *cur_o = json_object_get(t, "cursor");
        printf("trainer   #%lld pid %lld %s '%s' rank %lld/%lld batch %lld cursor %lld:%lld, "
               "%lld batches, %.1f/s\n",
               geti(t, "id"), geti(t, "pid"), json_string_value(json_object_get(t, "state")),
               json_string_value(json_object_get(t, "name")) ? json_string_value(
                                                                   json_object_get(t, "name"))
                                                             : "",
               geti(t, "rank"), geti(t, "world"), geti(t, "batch_size"), geti(cur_o, "epoch"),
               geti(cur_o, "position"), geti(t, "batches_sent"),
               json_real_value(json_object_get(t, "batches_per_s")));
    }
}

int main(int argc, char **argv)
{
    const char *sock = getenv("SC_DATAD_CONTROL");
    if (sock == NULL || sock[0] == '\0') {
        sock = DEFAULT_SOCKET;
    }
    int as_json = 0;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            sock = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "sc-ctl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i];
    json_t *req = json_object();
    if (strcmp(cmd, "ingest") == 0) {
        if (i + 1 >= argc) {
            fprintf(stderr, "sc-ctl: ingest needs a PATH\n");
            json_decref(req);
            return 2;
        }
        char abs[PATH_MAX];
        if (realpath(argv[i + 1], abs) == NULL) {
            fprintf(stderr, "sc-ctl: %s: %s\n", argv[i + 1], strerror(errno));
            json_decref(req);
            return 1;
        }
        json_object_set_new(req, "path", json_string(abs));
        i++;
    } else if (strcmp(cmd, "status") != 0 && strcmp(cmd, "pause") != 0 &&
               strcmp(cmd, "resume") != 0 && strcmp(cmd, "stop") != 0) {
        fprintf(stderr, "sc-ctl: unknown command '%s'\n", cmd);
        usage(stderr);
        json_decref(req);
        return 2;
    }
    if (i + 1 < argc) {
        fprintf(stderr, "sc-ctl: unexpected argument '%s'\n", argv[i + 1]);
        json_decref(req);
        return 2;
    }
    json_object_set_new(req, "cmd", json_string(cmd));
    char *line = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (line == NULL) {
        return 1;
    }
    size_t ll = strlen(line);
    char *withnl = malloc(ll + 2);
    if (withnl == NULL) {
        free(line);
        return 1;
    }
    memcpy(withnl, line, ll);
    withnl[ll] = '\n';
    withnl[ll + 1] = '\0';
    free(line);
    char *reply = NULL;
    int rc = request(sock, withnl, &reply);
    free(withnl);
    if (rc < 0) {
        fprintf(stderr, "sc-ctl: %s: %s\n", sock, strerror(-rc));
        return 3;
    }
    json_error_t jerr;
    json_t *root = json_loads(reply, 0, &jerr);
    if (root == NULL) {
        fprintf(stderr, "sc-ctl: the daemon's reply is not JSON: %s\n", reply);
        free(reply);
        return 1;
    }
    int ok = json_is_true(json_object_get(root, "ok"));
    if (as_json) {
        fputs(reply, stdout);
        if (reply[0] != '\0' && reply[strlen(reply) - 1] != '\n') {
            putchar('\n');
        }
    } else if (!ok) {
        fprintf(stderr, "sc-ctl: %s: %s\n", cmd,
                json_string_value(json_object_get(root, "error"))
                    ? json_string_value(json_object_get(root, "error"))
                    : "refused");
    } else if (strcmp(cmd, "status") == 0) {
        print_status(root);
    } else {
        printf("ok\n");
    }
    json_decref(root);
    free(reply);
    return ok ? 0 : 1;
}
