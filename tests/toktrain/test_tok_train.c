/* Own-vocabulary training (pipeline/tok_train.h): hand-checked merges, non-overlapping pair
 * counts, tie-breaking, determinism, the vocabulary-size bound, errors, a cross-check against a
 * naive from-scratch trainer, and the round trip train -> write -> pl_tok_load -> encode/decode. */
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "pipeline/tok.h"
#include "pipeline/tok_train.h"
#include "t.h"

static pl_tok_trainer_t *train_texts(const char *const *texts, size_t n, uint32_t vocab,
                                     uint32_t *n_merges)
{
    pl_tok_trainer_t *t;
    T_ASSERT_OK(pl_tok_trainer_new(&t));
    for (size_t i = 0; i < n; i++) {
        T_ASSERT_OK(pl_tok_trainer_add_text(t, texts[i], strlen(texts[i])));
    }
    T_ASSERT_OK(pl_tok_trainer_train(t, vocab, n_merges, NULL, NULL));
    return t;
}

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", t_tmpdir(), name);
    return buf[k];
}

/* The merge lines of a written plain-text file, header checked, as one string. */
static char *merge_lines(const char *path, uint32_t n_merges)
{
    size_t len;
    char *s = t_read_file(path, &len);
    char head[64];
    int hl = snprintf(head, sizeof head, "#version: 0.2 sc-tok merges=%u\n", n_merges);
    T_ASSERT((size_t)hl <= len);
    T_ASSERT(memcmp(s, head, (size_t)hl) == 0);
    memmove(s, s + hl, len - (size_t)hl + 1);
    return s;
}

/* Sennrich et al.'s example: low x5, lower x2, newest x6, widest x3. Worked by hand: (e,s) and
 * (s,t</w>) tie at 9 and "e" < "s"; later ties at 6 go to "e" < "n" < "w" and "ew" < "n"; at 3 to
 * "d" < "i" < "w"; at 2 to "e" < "lo" < "w". Then every count is below 2. */
static const char *const k_sennrich[] = {"low low low low low", "lower lower",
                                         "newest newest newest newest newest newest",
                                         "widest widest widest"};
static const char k_sennrich_merges[] = "e s\n"
                                        "es t</w>\n"
                                        "l o\n"
                                        "e w\n"
                                        "ew est</w>\n"
                                        "n ewest</w>\n"
                                        "lo w</w>\n"
                                        "d est</w>\n"
                                        "i dest</w>\n"
                                        "w idest</w>\n"
                                        "e r</w>\n"
                                        "lo w\n"
                                        "low er</w>\n";

T_CASE(hand_checked_merges)
{
    uint32_t n;
    pl_tok_trainer_t *t = train_texts(k_sennrich, 4, 50000, &n);
    T_ASSERT_U64_EQ(pl_tok_trainer_texts(t), 4);
    T_ASSERT_U64_EQ(pl_tok_trainer_words(t), 4);
    T_ASSERT_EQ(n, 13);
    const char *path = tmp_path("sennrich.txt");
    T_ASSERT_OK(pl_tok_trainer_write(t, path));
    pl_tok_trainer_free(t);
    char *lines = merge_lines(path, 13);
    T_ASSERT_STR_EQ(lines, k_sennrich_merges);
    core_free(lines);

    /* The learned vocabulary encodes each training word as one id: merge k has id 512 + k. */
    pl_tok_t *tok;
    T_ASSERT_OK(pl_tok_load(path, &tok));
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 512 + 13 + 2);
    T_ASSERT_EQ(pl_tok_n_merges(tok), 13);
    T_ASSERT_EQ(pl_tok_sot(tok), 525);
    T_ASSERT_EQ(pl_tok_eot(tok), 526);
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 524), "lower</w>");
    uint32_t ids[8];
    size_t ni;
    const char *txt = "Low LOWER newest widest";
    T_ASSERT_OK(pl_tok_encode(tok, txt, strlen(txt), ids, 8, &ni));
    T_ASSERT_EQ(ni, 4);
    T_ASSERT_EQ(ids[0], 518);
    T_ASSERT_EQ(ids[1], 524);
    T_ASSERT_EQ(ids[2], 517);
    T_ASSERT_EQ(ids[3], 521);
    pl_tok_free(tok);
}

T_CASE(vocab_size_bounds_merges)
{
    uint32_t n;
    /* 514 ids: no merges at all, and the file still loads. */
    pl_tok_trainer_t *t = train_texts(k_sennrich, 4, 514, &n);
    T_ASSERT_EQ(n, 0);
    const char *path = tmp_path("empty.txt");
    T_ASSERT_OK(pl_tok_trainer_write(t, path));
    pl_tok_trainer_free(t);
    pl_tok_t *tok;
    T_ASSERT_OK(pl_tok_load(path, &tok));
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 514);
    pl_tok_free(tok);

    /* 519 ids: exactly the first 5 merges. */
    t = train_texts(k_sennrich, 4, 519, &n);
    T_ASSERT_EQ(n, 5);
    path = tmp_path("five.txt");
    T_ASSERT_OK(pl_tok_trainer_write(t, path));
    pl_tok_trainer_free(t);
    char *lines = merge_lines(path, 5);
    T_ASSERT_STR_EQ(lines, "e s\nes t</w>\nl o\ne w\new est</w>\n");
    core_free(lines);
    T_ASSERT_OK(pl_tok_load(path, &tok));
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 519);
    pl_tok_free(tok);

    /* Below 514: a configuration error, before any work. */
    T_ASSERT_OK(pl_tok_trainer_new(&t));
    T_ASSERT_OK(pl_tok_trainer_add_text(t, "a b", 3));
    T_ASSERT_ERR(pl_tok_trainer_train(t, 513, &n, NULL, NULL), CORE_ECONFIG);
    T_ASSERT_ERR(pl_tok_trainer_train(t, 0, &n, NULL, NULL), CORE_ECONFIG);
    /* More merges than the loader accepts (4M): refused too, rather than writing an unloadable
     * file. */
    T_ASSERT_ERR(pl_tok_trainer_train(t, 514 + (1u << 22) + 1, &n, NULL, NULL), CORE_ECONFIG);
    T_ASSERT_OK(pl_tok_trainer_train(t, 514 + (1u << 22), &n, NULL, NULL));
    T_ASSERT_EQ(n, 0); /* "a" and "b" have no pairs */
    pl_tok_trainer_free(t);
}

/* No texts (or only empty ones): no merges, and the written file is a valid 514-id vocabulary. */
T_CASE(empty_corpus)
{
    pl_tok_trainer_t *t;
    T_ASSERT_OK(pl_tok_trainer_new(&t));
    T_ASSERT_OK(pl_tok_trainer_add_text(t, "", 0));
    T_ASSERT_OK(pl_tok_trainer_add_text(t, " \t\n ", 4));
    T_ASSERT_U64_EQ(pl_tok_trainer_texts(t), 2);
    T_ASSERT_U64_EQ(pl_tok_trainer_words(t), 0);
    uint32_t n = 99;
    T_ASSERT_OK(pl_tok_trainer_train(t, 49408, &n, NULL, NULL));
    T_ASSERT_EQ(n, 0);
    const char *path = tmp_path("none.txt.gz");
    T_ASSERT_OK(pl_tok_trainer_write(t, path));
    pl_tok_trainer_free(t);
    pl_tok_t *tok;
    T_ASSERT_OK(pl_tok_load(path, &tok));
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 514);
    uint32_t ids[4];
    size_t ni;
    T_ASSERT_OK(pl_tok_encode(tok, "hi!", 3, ids, 4, &ni));
    T_ASSERT_EQ(ni, 3); /* h, i</w>, !</w>: bytes only */
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, ids[1]), "i</w>");
    pl_tok_free(tok);
}

/* Pairs are counted as the apply step merges them: "aaaa" is a a a a</w> and holds one (a, a), not
 * two, so a single "aaaa" teaches nothing; "aaaaa" holds two, so (a, a) is learned, giving
 * aa aa a</w>, and then nothing else occurs twice. */
T_CASE(runs_count_non_overlapping)
{
    uint32_t n;
    const char *aaa[] = {"aaaa"};
    pl_tok_trainer_t *t = train_texts(aaa, 1, 1000, &n);
    T_ASSERT_EQ(n, 0);
    pl_tok_trainer_free(t);

    const char *a5[] = {"aaaaa"};
    t = train_texts(a5, 1, 1000, &n);
    T_ASSERT_EQ(n, 1);
    const char *path = tmp_path("a5.txt");
    T_ASSERT_OK(pl_tok_trainer_write(t, path));
    pl_tok_trainer_free(t);
    char *lines = merge_lines(path, 1);
    T_ASSERT_STR_EQ(lines, "a a\n");
    core_free(lines);
}

/* Bytes outside printable ASCII use the mapped symbols of spec §1.3 (space -> U+0120 etc.), and
 * "</w>" goes on the last symbol only. "é" is C3 A9: both map to themselves (Ã, ©). */
T_CASE(byte_symbols_follow_clip)
{
    uint32_t n;
    const char *texts[] = {"é é é", "xé xé"};
    pl_tok_trainer_t *t = train_texts(texts, 2, 1000, &n);
    const char *path = tmp_path("bytes.txt");
    T_ASSERT_OK(pl_tok_trainer_write(t, path));
    pl_tok_trainer_free(t);
    T_ASSERT_EQ(n, 2);
    char *lines = merge_lines(path, 2);
    T_ASSERT_STR_EQ(lines, "\xc3\x83 \xc2\xa9</w>\nx \xc3\x83\xc2\xa9</w>\n");
    core_free(lines);
}

T_CASE(invalid_utf8_rejected_and_not_counted)
{
    pl_tok_trainer_t *t;
    T_ASSERT_OK(pl_tok_trainer_new(&t));
    T_ASSERT_OK(pl_tok_trainer_add_text(t, "cat cat", 7));
    T_ASSERT_ERR(pl_tok_trainer_add_text(t, "dog \xff dog", 9), CORE_EBAD_UTF8);
    T_ASSERT_ERR(pl_tok_trainer_add_text(t, "\xc3", 1), CORE_EBAD_UTF8);
    T_ASSERT_ERR(pl_tok_trainer_add_text(t, "ok \xed\xa0\x80", 6), CORE_EBAD_UTF8); /* surrogate */
    T_ASSERT_U64_EQ(pl_tok_trainer_texts(t), 1);
    T_ASSERT_U64_EQ(pl_tok_trainer_words(t), 1);
    /* The trainer is still usable: a bad text is the caller's to skip. */
    T_ASSERT_OK(pl_tok_trainer_add_text(t, "cat", 3));
    T_ASSERT_U64_EQ(pl_tok_trainer_texts(t), 2);
    uint32_t n;
    T_ASSERT_OK(pl_tok_trainer_train(t, 600, &n, NULL, NULL));
    T_ASSERT_EQ(n, 2); /* "a t</w>" then "c at</w>" (count 3 each; "a" < "c") */
    pl_tok_trainer_free(t);
}

T_CASE(special_tokens_and_nul_bytes)
{
    pl_tok_trainer_t *t;
    T_ASSERT_OK(pl_tok_trainer_new(&t));
    /* The special-token texts encode as SOT/EOT, never through BPE: they are not words. */
    const char *s = "<start_of_text> <END_OF_TEXT>";
    T_ASSERT_OK(pl_tok_trainer_add_text(t, s, strlen(s)));
    T_ASSERT_U64_EQ(pl_tok_trainer_words(t), 0);
    /* NUL is data (length-delimited). */
    T_ASSERT_OK(pl_tok_trainer_add_text(t, "a\0b", 3));
    T_ASSERT_U64_EQ(pl_tok_trainer_texts(t), 2);
    T_ASSERT(pl_tok_trainer_words(t) >= 2);
    pl_tok_trainer_free(t);
}

static int progress_calls;
static uint32_t progress_last;

static void on_progress(void *ud, uint32_t done, uint32_t target)
{
    T_ASSERT(ud == &progress_calls);
    T_ASSERT(done >= progress_last && done <= target);
    progress_last = done;
    progress_calls++;
}

T_CASE(state_errors_and_progress)
{
    pl_tok_trainer_t *t;
    T_ASSERT_OK(pl_tok_trainer_new(&t));
    T_ASSERT_ERR(pl_tok_trainer_write(t, tmp_path("x.txt")), CORE_ESTATE);
    for (int i = 0; i < 4; i++) {
        T_ASSERT_OK(pl_tok_trainer_add_text(t, k_sennrich[i], strlen(k_sennrich[i])));
    }
    uint32_t n;
    T_ASSERT_OK(pl_tok_trainer_train(t, 50000, &n, on_progress, &progress_calls));
    T_ASSERT(progress_calls >= 1);
    T_ASSERT_EQ(progress_last, 13);
    T_ASSERT_ERR(pl_tok_trainer_add_text(t, "x", 1), CORE_ESTATE);
    T_ASSERT_ERR(pl_tok_trainer_train(t, 50000, &n, NULL, NULL), CORE_ESTATE);
    T_ASSERT_ERR(pl_tok_trainer_write(t, "/nonexistent-dir/x.txt"), CORE_ERR(ENOENT));
    pl_tok_trainer_free(t);
    pl_tok_trainer_free(NULL);
}

/* ---- a naive trainer: recounts every pair from scratch at every step ---------------------- */

typedef struct {
    char **sym; /* vocabulary strings */
    size_t n_sym, cap_sym;
    char **wtext; /* distinct words */
    uint64_t *wfreq;
    uint32_t **wsym;
    uint32_t *wlen;
    size_t n_w, cap_w;
} naive_t;

static int naive_piece(void *ud, const char *p, size_t len)
{
    naive_t *nv = ud;
    if ((len == 15 && memcmp(p, "<start_of_text>", 15) == 0) ||
        (len == 13 && memcmp(p, "<end_of_text>", 13) == 0)) {
        return 0;
    }
    for (size_t i = 0; i < nv->n_w; i++) {
        if (strlen(nv->wtext[i]) == len && memcmp(nv->wtext[i], p, len) == 0) {
            nv->wfreq[i]++;
            return 0;
        }
    }
    T_ASSERT(nv->n_w < nv->cap_w);
    nv->wtext[nv->n_w] = core_strndup(p, len);
    nv->wfreq[nv->n_w] = 1;
    nv->n_w++;
    return 0;
}

static void naive_sym(naive_t *nv, const char *a, const char *b)
{
    T_ASSERT(nv->n_sym < nv->cap_sym);
    char *s = core_malloc(strlen(a) + strlen(b) + 1);
    strcpy(s, a);
    strcat(s, b);
    nv->sym[nv->n_sym++] = s;
}

/* Writes the expected merge lines into out (core_malloc'd). */
static char *naive_train(const char *const *texts, size_t n_texts, uint32_t target)
{
    naive_t nv = {0};
    nv.cap_sym = 512 + (size_t)target;
    nv.sym = core_calloc(nv.cap_sym, sizeof(char *));
    nv.cap_w = 4096;
    nv.wtext = core_calloc(nv.cap_w, sizeof(char *));
    nv.wfreq = core_calloc(nv.cap_w, sizeof(uint64_t));
    nv.wsym = core_calloc(nv.cap_w, sizeof(uint32_t *));
    nv.wlen = core_calloc(nv.cap_w, sizeof(uint32_t));
    for (size_t i = 0; i < n_texts; i++) {
        char *c;
        size_t cl;
        T_ASSERT_OK(pl_tok_clean(texts[i], strlen(texts[i]), &c, &cl));
        T_ASSERT_OK(pl_tok_pretokenize(c, cl, naive_piece, &nv));
        core_free(c);
    }
    /* Spec §1.3 byte table, written out independently of the trainer. */
    uint32_t byte_id[256], order[256], k = 0;
    for (uint32_t b = 0; b < 256; b++) {
        if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE) {
            order[k] = b;
            byte_id[b] = k++;
        }
    }
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; b++) {
        if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) {
            order[k] = 0x100 + extra++;
            byte_id[b] = k++;
        }
    }
    for (int eow = 0; eow < 2; eow++) {
        for (uint32_t i = 0; i < 256; i++) {
            char u[3] = {0};
            uint32_t cp = order[i];
            if (cp < 0x80) {
                u[0] = (char)cp;
            } else {
                u[0] = (char)(0xC0 | (cp >> 6));
                u[1] = (char)(0x80 | (cp & 0x3F));
            }
            naive_sym(&nv, u, eow ? "</w>" : "");
        }
    }
    for (size_t w = 0; w < nv.n_w; w++) {
        size_t len = strlen(nv.wtext[w]);
        nv.wsym[w] = core_malloc(len * sizeof(uint32_t));
        for (size_t i = 0; i < len; i++) {
            nv.wsym[w][i] = byte_id[(unsigned char)nv.wtext[w][i]];
        }
        nv.wsym[w][len - 1] += 256;
        nv.wlen[w] = (uint32_t)len;
    }
    size_t out_cap = 1 << 16, out_n = 0;
    char *out = core_malloc(out_cap);
    out[0] = '\0';
    uint32_t *dead = core_malloc(2 * sizeof(uint32_t) * (1 << 16));
    uint32_t *cand = core_malloc(2 * sizeof(uint32_t) * (1 << 16));
    size_t n_dead = 0;
    uint32_t learned = 0;
    while (learned < target) {
        /* The distinct live pairs present, then each one's count by a plain scan. */
        size_t n_cand = 0;
        for (size_t w = 0; w < nv.n_w; w++) {
            for (uint32_t i = 0; i + 1 < nv.wlen[w]; i++) {
                uint32_t a = nv.wsym[w][i], b = nv.wsym[w][i + 1];
                int seen = 0;
                for (size_t d = 0; d < n_dead && !seen; d++) {
                    seen = dead[2 * d] == a && dead[2 * d + 1] == b;
                }
                for (size_t d = 0; d < n_cand && !seen; d++) {
                    seen = cand[2 * d] == a && cand[2 * d + 1] == b;
                }
                if (!seen) {
                    T_ASSERT(n_cand < (1 << 16));
                    cand[2 * n_cand] = a;
                    cand[2 * n_cand + 1] = b;
                    n_cand++;
                }
            }
        }
        uint32_t ba = 0, bb = 0;
        uint64_t best = 0;
        for (size_t d = 0; d < n_cand; d++) {
            uint32_t a = cand[2 * d], b = cand[2 * d + 1];
            uint64_t c = 0;
            for (size_t v = 0; v < nv.n_w; v++) {
                for (uint32_t j = 0; j + 1 < nv.wlen[v]; j++) {
                    if (nv.wsym[v][j] == a && nv.wsym[v][j + 1] == b) {
                        c += nv.wfreq[v];
                        j++; /* the next position would overlap this occurrence */
                    }
                }
            }
            int better = c > best;
            if (c == best && c > 0) {
                int s = strcmp(nv.sym[a], nv.sym[ba]);
                better = s < 0 || (s == 0 && strcmp(nv.sym[b], nv.sym[bb]) < 0);
            }
            if (better) {
                best = c;
                ba = a;
                bb = b;
            }
        }
        if (best < 2) {
            break;
        }
        T_ASSERT(n_dead < (1 << 16));
        dead[2 * n_dead] = ba;
        dead[2 * n_dead + 1] = bb;
        n_dead++;
        size_t la = strlen(nv.sym[ba]), lb = strlen(nv.sym[bb]);
        int dup = 0;
        for (size_t s = 0; s < nv.n_sym; s++) {
            dup |= strlen(nv.sym[s]) == la + lb && memcmp(nv.sym[s], nv.sym[ba], la) == 0 &&
                   strcmp(nv.sym[s] + la, nv.sym[bb]) == 0;
        }
        if (dup) {
            continue;
        }
        uint32_t c = (uint32_t)nv.n_sym;
        naive_sym(&nv, nv.sym[ba], nv.sym[bb]);
        for (size_t w = 0; w < nv.n_w; w++) {
            uint32_t j = 0;
            for (uint32_t i = 0; i < nv.wlen[w];) {
                if (i + 1 < nv.wlen[w] && nv.wsym[w][i] == ba && nv.wsym[w][i + 1] == bb) {
                    nv.wsym[w][j++] = c;
                    i += 2;
                } else {
                    nv.wsym[w][j++] = nv.wsym[w][i++];
                }
            }
            nv.wlen[w] = j;
        }
        T_ASSERT(out_n + la + lb + 3 < out_cap);
        out_n += (size_t)snprintf(out + out_n, out_cap - out_n, "%s %s\n", nv.sym[ba], nv.sym[bb]);
        learned++;
    }
    core_free(dead);
    core_free(cand);
    for (size_t s = 0; s < nv.n_sym; s++) {
        core_free(nv.sym[s]);
    }
    for (size_t w = 0; w < nv.n_w; w++) {
        core_free(nv.wtext[w]);
        core_free(nv.wsym[w]);
    }
    core_free(nv.sym);
    core_free(nv.wtext);
    core_free(nv.wfreq);
    core_free(nv.wsym);
    core_free(nv.wlen);
    return out;
}

/* Random texts over a small alphabet: long runs of one letter, multi-byte letters, digits,
 * punctuation, contractions and HTML entities, so every code path of the counts is hit. */
static char **random_texts(uint64_t seed, size_t n, uint32_t max_parts, int letters_only)
{
    static const char *const parts[] = {
        "a", "a", "b", "ab", "ba",    "aa", "\xc3\xa9",     "\xc3\x9f",        "x", "1", "-", "'s",
        " ", " ", " ", "!!", "&amp;", "A",  "\xe7\x8c\xab", "\xf0\x9f\x98\x80"};
    core_rng_t rng;
    core_rng_init(&rng, seed, 0);
    char **texts = core_calloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char buf[1024];
        size_t len = 0;
        uint32_t k = 1 + (uint32_t)core_rng_below(&rng, max_parts);
        for (uint32_t j = 0; j < k; j++) {
            /* letters_only: the first 8 parts, so words get long, with long runs of one letter. */
            uint64_t np = letters_only ? 8 : sizeof(parts) / sizeof(parts[0]);
            const char *p = parts[core_rng_below(&rng, np)];
            T_ASSERT(len + strlen(p) < sizeof buf);
            memcpy(buf + len, p, strlen(p));
            len += strlen(p);
        }
        buf[len] = '\0';
        texts[i] = core_strdup(buf);
    }
    return texts;
}

static void free_texts(char **texts)
{
    for (size_t i = 0; texts[i]; i++) {
        core_free(texts[i]);
    }
    core_free(texts);
}

/* Short texts with many words, then few texts of long words (the trainer updates counts only
 * around each merge's occurrences; long words have many occurrences and runs per word). */
T_CASE(matches_naive_trainer)
{
    for (uint64_t seed = 1; seed <= 6; seed++) {
        int long_words = seed > 3;
        size_t nt = long_words ? 40 : 200;
        char **texts = random_texts(seed, nt, long_words ? 120 : 12, long_words);
        uint32_t n;
        pl_tok_trainer_t *t = train_texts((const char *const *)texts, nt, 100000, &n);
        const char *path = tmp_path("naive.txt");
        T_ASSERT_OK(pl_tok_trainer_write(t, path));
        pl_tok_trainer_free(t);
        char *got = merge_lines(path, n);
        char *want = naive_train((const char *const *)texts, nt, 100000);
        if (strcmp(got, want) != 0) {
            T_FAIL("seed %llu: trainer and naive trainer differ:\n--- trainer\n%s--- naive\n%s",
                   (unsigned long long)seed, got, want);
        }
        T_ASSERT(n > 20);
        core_free(got);
        core_free(want);
        free_texts(texts);
    }
}

/* ---- golden.tsv texts: determinism, gzip, round trip -------------------------------------- */

typedef struct {
    char *buf;
    char **texts;
    size_t n;
} corpus_t;

static void golden_texts(corpus_t *c)
{
    size_t len;
    c->buf = t_read_file(t_shared("tokenizer/golden.tsv"), &len);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++) {
        lines += c->buf[i] == '\n';
    }
    c->texts = core_calloc(lines, sizeof(char *));
    c->n = 0;
    char *p = c->buf;
    while (*p) {
        char *e = strchr(p, '\n');
        if (e) {
            *e = '\0';
        }
        char *tab = strrchr(p, '\t');
        if (*p != '#' && tab) {
            *tab = '\0';
            char *w = p;
            for (char *r = p; *r; r++) {
                if (*r == '\\' && r[1]) {
                    r++;
                    *w++ = *r == 't' ? '\t' : *r == 'n' ? '\n' : *r == 'r' ? '\r' : *r;
                } else {
                    *w++ = *r;
                }
            }
            *w = '\0';
            c->texts[c->n++] = p;
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
}

static void corpus_free(corpus_t *c)
{
    core_free(c->texts);
    core_free(c->buf);
}

static pl_tok_trainer_t *train_corpus(const corpus_t *c, uint32_t vocab, uint32_t *n)
{
    pl_tok_trainer_t *t;
    T_ASSERT_OK(pl_tok_trainer_new(&t));
    for (size_t i = 0; i < c->n; i++) {
        T_ASSERT_OK(pl_tok_trainer_add_text(t, c->texts[i], strlen(c->texts[i])));
    }
    T_ASSERT_OK(pl_tok_trainer_train(t, vocab, n, NULL, NULL));
    return t;
}

T_CASE(deterministic_bytes)
{
    corpus_t c;
    golden_texts(&c);
    T_ASSERT_EQ(c.n, 10035);
    uint32_t n1, n2;
    pl_tok_trainer_t *t1 = train_corpus(&c, 6000, &n1);
    pl_tok_trainer_t *t2 = train_corpus(&c, 6000, &n2);
    T_ASSERT_EQ(n1, 6000 - 514);
    T_ASSERT_EQ(n1, n2);
    const char *p1 = tmp_path("d1.txt"), *p2 = tmp_path("d2.txt"), *pz = tmp_path("d1.txt.gz");
    T_ASSERT_OK(pl_tok_trainer_write(t1, p1));
    T_ASSERT_OK(pl_tok_trainer_write(t2, p2));
    T_ASSERT_OK(pl_tok_trainer_write(t1, pz));
    pl_tok_trainer_free(t1);
    pl_tok_trainer_free(t2);
    size_t l1, l2, lz;
    char *b1 = t_read_file(p1, &l1), *b2 = t_read_file(p2, &l2), *bz = t_read_file(pz, &lz);
    T_ASSERT_EQ(l1, l2);
    T_ASSERT(memcmp(b1, b2, l1) == 0);
    /* The .gz file is gzip (magic 1f 8b) and loads to the same vocabulary as the plain one. */
    T_ASSERT(lz > 2 && (unsigned char)bz[0] == 0x1f && (unsigned char)bz[1] == 0x8b);
    T_ASSERT(lz < l1);
    pl_tok_t *a, *b;
    T_ASSERT_OK(pl_tok_load(p1, &a));
    T_ASSERT_OK(pl_tok_load(pz, &b));
    T_ASSERT_EQ(pl_tok_vocab_size(a), 6000);
    T_ASSERT_STR_EQ(pl_tok_hash(a), pl_tok_hash(b));
    pl_tok_free(a);
    pl_tok_free(b);
    core_free(b1);
    core_free(b2);
    core_free(bz);
    corpus_free(&c);
}

typedef struct {
    char *buf;
    size_t n, cap;
} join_t;

static int join_piece(void *ud, const char *p, size_t len)
{
    join_t *j = ud;
    T_ASSERT(j->n + len + 1 < j->cap);
    memcpy(j->buf + j->n, p, len);
    j->n += len;
    /* SOT/EOT have no "</w>", so nothing separates them from what follows. */
    if (!((len == 15 && memcmp(p, "<start_of_text>", 15) == 0) ||
          (len == 13 && memcmp(p, "<end_of_text>", 13) == 0))) {
        j->buf[j->n++] = ' ';
    }
    return 0;
}

/* decode(encode(text)) is the text's pre-tokens each followed by a space (every word ends in
 * "</w>", which decodes to a space; the special tokens excepted), the last space dropped, for the
 * trained vocabulary as for CLIP's. */
static void check_round_trip(const pl_tok_t *tok, const corpus_t *c, size_t *total_ids)
{
    uint32_t *ids = core_malloc(8192 * sizeof(uint32_t));
    char *dec = core_malloc(65536);
    join_t j = {.buf = core_malloc(65536), .cap = 65536};
    *total_ids = 0;
    for (size_t i = 0; i < c->n; i++) {
        const char *s = c->texts[i];
        size_t n;
        T_ASSERT_OK(pl_tok_encode(tok, s, strlen(s), ids, 8192, &n));
        T_ASSERT(n <= 8192);
        *total_ids += n;
        for (size_t k = 0; k < n; k++) {
            T_ASSERT(ids[k] < pl_tok_vocab_size(tok));
        }
        size_t dl;
        T_ASSERT_OK(pl_tok_decode(tok, ids, n, dec, 65536, &dl));
        char *clean;
        size_t cl;
        T_ASSERT_OK(pl_tok_clean(s, strlen(s), &clean, &cl));
        j.n = 0;
        T_ASSERT_OK(pl_tok_pretokenize(clean, cl, join_piece, &j));
        if (j.n > 0 && j.buf[j.n - 1] == ' ') {
            j.n--; /* the trailing space, which decode also drops */
        }
        j.buf[j.n] = '\0';
        if (dl != j.n || memcmp(dec, j.buf, dl) != 0) {
            T_FAIL("text %zu \"%s\": decoded \"%s\", expected \"%s\"", i, s, dec, j.buf);
        }
        core_free(clean);
    }
    core_free(ids);
    core_free(dec);
    core_free(j.buf);
}

T_CASE(round_trip_and_identity)
{
    corpus_t c;
    golden_texts(&c);
    uint32_t n;
    pl_tok_trainer_t *t = train_corpus(&c, 4000, &n);
    T_ASSERT_EQ(n, 4000 - 514);
    const char *path = tmp_path("own.txt.gz");
    T_ASSERT_OK(pl_tok_trainer_write(t, path));
    pl_tok_trainer_free(t);

    pl_tok_t *own, *clip;
    T_ASSERT_OK(pl_tok_load(path, &own));
    T_ASSERT_OK(pl_tok_load(t_shared("tokenizer/bpe_simple_vocab_16e6.txt.gz"), &clip));
    T_ASSERT_EQ(pl_tok_vocab_size(own), 4000);
    T_ASSERT_EQ(pl_tok_n_merges(own), n);
    T_ASSERT_EQ(pl_tok_sot(own), 3998);
    T_ASSERT_EQ(pl_tok_eot(own), 3999);
    T_ASSERT_EQ(strlen(pl_tok_hash(own)), 64);
    T_ASSERT(strcmp(pl_tok_hash(own), pl_tok_hash(clip)) != 0);
    /* The 512 base symbols are CLIP's, id for id. */
    for (uint32_t id = 0; id < 512; id++) {
        T_ASSERT_STR_EQ(pl_tok_symbol(own, id), pl_tok_symbol(clip, id));
    }
    /* The row ends in the own vocabulary's EOT. */
    uint32_t row[PL_TOK_CONTEXT];
    size_t used;
    T_ASSERT_OK(pl_tok_row(own, "a photo of a cat", 16, row, NULL, &used));
    T_ASSERT_EQ(row[0], 3998);
    T_ASSERT_EQ(row[used - 1], 3999);

    size_t own_ids, clip_ids, bytes = 0;
    check_round_trip(own, &c, &own_ids);
    check_round_trip(clip, &c, &clip_ids);
    for (size_t i = 0; i < c.n; i++) {
        bytes += strlen(c.texts[i]);
    }
    /* Merges learned on these very texts compress them: far fewer ids than bytes. */
    T_ASSERT(own_ids * 2 < bytes);
    pl_tok_free(own);
    pl_tok_free(clip);
    corpus_free(&c);
}

T_MAIN()
