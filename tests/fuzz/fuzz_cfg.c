/* Fuzz target: the INI config reader over arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "core/cfg.h"

typedef struct {
    int64_t i;
    uint64_t sz;
    double d;
    int b;
    int e;
    char *s;
} fz_cfg_t;

static const char *const fz_choices[] = {"a", "bb", NULL};
static const core_cfg_key_t fz_keys[] = {
    {"", "i", CORE_CFG_INT, offsetof(fz_cfg_t, i), -100, 100, "0", NULL, "int"},
    {"s", "sz", CORE_CFG_SIZE, offsetof(fz_cfg_t, sz), 0, 1e18, "1K", NULL, "size"},
    {"s", "d", CORE_CFG_DOUBLE, offsetof(fz_cfg_t, d), -1, 1, "0", NULL, "double"},
    {"t", "b", CORE_CFG_BOOL, offsetof(fz_cfg_t, b), 0, 0, "no", NULL, "bool"},
    {"t", "e", CORE_CFG_ENUM, offsetof(fz_cfg_t, e), 0, 0, "a", fz_choices, "enum"},
    {"t", "s", CORE_CFG_STRING, offsetof(fz_cfg_t, s), 0, 64, "x", NULL, "string"},
};
static const core_cfg_table_t fz_table = {fz_keys, sizeof fz_keys / sizeof fz_keys[0]};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_cfg_t c;
    char err[CORE_CFG_ERRLEN];
    if (core_cfg_defaults(&fz_table, &c, err, sizeof err) != 0) {
        __builtin_trap();
    }
    (void)core_cfg_load_buffer(&fz_table, &c, (const char *)data, size, "fuzz", err, sizeof err);
    core_cfg_free(&fz_table, &c);
    return 0;
}
