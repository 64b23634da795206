/* Internal cross-file helpers of pipeline/store (not part of the public API). */
#ifndef PL_STORE_INTERNAL_H
#define PL_STORE_INTERNAL_H

#include <stdint.h>

#include "pipeline/record.h"

/* Maps an LMDB return code to a core error, logging mdb_strerror's text with `what` and `path`
 * (MDB_NOTFOUND maps to CORE_ENOT_FOUND silently). */
int pl__store_mdb_err(int e, const char *what, const char *path);

/* sha256 of a record's content as the store digest defines it (store.h pl_store_digest). */
void pl__store_record_hash(const pl_record_t *rec, const char *caption, uint8_t out[32]);

#endif
