/* Fuzz target: the whole ingest path over an arbitrary file (tar, .gz, .zst or garbage): grouping,
 * caption and image checks, record encoding and the store commit. Each input is ingested into a
 * fresh store with a tiny in-memory vocabulary; afterwards every stored record must decode, and
 * kept + rejected must equal the samples seen. */
#include <ftw.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/log.h"
#include "pipeline/ingest.h"
#include "pipeline/record.h"
#include "pipeline/store.h"
#include "pipeline/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int rec_cb(void *ud, uint64_t seq, const uint8_t *v, size_t len)
{
    pl_record_t r;
    (void)seq;
    if (pl_record_decode(v, len, &r) != 0) {
        abort();
    }
    (*(uint64_t *)ud)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char vocab[] = "\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\na t\n";
    core_log_set_level(CORE_LOG_ERR);
    char dir[] = "/tmp/fuzz_tar.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        return 0;
    }
    char path[64], sdir[64];
    snprintf(path, sizeof(path), "%s/in.tar", dir);
    snprintf(sdir, sizeof(sdir), "%s/store", dir);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, size, f) != size) {
        abort();
    }
    fclose(f);
    pl_tok_t *tok = NULL;
    pl_store_t *st = NULL;
    pl_ingest_t *ing = NULL;
    if (pl_tok_load_buffer(vocab, sizeof(vocab) - 1, &tok) != 0) {
        abort();
    }
    pl_store_policy_t pol;
    pl_store_policy_default(&pol);
    pol.max_member_bytes = 1u << 20;
    pl_store_caps_t caps;
    pl_store_caps_default(&caps);
    caps.map_initial_bytes = 1u << 20;
    if (pl_store_create(sdir, pl_tok_hash(tok), NULL, &pol, &caps) != 0 ||
        pl_store_open(sdir, PL_STORE_RDWR, &st) != 0) {
        abort();
    }
    pl_ingest_opts_t o;
    pl_ingest_opts_default(&o);
    o.log_rejects = 0;
    o.batch_records = 3; /* several commits even for small inputs */
    if (pl_ingest_new(st, tok, &o, &ing) != 0) {
        abort();
    }
    if (pl_ingest_file(ing, path) != 0) {
        abort(); /* damage is not an error; only the store or the file system could fail */
    }
    const pl_ingest_stats_t *s = pl_ingest_stats(ing);
    if (s->kept + s->rejected != s->samples) {
        abort();
    }
    uint64_t kept = s->kept;
    /* a second ingest of the same file adds nothing */
    if (pl_ingest_file(ing, path) != 0 || pl_ingest_stats(ing)->files_skipped != 1) {
        abort();
    }
    pl_ingest_free(ing);
    uint64_t n = 0;
    if (pl_store_foreach(st, rec_cb, &n) != 0 || n != kept || pl_store_count(st) != kept) {
        abort();
    }
    pl_store_close(st);
    pl_tok_free(tok);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}
