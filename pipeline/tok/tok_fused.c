/* The fast cleaning path: most captions need nothing of the cleaning chain (tok_clean.c) but
 * str.lower. Text without '&' (no html.unescape) that passes the NFC quick check (every code
 * point NFC_Quick_Check Yes, combining marks in canonical order: normalising changes nothing;
 * where it says Maybe, a local look decides, see pl__tok_fast_lower) and that has no capital
 * sigma (the one context-dependent lowercase mapping) cleans to its lowercase with whitespace runs
 * collapsed. This file writes that lowercase in one pass; the caller (tok.c) splits it into
 * pre-tokens treating every str.isspace character as a separator, which gives the pieces of the
 * collapsed, stripped text without building it (the pattern never matches across whitespace, and
 * lowercasing neither makes nor removes whitespace).
 *
 * Anything else (and invalid UTF-8, so the error comes from the one place that reports it) is
 * left to the full chain, so results never depend on which path ran. */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "tok_internal.h"

/* Does NFC leave the code point s[at..end) (and, with `pair`, the one before it) as they are?
 * With `pair` the one before is a starter that NFC keeps where it is: then it is the only
 * character the one at `at` could compose with, and neither can change otherwise. The text goes
 * through the full chain's NFC (pl__uni_nfc), so the answer is the reference's. */
/* nfc_keeps' answers: (first code point | second << 21 | count << 42) | answer << 44, in a
 * direct-mapped table shared by all threads (each slot one atomic word: a reader sees a whole
 * entry or another key). A count of 1 or 2 makes every key non-zero, so empty slots never match. */
#define NFC_MEMO_BITS 10
#define MEMO_KEY ((UINT64_C(1) << 44) - 1)
static _Atomic uint64_t nfc_memo[1u << NFC_MEMO_BITS];

static int nfc_keeps(const uint8_t *s, size_t at, size_t end, int pair)
{
    size_t q = at;
    if (pair) {
        if (at == 0) {
            return 0; /* nothing before it: rare, the full chain decides */
        }
        q = at - 1;
        while (q > 0 && (s[q] & 0xC0) == 0x80) {
            q--;
        }
    }
    uint32_t cps[2] = {0, 0}, *nfc;
    size_t i = q, k = 0, n;
    while (i < end && k < 2) {
        if (pl__utf8_next(s, end, &i, &cps[k++]) != 0) {
            return 0;
        }
    }
    /* The answer depends on the one or two code points only: remembered (Bengali, Thai or
     * Devanagari text asks about the same few pairs over and over, and the full NFC allocates). */
    uint64_t key = (uint64_t)cps[0] | (uint64_t)cps[1] << 21 | (uint64_t)k << 42;
    _Atomic uint64_t *slot = &nfc_memo[(key * 0x9e3779b97f4a7c15ull) >> (64 - NFC_MEMO_BITS)];
    uint64_t m = atomic_load_explicit(slot, memory_order_relaxed);
    if ((m & MEMO_KEY) == key) {
        return (int)(m >> 44) & 1;
    }
    if (pl__uni_nfc(s + q, end - q, &nfc, &n) != 0) {
        return 0;
    }
    int same = n == k;
    for (size_t j = 0; j < n && same; j++) {
        same = nfc[j] == cps[j];
    }
    core_free(nfc);
    atomic_store_explicit(slot, key | (uint64_t)same << 44, memory_order_relaxed);
    return same;
}

/* Lowercases eight ASCII bytes ('A'..'Z' -> +32, exact for bytes < 0x80: no carries between
 * bytes); returns 0 when one of them is '&'. */
static inline int lower8(uint64_t *w)
{
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t x = *w ^ (ones * '&');
    if (((x - ones) & ~x & highs) != 0) {
        return 0;
    }
    uint64_t ge_a = *w + ones * (0x80 - 'A');
    uint64_t gt_z = *w + ones * (0x80 - 'Z' - 1);
    *w |= (ge_a & ~gt_z & highs) >> 2;
    return 1;
}

/* The class byte of a code point of `nbytes` UTF-8 bytes and table byte p (see cls in
 * pl__tok_fast_lower). */
static inline unsigned class_of(uint8_t p)
{
    return (p & PL__BMP_PYSPACE) != 0 ? PL__CLS_SPACE : p & PL__BMP_CLASS;
}

/* Writes the class bytes of a non-ASCII code point of `nbytes` bytes and table byte p at cls
 * (four bytes: the ones past the code point are overwritten next, or by the padding). */
static inline void put_class(uint8_t *cls, uint8_t p, size_t nbytes)
{
    unsigned c = class_of(p);
    uint32_t f = c == PL__CLS_LETTER ? PL__TOK_CLS_LETTER_BYTE : 0;
    uint32_t v = f * 0x01010101u;
    v = (v & ~(uint32_t)0xff) | f | c | (uint32_t)nbytes << 4;
    memcpy(cls, &v, 4);
}

int pl__tok_fast_lower(const uint8_t *s, size_t len, uint8_t *out, uint8_t *cls, size_t cap,
                       size_t *out_len)
{
    const uint64_t highs = 0x8080808080808080ull, ones8 = 0x0101010101010101ull;
    size_t i = 0, o = 0;
    size_t run_i = 0, run_o = 0;  /* where the current stretch of ASCII began, in s and out */
    size_t mark_end = SIZE_MAX; /* where the last character the quick check flags ended */
    int last_ccc = 0;           /* and its combining class */
    int init = 0;
    for (;;) {
        /* ASCII eight bytes at a time. */
        while (len - i >= 8 && cap - o >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8); /* a fixed-size copy is one load */
            uint64_t hi = w & highs;
            if (hi != 0) {
                /* The ASCII bytes before the first non-ASCII one, in one step (one word, not a
                 * byte at a time): lower8's sums carry only towards later bytes, so those come
                 * out right; the bytes written past them are overwritten next. */
                unsigned n = (unsigned)__builtin_ctzll(hi) >> 3;
                uint64_t keep = n == 0 ? 0 : ~(uint64_t)0 >> (64 - 8 * n);
                uint64_t x = (w & keep) ^ (ones8 * '&');
                if ((((x - ones8) & ~x & highs) & keep) != 0) {
                    return 0;
                }
                uint64_t ge_a = w + ones8 * (0x80 - 'A');
                uint64_t gt_z = w + ones8 * (0x80 - 'Z' - 1);
                w |= (ge_a & ~gt_z & highs) >> 2;
                memcpy(out + o, &w, 8);
                memset(cls + o, 0, 8);
                i += n;
                o += n;
                break;
            }
            if (!lower8(&w)) {
                return 0;
            }
            memcpy(out + o, &w, 8);
            memset(cls + o, 0, 8);
            i += 8;
            o += 8;
        }
        if (i == len) {
            break;
        }
        uint64_t w;
        if (len - i < 8 && len >= 8 && len - 8 >= run_i && run_o + (len - run_i) <= cap) {
            /* The last few bytes: redo the last eight as one word when they all belong to the
             * current ASCII stretch (the bytes done twice come out the same). */
            memcpy(&w, s + len - 8, 8);
            if ((w & highs) == 0) {
                if (!lower8(&w)) {
                    return 0;
                }
                memcpy(out + run_o + (len - 8 - run_i), &w, 8);
                memset(cls + run_o + (len - 8 - run_i), 0, 8);
                o = run_o + (len - run_i);
                break;
            }
        }
        uint8_t c = s[i];
        if (c < 0x80) {
            if (c == '&' || o == cap) {
                return 0;
            }
            cls[o] = 0;
            out[o++] = (uint8_t)((c >= 'A' && c <= 'Z') ? c + 32 : c);
            i++;
            continue;
        }
        if (!init) {
            pl__uni_init(); /* once per text: pthread_once's fast path is one load */
            init = 1;
        }
        /* Non-ASCII code points one after another without going back through the ASCII
         * checks above (runs of Cyrillic, CJK, ...). */
        do {
            size_t at = i;
            uint32_t cp;
            if (pl__utf8_next_inl(s, len, &i, &cp) != 0) {
                return 0; /* the full chain reports CORE_EBAD_UTF8 */
            }
            uint8_t p = pl__uni_props(cp);
            if ((p & PL__BMP_NFC_UNSAFE) != 0) {
                /* The NFC quick check, with a closer look where it says Maybe:
                 * - a combining mark that is quick-check Yes (virama, nukta, Thai vowel signs and
                 *   tone marks) never composes; the text stays NFC while consecutive marks are in
                 *   canonical order (classes not decreasing);
                 * - a quick-check Maybe or No character (Bengali vowel signs) after a quick-check Yes
                 *   starter stays when NFC leaves the two alone (that starter is the only character
                 *   it could compose with);
                 * - after another such character it stays when it is a starter that NFC leaves
                 *   alone, together with the one before when that is a starter too (after a mark,
                 *   the mark blocks any composition with the starter before it); a mark there goes
                 *   to the full chain. */
                int ccc = pl__uni_ccc(cp);
                if (at != mark_end) {
                    if ((p & PL__BMP_NFC_QC) != 0 && !nfc_keeps(s, at, i, 1)) {
                        return 0;
                    }
                } else if ((p & PL__BMP_NFC_QC) != 0) {
                    if (ccc != 0 || !nfc_keeps(s, at, i, last_ccc == 0)) {
                        return 0;
                    }
                } else if (ccc < last_ccc) {
                    return 0;
                }
                mark_end = i;
                last_ccc = ccc;
            }
            /* A mapping writes at most 2 code points (pl__uni_lower_max), 8 bytes. */
            if (cap - o < 8) {
                return 0;
            }
            if ((p & PL__BMP_LOWER_SAME) != 0) {
                put_class(cls + o, p, i - at);
                if (len - at >= 4) {
                    memcpy(out + o, s + at, 4); /* one copy; the bytes past the character are
                                                   overwritten next or are padding */
                    o += i - at;
                } else {
                    for (size_t k = at; k < i; k++) {
                        out[o++] = s[k];
                    }
                }
            } else {
                if (cp == 0x3A3) {
                    return 0; /* final sigma depends on the neighbours: the full chain knows it */
                }
                uint32_t low[3];
                int k = pl__uni_lower(cp, low);
                for (int j = 0; j < k; j++) {
                    size_t nb = pl__utf8_put(out + o, low[j]);
                    if (low[j] >= 0x80) {
                        put_class(cls + o, pl__uni_props(low[j]), nb);
                    } else {
                        cls[o] = 0;
                    }
                    o += nb;
                }
            }
            run_i = i;
            run_o = o;
        } while (i < len && s[i] >= 0x80);
    }
    memset(out + o, 0, PL__TOK_FAST_PAD); /* key words may read past the end */
    memset(cls + o, 0, PL__TOK_FAST_PAD);  /* and letter runs eight class bytes at a time */
    *out_len = o;
    return 1;
}
