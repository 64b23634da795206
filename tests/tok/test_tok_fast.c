/* The tokenizer's fast path (tok_fused.c + fast_pieces in tok.c) against the full chain:
 * pl_tok_clean, then pl_tok_pretokenize, then BPE of every piece, on many generated strings that
 * mix scripts, case, the pattern's literals, whitespace of every kind, and the things that must
 * send a text to the full chain (U+03A3, combining marks, '&', invalid UTF-8). pl_tok_encode must
 * give the same ids (or the same error) either way, and where the fast path takes a text its
 * lowercase, collapsed, must be pl_tok_clean's result. A small in-memory vocabulary keeps it
 * independent of ../shared: the final-symbol ids ("</w>" twins) mark every piece's end, so the ids
 * show any difference in the split. */
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/rng.h"
#include "pipeline/tok.h"
#include "t.h"
#include "tok_internal.h"

static const char vocab[] = PL_TOK_SCTOK_HEADER "8\n"
                            "i n\n"
                            "t h\n"
                            "th e</w>\n"
                            "' s</w>\n"
                            "Ã ©\n"
                            "Ã ©</w>\n"
                            "s t\n"
                            "a r\n";

typedef struct {
    const char *s;
    size_t n;
} atom_t;

#define A(lit) {lit, sizeof(lit) - 1}

/* Pieces of text the generator strings together. The ones marked "bail" make the fast path hand
 * the text to the full chain. */
static const atom_t atoms[] = {
    A("a"), A("Z"), A("the"), A("The"), A("STAR"), A("x1"), A("42"), A("7"), A("!"), A("?!"),
    A(","), A("."), A("-"), A("_"), A("'"), A("''"), A("'s"), A("'S"), A("'t"), A("'re"),
    A("'RE"), A("'ve"), A("'m"), A("'LL"), A("'d"), A("'x"), A("<"), A(">"), A("<start_of_text>"),
    A("<START_OF_TEXT>"), A("<end_of_text>"), A("<End_Of_Text>"), A("<\xC5\xBFtart_of_text>"),
    A("'\xC5\xBF"), A("\xC5\xBF"), A("<st"), A(" "), A("  "), A("\t"), A("\n"), A("\r\n"),
    A("\x1c"), A("\x1f"), A("\x0b"), A("\x00"), A("a\x00" "b"),
    A("\xC3\xA9"),             /* é */
    A("\xC3\x89"),             /* É */
    A("\xC3\x80"),             /* À */
    A("\xC3\x9F"),             /* ß */
    A("\xE1\xBA\x9E"),         /* ẞ -> ß */
    A("\xCE\xA9"),             /* Ω */
    A("\xCF\x82"),             /* ς */
    A("\xD0\x96"),             /* Ж */
    A("\xD0\xB6\xD0\xB8"),     /* жи */
    A("\xC4\xB0"),             /* İ -> i U+0307 */
    A("\xC8\xBA"),             /* Ⱥ -> U+2C65 (two bytes -> three) */
    A("\xE2\x84\xAA"),         /* Kelvin sign -> k */
    A("\xE2\x84\xA6"),         /* Ohm sign -> ω */
    A("\xE2\x85\xAB"),         /* Ⅻ (number, uppercase) */
    A("\xC2\xB2"),             /* ² */
    A("\xD9\xA3"),             /* Arabic-indic 3 */
    A("\xE4\xB8\xAD\xE6\x96\x87"), /* 中文 */
    A("\xE0\xA6\x95"),         /* Bengali KA */
    A("\xE0\xB8\x81"),         /* Thai KO KAI */
    A("\xC2\xA0"),             /* NBSP */
    A("\xC2\x85"),             /* NEL */
    A("\xE1\x9A\x80"),         /* Ogham space */
    A("\xE2\x80\x83"),         /* em space */
    A("\xE2\x80\xA8"),         /* line separator */
    A("\xE3\x80\x80"),         /* ideographic space */
    A("\xE2\x80\x8D"),         /* ZWJ */
    A("\xEF\xB8\x8F"),         /* VS16 */
    A("\xC2\xAD"),             /* soft hyphen */
    A("\xF0\x9F\x87\xB9\xF0\x9F\x87\xB2"), /* flag TM */
    A("\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9"), /* man ZWJ woman */
    A("\xF0\x9F\x8E\xA4"),     /* microphone */
    A("\xF0\x90\x90\x80"),     /* Deseret capital long I -> U+10428 */
    A("\xF0\x9D\x90\x80"),     /* mathematical bold A (letter, no lowercase) */
    A("\xF0\x9F\x84\x90"),     /* parenthesized A (plane 1, So) */
    A("\xF0\xA0\x80\x80"),     /* U+20000 (plane 2 ideograph) */
    A("\xF3\xA0\x80\x81"),     /* U+E0001 language tag */
    A("\xF4\x8F\xBF\xBF"),     /* U+10FFFF */
    A("\xEF\xBF\xBD"),         /* U+FFFD */
    A("\xE0\xA4\x95\xE0\xA5\x8D"), /* Devanagari KA + virama (a mark, quick check Yes) */
    A("\xE0\xA4\xBC"),         /* Devanagari nukta */
    A("\xE0\xB8\xB8"),         /* Thai sara u (class 103) */
    A("\xE0\xB9\x88"),         /* Thai mai ek (class 107) */
    A("\xE0\xB8\xB8\xE0\xB9\x88"), /* two marks in order */
    A("\xCD\x85"),             /* U+0345 (a mark; no class under IGNORECASE) */
    A("\xE0\xA6\x95\xE0\xA6\xBE"), /* Bengali KA + AA (quick check Maybe, nothing composes) */
    A("x\xCC\x81"),            /* x + combining acute (Maybe; no precomposed x-acute) */
    A("\xE0\xA6\xA1\xE0\xA6\xBC\xE0\xA6\xBE"), /* Bengali DDA + nukta + AA (Maybe after a mark) */
    A("\xE0\xA4\xAB\xE0\xA4\xBC\xE0\xA5\x8D"), /* Devanagari PHA + nukta + virama (7, 9) */
    A("\xE0\xB8\x9C\xE0\xB8\xB9\xE0\xB9\x89"), /* Thai PHO PHUNG + sara uu + mai tho */
    A("a\xCC\xA3\xCC\x81"),    /* a + dot below (220) + acute (230, Maybe after a mark) */
    /* bail: */
    A("\xCE\xA3"),             /* Σ (final-sigma rule) */
    A("\xCC\x81"),             /* combining acute */
    A("e\xCC\x81"),            /* e + combining acute (NFC composes) */
    A("\xE0\xB9\x88\xE0\xB8\xB8"), /* two marks out of order (NFC swaps them) */
    A("\xE0\xA6\xBE"),         /* Bengali AA (NFC maybe) */
    A("\xE0\xA7\x87\xE0\xA6\xBE"), /* Bengali E + AA (NFC composes them) */
    A("\xEA\xB0\x80\xE1\x86\xA8"), /* Hangul GA + final KIYEOK (composes to GAG) */
    A("e\xCC\x81\xCC\xA3"),    /* e + acute + dot below (NFC reorders and composes) */
    A("\xE0\xA7\x87\xE0\xA6\xBC\xE0\xA6\xBE"), /* Bengali E + nukta + AA */
    A("\xF0\x90\xBB\xBD"),     /* U+10EFD (new mark, NFC break) */
    A("&amp;"), A("&"), A("&lt;b&gt;"),
    A("\xFF"), A("\xC0\x80"), A("\xE2\x82"), A("\xED\xA0\x80"), A("\xF4\x90\x80\x80"),
    A("\x80"), A("\xC3"),
};
#define N_ATOMS (sizeof atoms / sizeof atoms[0])
#define N_BAIL 20 /* the last N_BAIL atoms */

typedef struct {
    const pl_tok_t *tok;
    uint32_t *ids;
    size_t n, cap;
} ref_t;

/* The reference's per-piece step: the special strings, else BPE of the piece's bytes. */
static int ref_piece(void *ud, const char *piece, size_t len)
{
    ref_t *r = ud;
    const pl_tok_t *tok = r->tok;
    T_ASSERT(len > 0 && r->n + len <= r->cap);
    if (len == 15 && memcmp(piece, "<start_of_text>", 15) == 0) {
        r->ids[r->n++] = pl_tok_sot(tok);
        return 0;
    }
    if (len == 13 && memcmp(piece, "<end_of_text>", 13) == 0) {
        r->ids[r->n++] = pl_tok_eot(tok);
        return 0;
    }
    uint32_t *w = r->ids + r->n;
    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)piece[i];
        w[i] = i + 1 < len ? tok->byte_id[c] : tok->byte_id_w[c];
    }
    size_t k;
    T_ASSERT_OK(pl__tok_bpe(tok, w, len, &k, PL__TOK_BPE_AUTO));
    r->n += k;
    return 0;
}

/* The full chain's ids of text (or its error); ids has room for cap. */
static int ref_encode(const pl_tok_t *tok, const char *text, size_t len, uint32_t *ids, size_t cap,
                      size_t *n)
{
    char *clean;
    size_t clen;
    int rc = pl_tok_clean(text, len, &clean, &clen);
    if (rc < 0) {
        return rc;
    }
    ref_t r = {tok, ids, 0, cap};
    rc = pl_tok_pretokenize(clean, clen, ref_piece, &r);
    core_free(clean);
    *n = r.n;
    return rc;
}

/* " ".join(s.split()) of lowercase text as pl__tok_fast_lower writes it (str.isspace splits). */
static size_t collapse(const uint8_t *s, size_t len, char *out)
{
    size_t o = 0, i = 0;
    int pending = 0;
    pl__uni_init();
    while (i < len) {
        size_t at = i;
        uint32_t cp;
        T_ASSERT_EQ(pl__utf8_next(s, len, &i, &cp), 0);
        if (pl__uni_is_pyspace(cp)) {
            pending = o > 0;
            continue;
        }
        if (pending) {
            out[o++] = ' ';
            pending = 0;
        }
        memcpy(out + o, s + at, i - at);
        o += i - at;
    }
    return o;
}

#define MAX_TEXT 8192
#define FAST_ROOM (MAX_TEXT * 2)

typedef struct {
    size_t fast, full, errors;
} tally_t;

/* The class byte pl__tok_fast_lower wrote for each non-ASCII code point of its output: the
 * pre-tokeniser's class from the slow functions (not the table it reads), and the length. */
static void check_classes(const uint8_t *low, const uint8_t *cls, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t at = i;
        uint32_t cp;
        T_ASSERT_OK(pl__utf8_next(low, n, &i, &cp));
        if (cp < 0x80) {
            T_ASSERT_EQ(cls[at], 0);
            continue;
        }
        int want = pl__uni_is_pyspace(cp) ? PL__CLS_SPACE : pl__uni_class(cp);
        int letter = want == PL__CLS_LETTER ? PL__TOK_CLS_LETTER_BYTE : 0;
        if (cls[at] != (want | (int)(i - at) << 4 | letter)) {
            T_FAIL("U+%04X at %zu: class byte 0x%02x, want class %d, %zu bytes", (unsigned)cp, at,
                   cls[at], want, i - at);
        }
        for (size_t b = at + 1; b < i; b++) {
            T_ASSERT_EQ(cls[b], letter);
        }
    }
    for (size_t b = n; b < n + PL__TOK_FAST_PAD; b++) {
        T_ASSERT_EQ(cls[b], 0);
    }
}

/* Checks one text both ways; tallies which path cleaning takes. */
static void check_text(const pl_tok_t *tok, const char *text, size_t len, tally_t *t)
{
    static uint32_t want[4 * MAX_TEXT], got[4 * MAX_TEXT];
    static uint8_t low[FAST_ROOM + PL__TOK_FAST_PAD], low_cls[FAST_ROOM + PL__TOK_FAST_PAD];
    static char flat[FAST_ROOM], clean_copy[FAST_ROOM];
    size_t nw = 0, ng = 0;
    int rw = ref_encode(tok, text, len, want, 4 * MAX_TEXT, &nw);
    int rg = pl_tok_encode(tok, text, len, got, 4 * MAX_TEXT, &ng);
    if (rw != rg) {
        T_FAIL("text of %zu bytes: full chain %s, encode %s", len, core_err_name(rw),
               core_err_name(rg));
    }
    size_t low_len;
    int fast = pl__tok_fast_lower((const uint8_t *)text, len, low, low_cls, FAST_ROOM, &low_len);
    if (rw < 0) {
        T_ASSERT_EQ(rw, CORE_EBAD_UTF8);
        T_ASSERT_EQ(fast, 0); /* invalid UTF-8 is the full chain's to report */
        t->errors++;
        return;
    }
    T_ASSERT_EQ(ng, nw);
    for (size_t i = 0; i < nw; i++) {
        if (got[i] != want[i]) {
            T_FAIL("text of %zu bytes (\"%.*s\"): id %zu is %u, full chain %u", len, (int)len,
                   text, i, got[i], want[i]);
        }
    }
    if (fast) {
        char *clean;
        size_t clen;
        T_ASSERT_OK(pl_tok_clean(text, len, &clean, &clen));
        T_ASSERT(clen <= sizeof clean_copy);
        memcpy(clean_copy, clean, clen);
        core_free(clean);
        size_t fl = collapse(low, low_len, flat);
        T_ASSERT_EQ(fl, clen);
        T_ASSERT(memcmp(flat, clean_copy, clen) == 0);
        for (size_t i = 0; i < PL__TOK_FAST_PAD; i++) {
            T_ASSERT_EQ(low[low_len + i], 0); /* the padding the key words read */
        }
        check_classes(low, low_cls, low_len);
        t->fast++;
    } else {
        t->full++;
    }
}

T_CASE(fast_path_matches_full_chain)
{
    pl_tok_t *tok;
    T_ASSERT_OK(pl_tok_load_buffer(vocab, sizeof vocab - 1, &tok));
    core_rng_t rng;
    core_rng_init(&rng, 20261128, 0);
    static char text[MAX_TEXT];
    tally_t t = {0, 0, 0};
    for (int iter = 0; iter < 40000; iter++) {
        /* Half the texts draw no bail atom, so the fast path sees all the others mixed. */
        int clean_only = iter % 2 == 0;
        size_t pool = clean_only ? N_ATOMS - N_BAIL : N_ATOMS;
        size_t n_atoms = 1 + (size_t)core_rng_below(&rng, iter % 10 == 0 ? 60 : 12);
        size_t len = 0;
        for (size_t a = 0; a < n_atoms; a++) {
            const atom_t *at = &atoms[core_rng_below(&rng, pool)];
            /* rarer bail atoms in the mixed half, so some of its texts still go fast */
            if (!clean_only && at >= &atoms[N_ATOMS - N_BAIL] && core_rng_below(&rng, 3) != 0) {
                at = &atoms[core_rng_below(&rng, N_ATOMS - N_BAIL)];
            }
            memcpy(text + len, at->s, at->n);
            len += at->n;
        }
        check_text(tok, text, len, &t);
        if (iter % 7 == 0) {
            check_text(tok, text, len, &t); /* again, through the word cache */
        }
    }
    /* Long texts around the fast path's limit (4096 bytes) and its output room: every character
     * growing from two bytes to three (U+0130, U+023A). */
    static const char *const fill[] = {"\xC4\xB0", "\xC8\xBA", "Ab\xC3\x89 ", "x", "\xE2\x80\x83"};
    for (size_t f = 0; f < sizeof fill / sizeof fill[0]; f++) {
        for (size_t target = 4080; target <= 4110; target += 3) {
            size_t len = 0, fl = strlen(fill[f]);
            while (len + fl <= target) {
                memcpy(text + len, fill[f], fl);
                len += fl;
            }
            check_text(tok, text, len, &t);
        }
    }
    pl_tok_free(tok);
    /* Both paths and the error path must really have run. */
    T_ASSERT(t.fast > 20000);
    T_ASSERT(t.full > 5000);
    T_ASSERT(t.errors > 1000);
}

T_CASE(fast_path_takes_and_hands_over)
{
    static const struct {
        const char *s;
        int fast;
        const char *low; /* the fast path's lowercase, when it takes the text */
    } cases[] = {
        {"Hello World", 1, "hello world"},
        {"Gr\xC3\xBC\xC3\x9F" "E \xF0\x9F\x8E\xA4", 1, "gr\xC3\xBC\xC3\x9F" "e \xF0\x9F\x8E\xA4"},
        {"\xC4\xB0stanbul", 1, "i\xCC\x87stanbul"},
        {"\xC8\xBA", 1, "\xE2\xB1\xA5"},
        {"\xF0\x90\x90\x80", 1, "\xF0\x90\x90\xA8"},
        {"\xC5\xBF\xC2\xA0S", 1, "\xC5\xBF\xC2\xA0s"},
        {"\xCE\xA3\xCE\xB1", 0, NULL},
        {"e\xCC\x81", 0, NULL},
        {"caf\xC3\xA9 & bar", 0, NULL},
        {"ab\xFF", 0, NULL},
        {"\xE0\xA6\x95\xE0\xA6\xBE", 1, "\xE0\xA6\x95\xE0\xA6\xBE"},
        {"\xE0\xA7\x87\xE0\xA6\xBE", 0, NULL},
        {"\xE0\xA6\x95\xE0\xA6\xBE\xE0\xA6\xBE", 1, "\xE0\xA6\x95\xE0\xA6\xBE\xE0\xA6\xBE"},
        {"\xE0\xA6\xBE\xE0\xA6\xBE", 0, NULL},
        {"\xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xB7", 1, "\xE0\xA4\x95\xE0\xA5\x8D\xE0\xA4\xB7"},
        {"\xE0\xB8\x81\xE0\xB9\x88\xE0\xB8\xB8", 0, NULL},
        {"\xE0\xB8\x81\xE0\xB8\xB8\xE0\xB9\x88", 1, "\xE0\xB8\x81\xE0\xB8\xB8\xE0\xB9\x88"},
        {"\xE0\xA6\xA1\xE0\xA6\xBC\xE0\xA6\xBE", 1, "\xE0\xA6\xA1\xE0\xA6\xBC\xE0\xA6\xBE"},
        {"a\xCC\xA3\xCC\x81", 0, NULL},
        {"\xCC\x81", 0, NULL},
        /* ASCII just before a non-ASCII character goes in one word: its lowercase, and a '&'
         * there hands the text over */
        {"ABCDEFG\xC3\x89HIJKLMNOP", 1, "abcdefg\xC3\xA9hijklmnop"},
        {"AB&CD\xC3\xA9" "EFGHIJKL", 0, NULL},
        {"ABCDEF&\xC3\xA9" "EFGHIJKL", 0, NULL},
        /* every class byte: letters mapped to a letter and to a letter plus a mark (U+0130),
         * str.isspace (U+00A0, U+3000), numbers, U+0345 (no class), a four-byte symbol */
        {"\xC7\x84\xC4\xB0x\xC2\xA0\xE3\x80\x80\xD9\xA3\xCD\x85\xF0\x9F\x98\x80\xE4\xB8\xAD", 1,
         "\xC7\x86i\xCC\x87x\xC2\xA0\xE3\x80\x80\xD9\xA3\xCD\x85\xF0\x9F\x98\x80\xE4\xB8\xAD"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t low[64 + PL__TOK_FAST_PAD], cls[64 + PL__TOK_FAST_PAD];
        size_t n = 0, len = strlen(cases[i].s);
        int fast = pl__tok_fast_lower((const uint8_t *)cases[i].s, len, low, cls, 64, &n);
        if (fast != cases[i].fast) {
            T_FAIL("case %zu: fast path %d, want %d", i, fast, cases[i].fast);
        }
        if (fast) {
            T_ASSERT_EQ(n, strlen(cases[i].low));
            T_ASSERT(memcmp(low, cases[i].low, n) == 0);
            check_classes(low, cls, n);
        }
    }
    /* Output that would pass the room given is handed over, not cut. */
    uint8_t low[4 + PL__TOK_FAST_PAD], cls[4 + PL__TOK_FAST_PAD];
    size_t n;
    T_ASSERT_EQ(pl__tok_fast_lower((const uint8_t *)"\xC8\xBA\xC8\xBA", 4, low, cls, 4, &n), 0);
    T_ASSERT_EQ(pl__tok_fast_lower((const uint8_t *)"abcdefgh", 8, low, cls, 4, &n), 0);
    T_ASSERT_EQ(pl__tok_fast_lower((const uint8_t *)"abCD", 4, low, cls, 4, &n), 1);
    T_ASSERT(n == 4 && memcmp(low, "abcd", 4) == 0);
}

T_MAIN()
