/* Table-driven configuration (redis static_configs style). Each key is declared once with its
 * type, bounds, default and help; the same table drives the INI reader, command-line overrides,
 * --print-config and the example files in etc/. Unknown keys and out-of-range values are errors
 * whose message names the file and line.
 *
 * Values live in a caller-owned struct; each key stores at `offset`:
 *   INT -> int64_t, UINT/SIZE -> uint64_t, DOUBLE -> double, BOOL -> int, ENUM -> int (index into
 *   `choices`), STRING -> char * (owned by the struct; release with core_cfg_free).
 * Not thread-safe: load configuration before starting threads. */
#ifndef CORE_CFG_H
#define CORE_CFG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    CORE_CFG_INT,
    CORE_CFG_UINT,
    CORE_CFG_SIZE, /* bytes, with optional K/M/G/T suffix (powers of 1024) */
    CORE_CFG_DOUBLE,
    CORE_CFG_BOOL, /* true/false, yes/no, on/off, 1/0 */
    CORE_CFG_ENUM,
    CORE_CFG_STRING,
} core_cfg_type_t;

typedef struct core_cfg_key_s {
    const char *section; /* "" for keys before any [section] */
    const char *name;
    core_cfg_type_t type;
    size_t offset;
    double min; /* numeric bounds, inclusive; string: min/max length */
    double max;
    const char *def; /* default, as it would be written in the file */
    const char *const *choices; /* ENUM: NULL-terminated */
    const char *help;
} core_cfg_key_t;

typedef struct core_cfg_table_s {
    const core_cfg_key_t *keys;
    size_t n;
} core_cfg_table_t;

#define CORE_CFG_ERRLEN 512

/* Sets every key to its default. Returns 0, or CORE_ECONFIG (a bad default: a programming error)
 * or -ENOMEM. */
int core_cfg_defaults(const core_cfg_table_t *t, void *obj, char *err, size_t errlen);

/* Sets one key named "section.name" (or "name" for the unnamed section) from text. `origin` names
 * where the value came from for error messages ("--set", "file.conf:12"). */
int core_cfg_set(const core_cfg_table_t *t, void *obj, const char *key, const char *value,
                 const char *origin, char *err, size_t errlen);

/* Parses INI text: [section], key = value, # or ; comments, blank lines. `name` is used in error
 * messages. Returns 0 or CORE_ECONFIG with "name:line: ..." in err. */
int core_cfg_load_buffer(const core_cfg_table_t *t, void *obj, const char *text, size_t len,
                         const char *name, char *err, size_t errlen);

/* Reads and parses a file (at most 1 MiB). */
int core_cfg_load_file(const core_cfg_table_t *t, void *obj, const char *path, char *err,
                       size_t errlen);

/* Applies "section.key=value" overrides (e.g. from --set). */
int core_cfg_apply_override(const core_cfg_table_t *t, void *obj, const char *assignment,
                            char *err, size_t errlen);

/* Writes the current values as an INI file, each key preceded by its help, range and default. */
void core_cfg_print(const core_cfg_table_t *t, const void *obj, FILE *out);

/* Frees owned strings. */
void core_cfg_free(const core_cfg_table_t *t, void *obj);

/* Finds a key by "section.name"; NULL when unknown. */
const core_cfg_key_t *core_cfg_find(const core_cfg_table_t *t, const char *key);

/* --- the command line of a table-configured daemon (core/cfg_cli.c) --- */

/* A flag that sets one key from the next argument (e.g. --store DIR for data.store). */
typedef struct core_cfg_flag_s {
    const char *flag;
    const char *key;
} core_cfg_flag_t;

typedef enum {
    CORE_CFG_RUN = 0,   /* no action flag: run the program */
    CORE_CFG_HELP,      /* --help / -h: nothing was loaded */
    CORE_CFG_PRINT,     /* --print-config */
    CORE_CFG_CHECK,     /* --check-config */
} core_cfg_action_t;

/* Parses `--config FILE`, `--set SECTION.KEY=VALUE` (repeatable), the `flags`, `--print-config`,
 * `--check-config` and `--help`, then loads obj: the --config file, else `default_path` when that
 * exists (NULL: none), then the --set assignments and flags in command-line order. For --help
 * nothing is loaded. Returns 0; CORE_ERR(EINVAL) for an unknown or incomplete argument (a usage
 * error: err names it); CORE_ECONFIG or -errno from the file or a value (err says where). */
int core_cfg_cli(const core_cfg_table_t *t, void *obj, int argc, char **argv,
                 const char *default_path, const core_cfg_flag_t *flags, size_t n_flags,
                 core_cfg_action_t *action, char *err, size_t errlen);

/* What --print-config writes: a header naming the program and its documentation, then
 * core_cfg_print. */
void core_cfg_print_generated(const core_cfg_table_t *t, const void *obj, const char *program,
                              const char *doc, FILE *out);

#endif
