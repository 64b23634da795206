/* Table-driven INI configuration. The reader is our own rather than inih's because inih's default
 * build truncates lines at 200 bytes (long paths) and reports only line numbers, not what was
 * wrong; this one is small, has no limits beyond the file cap, and is fuzzed. */
#include "core/cfg.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/alloc.h"
#include "core/err.h"

#define CFG_MAX_FILE (1u << 20)

static int cfg_error(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return CORE_ECONFIG;
}

const core_cfg_key_t *core_cfg_find(const core_cfg_table_t *t, const char *key)
{
    const char *dot = strrchr(key, '.');
    size_t sec_len = dot != NULL ? (size_t)(dot - key) : 0;
    const char *name = dot != NULL ? dot + 1 : key;
    for (size_t i = 0; i < t->n; i++) {
        const core_cfg_key_t *k = &t->keys[i];
        if (strlen(k->section) == sec_len && strncmp(k->section, key, sec_len) == 0 &&
            strcmp(k->name, name) == 0) {
            return k;
        }
    }
    return NULL;
}

static int parse_bool(const char *v, int *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static int parse_size(const char *v, uint64_t *out)
{
    errno = 0;
    char *end = NULL;
    if (*v == '-' || !isdigit((unsigned char)*v)) {
        return -1;
    }
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0) {
        return -1;
    }
    unsigned shift = 0;
    switch (toupper((unsigned char)*end)) {
    case 'K':
        shift = 10;
        break;
    case 'M':
        shift = 20;
        break;
    case 'G':
        shift = 30;
        break;
    case 'T':
        shift = 40;
        break;
    case '\0':
        break;
    default:
        return -1;
    }
    if (shift != 0) {
        end++;
        if (toupper((unsigned char)*end) == 'I') {
            end++;
        }
        if (toupper((unsigned char)*end) == 'B') {
            end++;
        }
    }
    if (*end != '\0' || (shift != 0 && n > (UINT64_MAX >> shift))) {
        return -1;
    }
    *out = (uint64_t)n << shift;
    return 0;
}

static int set_value(const core_cfg_key_t *k, void *obj, const char *v, const char *origin,
                     char *err, size_t errlen)
{
    char *field = (char *)obj + k->offset;
    const char *sep = k->section[0] != '\0' ? "." : "";
    switch (k->type) {
    case CORE_CFG_INT: {
        errno = 0;
        char *end = NULL;
        long long n = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0') {
            return cfg_error(err, errlen, "%s: %s%s%s: '%s' is not an integer", origin,
                             k->section, sep, k->name, v);
        }
        if ((double)n < k->min || (double)n > k->max) {
            return cfg_error(err, errlen, "%s: %s%s%s = %lld is out of range [%.17g, %.17g]",
                             origin, k->section, sep, k->name, n, k->min, k->max);
        }
        *(int64_t *)(void *)field = n;
        return 0;
    }
    case CORE_CFG_UINT:
    case CORE_CFG_SIZE: {
        uint64_t n = 0;
        int bad;
        if (k->type == CORE_CFG_SIZE) {
            bad = parse_size(v, &n);
        } else {
            errno = 0;
            char *end = NULL;
            bad = (*v == '-' || !isdigit((unsigned char)*v));
            if (!bad) {
                n = strtoull(v, &end, 10);
                bad = errno != 0 || *end != '\0';
            }
        }
        if (bad) {
            return cfg_error(err, errlen, "%s: %s%s%s: '%s' is not a %s", origin, k->section,
                             sep, k->name, v,
                             k->type == CORE_CFG_SIZE ? "size (e.g. 512M)"
                                                      : "non-negative integer");
        }
        if ((double)n < k->min || (double)n > k->max) {
            return cfg_error(err, errlen, "%s: %s%s%s = %s is out of range [%.17g, %.17g]",
                             origin, k->section, sep, k->name, v, k->min, k->max);
        }
        *(uint64_t *)(void *)field = n;
        return 0;
    }
    case CORE_CFG_DOUBLE: {
        errno = 0;
        char *end = NULL;
        double d = strtod(v, &end);
        if (errno != 0 || end == v || *end != '\0' || !isfinite(d)) {
            return cfg_error(err, errlen, "%s: %s%s%s: '%s' is not a finite number", origin,
                             k->section, sep, k->name, v);
        }
        if (d < k->min || d > k->max) {
            return cfg_error(err, errlen, "%s: %s%s%s = %s is out of range [%.17g, %.17g]",
                             origin, k->section, sep, k->name, v, k->min, k->max);
        }
        *(double *)(void *)field = d;
        return 0;
    }
    case CORE_CFG_BOOL: {
        int b = 0;
        if (parse_bool(v, &b) != 0) {
            return cfg_error(err, errlen, "%s: %s%s%s: '%s' is not a boolean (true/false)",
                             origin, k->section, sep, k->name, v);
        }
        *(int *)(void *)field = b;
        return 0;
    }
    case CORE_CFG_ENUM: {
        for (int i = 0; k->choices[i] != NULL; i++) {
            if (strcmp(k->choices[i], v) == 0) {
                *(int *)(void *)field = i;
                return 0;
            }
        }
        char list[256] = "";
        for (int i = 0; k->choices[i] != NULL; i++) {
            size_t used = strlen(list);
            snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", k->choices[i]);
        }
        return cfg_error(err, errlen, "%s: %s%s%s: '%s' is not one of: %s", origin, k->section,
                         sep, k->name, v, list);
    }
    case CORE_CFG_STRING: {
        size_t len = strlen(v);
        if ((double)len < k->min || (double)len > k->max) {
            return cfg_error(err, errlen, "%s: %s%s%s: length %zu is out of range [%.0f, %.0f]",
                             origin, k->section, sep, k->name, len, k->min, k->max);
        }
        char *copy = core_strdup(v);
        if (copy == NULL) {
            return -ENOMEM;
        }
        char **slot = (char **)(void *)field;
        core_free(*slot);
        *slot = copy;
        return 0;
    }
    }
    return cfg_error(err, errlen, "%s: %s: bad key type", origin, k->name);
}

int core_cfg_defaults(const core_cfg_table_t *t, void *obj, char *err, size_t errlen)
{
    for (size_t i = 0; i < t->n; i++) {
        const core_cfg_key_t *k = &t->keys[i];
        if (k->type == CORE_CFG_STRING) {
            *(char **)(void *)((char *)obj + k->offset) = NULL;
        }
    }
    for (size_t i = 0; i < t->n; i++) {
        int rc = set_value(&t->keys[i], obj, t->keys[i].def, "default", err, errlen);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int core_cfg_set(const core_cfg_table_t *t, void *obj, const char *key, const char *value,
                 const char *origin, char *err, size_t errlen)
{
    const core_cfg_key_t *k = core_cfg_find(t, key);
    if (k == NULL) {
        return cfg_error(err, errlen, "%s: unknown key '%s'", origin, key);
    }
    return set_value(k, obj, value, origin, err, errlen);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r')) {
        s[--n] = '\0';
    }
    return s;
}

int core_cfg_load_buffer(const core_cfg_table_t *t, void *obj, const char *text, size_t len,
                         const char *name, char *err, size_t errlen)
{
    if (len > CFG_MAX_FILE) {
        return cfg_error(err, errlen, "%s: file is larger than %u bytes", name, CFG_MAX_FILE);
    }
    if (memchr(text, '\0', len) != NULL) {
        return cfg_error(err, errlen, "%s: file contains a NUL byte", name);
    }
    char *copy = core_malloc(len + 1);
    if (copy == NULL) {
        return -ENOMEM;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';

    int rc = 0;
    char section[128] = "";
    unsigned line_no = 0;
    char *next = copy;
    while (next != NULL && rc == 0) {
        char *line = next;
        char *nl = strchr(line, '\n');
        next = nl != NULL ? nl + 1 : NULL;
        if (nl != NULL) {
            *nl = '\0';
        }
        line_no++;
        char origin[CORE_CFG_ERRLEN / 2];
        snprintf(origin, sizeof origin, "%s:%u", name, line_no);
        char *s = trim(line);
        if (*s == '\0' || *s == '#' || *s == ';') {
            continue;
        }
        if (*s == '[') {
            char *close = strchr(s, ']');
            if (close == NULL || *trim(close + 1) != '\0') {
                rc = cfg_error(err, errlen, "%s: malformed section header", origin);
                break;
            }
            *close = '\0';
            char *sec = trim(s + 1);
            if (strlen(sec) >= sizeof section) {
                rc = cfg_error(err, errlen, "%s: section name is too long", origin);
                break;
            }
            int known = 0;
            for (size_t i = 0; i < t->n && !known; i++) {
                known = strcmp(t->keys[i].section, sec) == 0;
            }
            if (!known) {
                rc = cfg_error(err, errlen, "%s: unknown section [%s]", origin, sec);
                break;
            }
            snprintf(section, sizeof section, "%s", sec);
            continue;
        }
        char *eq = strchr(s, '=');
        if (eq == NULL) {
            rc = cfg_error(err, errlen, "%s: expected 'key = value'", origin);
            break;
        }
        *eq = '\0';
        char *key = trim(s);
        char *value = trim(eq + 1);
        /* Values may be quoted to keep leading/trailing spaces or '#'. */
        size_t vlen = strlen(value);
        if (vlen >= 2 && value[0] == '"' && value[vlen - 1] == '"') {
            value[vlen - 1] = '\0';
            value++;
        }
        const core_cfg_key_t *k = NULL;
        for (size_t i = 0; i < t->n; i++) {
            if (strcmp(t->keys[i].section, section) == 0 && strcmp(t->keys[i].name, key) == 0) {
                k = &t->keys[i];
                break;
            }
        }
        if (k == NULL) {
            rc = cfg_error(err, errlen, "%s: unknown key '%s'%s%s%s", origin, key,
                           section[0] ? " in section [" : "", section, section[0] ? "]" : "");
            break;
        }
        rc = set_value(k, obj, value, origin, err, errlen);
    }
    core_free(copy);
    return rc;
}

int core_cfg_load_file(const core_cfg_table_t *t, void *obj, const char *path, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        cfg_error(err, errlen, "%s: cannot open: %s", path, strerror(e));
        return CORE_ERR(e);
    }
    char *buf = core_malloc(CFG_MAX_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, CFG_MAX_FILE + 1, f);
    int read_err = ferror(f);
    fclose(f);
    int rc;
    if (read_err) {
        rc = cfg_error(err, errlen, "%s: read error", path);
    } else {
        rc = core_cfg_load_buffer(t, obj, buf, n, path, err, errlen);
    }
    core_free(buf);
    return rc;
}

int core_cfg_apply_override(const core_cfg_table_t *t, void *obj, const char *assignment,
                            char *err, size_t errlen)
{
    const char *eq = strchr(assignment, '=');
    if (eq == NULL) {
        return cfg_error(err, errlen, "--set %s: expected section.key=value", assignment);
    }
    char key[256];
    size_t klen = (size_t)(eq - assignment);
    if (klen >= sizeof key) {
        return cfg_error(err, errlen, "--set: key is too long");
    }
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    return core_cfg_set(t, obj, key, eq + 1, "--set", err, errlen);
}

static void print_value(const core_cfg_key_t *k, const void *obj, FILE *out)
{
    const char *field = (const char *)obj + k->offset;
    switch (k->type) {
    case CORE_CFG_INT:
        fprintf(out, "%lld", (long long)*(const int64_t *)(const void *)field);
        break;
    case CORE_CFG_UINT:
    case CORE_CFG_SIZE:
        fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)(const void *)field);
        break;
    case CORE_CFG_DOUBLE:
        fprintf(out, "%.17g", *(const double *)(const void *)field);
        break;
    case CORE_CFG_BOOL:
        fputs(*(const int *)(const void *)field ? "true" : "false", out);
        break;
    case CORE_CFG_ENUM:
        fputs(k->choices[*(const int *)(const void *)field], out);
        break;
    case CORE_CFG_STRING: {
        const char *s = *(char *const *)(const void *)field;
        fprintf(out, "\"%s\"", s != NULL ? s : "");
        break;
    }
    }
}

void core_cfg_print(const core_cfg_table_t *t, const void *obj, FILE *out)
{
    const char *section = NULL;
    for (size_t i = 0; i < t->n; i++) {
        const core_cfg_key_t *k = &t->keys[i];
        if (section == NULL || strcmp(section, k->section) != 0) {
            section = k->section;
            if (section[0] != '\0') {
                fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
            }
        }
        fprintf(out, "# %s\n", k->help);
        switch (k->type) {
        case CORE_CFG_INT:
        case CORE_CFG_UINT:
        case CORE_CFG_SIZE:
        case CORE_CFG_DOUBLE:
            fprintf(out, "# range [%.17g, %.17g], default %s\n", k->min, k->max, k->def);
            break;
        case CORE_CFG_ENUM:
            fputs("# one of:", out);
            for (int c = 0; k->choices[c] != NULL; c++) {
                fprintf(out, " %s", k->choices[c]);
            }
            fprintf(out, "; default %s\n", k->def);
            break;
        case CORE_CFG_BOOL:
        case CORE_CFG_STRING:
            fprintf(out, "# default \"%s\"\n", k->def);
            break;
        }
        fprintf(out, "%s = ", k->name);
        print_value(k, obj, out);
        fputc('\n', out);
    }
}

void core_cfg_free(const core_cfg_table_t *t, void *obj)
{
    for (size_t i = 0; i < t->n; i++) {
        const core_cfg_key_t *k = &t->keys[i];
        if (k->type == CORE_CFG_STRING) {
            char **slot = (char **)(void *)((char *)obj + k->offset);
            core_free(*slot);
            *slot = NULL;
        }
    }
}
