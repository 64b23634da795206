/* Learning an own byte-level BPE vocabulary from caption text (sc-tok train), with the same
 * cleaning and pre-tokenisation as pl_tok (tok.h). Deterministic: the same texts in the same
 * order give the same merges, byte for byte. The output file has the CLIP merges format, so
 * pl_tok_load reads it; its header records the merge count.
 *
 * Not thread-safe: one trainer is used from one thread. Errors: 0 or a negative core/err.h code. */
#ifndef PL_TOK_TRAIN_H
#define PL_TOK_TRAIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct pl_tok_trainer_s pl_tok_trainer_t;

/* Progress callback during pl_tok_trainer_train: merges learned so far of `target`. */
typedef void (*pl_tok_train_progress_cb)(void *ud, uint32_t merges_done, uint32_t target);

int pl_tok_trainer_new(pl_tok_trainer_t **out);
void pl_tok_trainer_free(pl_tok_trainer_t *t);

/* Cleans and pre-tokenises one text and counts its words. Invalid UTF-8: CORE_EBAD_UTF8 and the
 * text is not counted (the caller decides whether to skip it). */
int pl_tok_trainer_add_text(pl_tok_trainer_t *t, const char *text, size_t len);

/* Number of texts and distinct words counted so far. */
uint64_t pl_tok_trainer_texts(const pl_tok_trainer_t *t);
uint64_t pl_tok_trainer_words(const pl_tok_trainer_t *t);

/* Learns merges until the vocabulary has `vocab_size` ids (512 + merges + 2), or until no pair
 * occurs twice. vocab_size must be >= 514: CORE_ECONFIG otherwise. *n_merges gets the count. */
int pl_tok_trainer_train(pl_tok_trainer_t *t, uint32_t vocab_size, uint32_t *n_merges,
                         pl_tok_train_progress_cb cb, void *ud);

/* Writes the learned merges (CLIP format; gzip when path ends in ".gz"). */
int pl_tok_trainer_write(const pl_tok_trainer_t *t, const char *path);

#endif
