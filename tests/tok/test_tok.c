/* Unit tests of the CLIP tokenizer (pipeline/tok): the spec §1.8 vectors, truncation, labels,
 * cleaning (HTML entities, Python lower and whitespace), pre-tokenisation, invalid UTF-8, NUL
 * bytes, linear cost on 100 KiB captions, decode, the vocabulary hash and loader errors, the word
 * cache, and thread safety.
 *
 * Expected values marked "Python" were computed with /usr/bin/python3 (3.11.2, regex 2022.10.31):
 * html.unescape, str.lower, the reference SimpleTokenizer with ftfy replaced by NFC. */
#include <pthread.h>
#include <stdatomic.h>
#include <zlib.h>

#include "core/sha256.h"
#include "tok_internal.h"
#include "tok_util.h"

#define CLIP_HASH "d308b7377a8ceaa9707a21614fe8c831b9196e197b7aeb69833359362907af02"
/* The same file less its last used merge ("jeky ll</w>"): Python hashlib over 48,893 lines. */
#define CLIP_HASH_48893 "3590911408aa327b56002f9b25f0fc79d974cce6c33cc84ca1d05639e8632b56"

typedef struct {
    const char *in;
    size_t in_len;
    const char *out;
    size_t out_len;
} clean_case_t;

typedef struct {
    const char *in;
    size_t len;
    size_t n;
    uint32_t ids[16];
} enc_case_t;

typedef struct {
    const char *in;
    const char *pieces; /* joined by \001 */
} pre_case_t;

/* Python: clean(text) for HTML entity edge cases (html.unescape twice, then the rest). */
static const clean_case_t html_cases[] = {
    {"&amp;", 5, "&", 1},
    {"&amp;amp;", 9, "&", 1},
    {"&amp;amp;amp;", 13, "&amp;", 5},
    {"&lt;b&gt;", 9, "<b>", 3},
    {"&notit;", 7, "\302\254it;", 5},
    {"&notin;", 7, "\342\210\211", 3},
    {"&amp", 4, "&", 1},
    {"&ampx", 5, "&x", 2},
    {"&AMP;", 5, "&", 1},
    {"&#65;", 5, "a", 1},
    {"&#x41;", 6, "a", 1},
    {"&#X41", 5, "a", 1},
    {"&#0;", 4, "\357\277\275", 3},
    {"&#128;", 6, "\342\202\254", 3},
    {"&#x80;", 6, "\342\202\254", 3},
    {"&#x81;", 6, "\302\201", 2},
    {"&#xD800;", 8, "\357\277\275", 3},
    {"&#1114112;", 10, "\357\277\275", 3},
    {"&#11;", 5, "", 0},
    {"&#1;", 4, "", 0},
    {"&#x110000;", 10, "\357\277\275", 3},
    {"&#65", 4, "a", 1},
    {"&#", 2, "&#", 2},
    {"&#x", 3, "&#x", 3},
    {"&#xg;", 5, "&#xg;", 5},
    {"&;", 2, "&;", 2},
    {"& amp;", 6, "& amp;", 6},
    {"&&amp;", 6, "&&", 2},
    {"&xyz&amp;", 9, "&xyz&", 5},
    {"&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;", 42, "&aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;", 42},
    {"&ampbbbbbbbbbbbbbbbbbbbbbbbbbbbbb;", 34, "&bbbbbbbbbbbbbbbbbbbbbbbbbbbbb;", 31},
    {"&ampbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb;", 35, "&bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb;", 32},
    {"x&zwnj;y", 8, "x\342\200\214y", 5},
    {"&nbsp;x&nbsp;", 13, "x", 1},
    {"a&NewLine;b", 11, "a b", 3},
    {"a&#13;b", 7, "a b", 3},
    {"&#x1F600;", 9, "\360\237\230\200", 4},
    {"&#128512;", 9, "\360\237\230\200", 4},
    {"&Aacute;", 8, "\303\241", 2},
    {"&#0000065;", 10, "a", 1},
    {"&#99999999999999999999999999999999999999999999999999;", 53, "\357\277\275", 3},
    {"&amp;#65;", 9, "a", 1},
    {"&fjlig;", 7, "fj", 2},
    {"a&ThickSpace;b", 14, "a b", 3},
    {"&acE;", 5, "\342\210\276\314\263", 5},
    {"&lt", 3, "<", 1},
    {"&LTx", 4, "<x", 2},
    {"&copy2024", 9, "\302\2512024", 6},
    {"&cop", 4, "&cop", 4},
    {"e&#769;", 7, "e\314\201", 3},
    {"e\314\201", 3, "\303\251", 2},
    {"&#xfdd0;x", 9, "x", 1},
    {"&#x10FFFF;", 10, "", 0},
    {"&#xFFFE;", 8, "", 0},
    {"&#x9F;", 6, "\303\277", 2},
    {"&#159;", 6, "\303\277", 2},
    {"&#xDFFF;", 8, "\357\277\275", 3},
    {"&am\303\251;", 6, "&am\303\251;", 6},
    {"&\303\251amp;", 7, "&\303\251amp;", 7},
    {"&amp\303\251", 6, "&\303\251", 3},
    {"&#38;amp;", 9, "&", 1},
    {"&#x26;lt;", 9, "<", 1},
    {"&amp;&amp;lt;", 13, "&<", 2},
    {"&Sigma;&Sigma;", 14, "\317\203\317\202", 4},
    {"&#931;", 6, "\317\203", 2},
    {"&#x130;", 7, "i\314\207", 3},
    {"&#x1c;a", 7, "a", 1},
    {"&#28;a&#x1f;", 12, "a", 1},
    {"&#x2028;", 8, "", 0},
    {"&#12288;", 8, "", 0},
    {"&#65;&#66", 9, "ab", 2},
    {"&#x41;&#x;", 10, "a&#x;", 5},
    {"a&b", 3, "a&b", 3},
    {"&&&", 3, "&&&", 3},
    {"&#;", 3, "&#;", 3},
    {"&lt;&lt;", 8, "<<", 2},
    {"&GT", 3, ">", 1},
    {"&gt;&gt", 7, ">>", 2},
    {"&Aacute", 7, "\303\241", 2},
    {"&aacute", 7, "\303\241", 2},
    {"&Aacutex", 8, "\303\241x", 3},
    {"&frac12;", 8, "\302\275", 2},
    {"&frac12", 7, "\302\275", 2},
    {"&frac1", 6, "&frac1", 6},
    {"&#x0;", 5, "\357\277\275", 3},
    {"&#9;x&#10;", 10, "x", 1},
    {"&#x0c;", 6, "", 0},
    {"&#12;", 5, "", 0},
    {"&\000amp;", 6, "&\000amp;", 6},
    {"&am\000p;", 6, "&am\000p;", 6},
};

/* Python: clean(text) for lowercase (U+0130, final sigma) and whitespace cases. */
static const clean_case_t lower_cases[] = {
    {"\304\260stanbul", 9, "i\314\207stanbul", 10},
    {"\316\243\316\237\316\246\316\237\316\243", 10, "\317\203\316\277\317\206\316\277\317\202", 10},
    {"\316\243", 2, "\317\203", 2},
    {"A\316\243", 3, "a\317\202", 3},
    {"A\316\243B", 4, "a\317\203b", 4},
    {"A'\316\243", 4, "a'\317\202", 4},
    {"A\316\243'", 4, "a\317\202'", 4},
    {"A\316\243'B", 5, "a\317\203'b", 5},
    {"\316\221\316\243 \316\222", 7, "\316\261\317\202 \316\262", 7},
    {"1\316\243", 3, "1\317\203", 3},
    {"A\315\205\316\243", 5, "a\315\205\317\202", 5},
    {"\316\243\316\243", 4, "\317\203\317\202", 4},
    {"A\302\255\316\243\302\255", 7, "a\302\255\317\202\302\255", 7},
    {"\341\264\254\316\243", 5, "\341\264\254\317\203", 5},
    {"\312\260\316\243", 4, "\312\260\317\203", 4},
    {"A\316\243\314\201", 5, "a\317\202\314\201", 5},
    {"A.\316\243", 4, "a.\317\202", 4},
    {"A:\316\243b", 5, "a:\317\203b", 5},
    {"\304\260\304\260", 4, "i\314\207i\314\207", 6},
    {"STRASSE stra\303\237e", 15, "strasse stra\303\237e", 15},
    {"\341\272\236", 3, "\303\237", 2},
    {"\342\204\252\342\204\253", 6, "k\303\245", 3},
    {"\342\204\246", 3, "\317\211", 2},
    {"\303\205 A\314\212", 6, "\303\245 \303\245", 5},
    {"\341\276\210", 3, "\341\276\200", 3},
    {"\307\205\307\204", 4, "\307\206\307\206", 4},
    {"\342\205\240\342\205\241", 6, "\342\205\260\342\205\261", 6},
    {"\342\222\266", 3, "\342\223\220", 3},
    {"\357\254\201", 3, "\357\254\201", 3},
    {"\357\274\241\357\274\242", 6, "\357\275\201\357\275\202", 6},
    {"  \343\200\200lead\342\200\203and\302\240trail\302\205 ", 25, "lead and trail", 14},
    {"a\034b\037c", 5, "a b c", 5},
    {"a\013b\014c\015d", 7, "a b c d", 7},
    {"\342\200\213zero\342\200\213", 10, "\342\200\213zero\342\200\213", 10},
    {"\342\200\250x\342\200\251", 7, "x", 1},
};

/* Python: SimpleTokenizer.encode(text) (NUL bytes, specials, IGNORECASE, U+0345, new marks). */
static const enc_case_t enc_cases[] = {
    {"a\000b", 3, 3, {320, 444, 321}},
    {"\000", 1, 1, {444}},
    {"<start_of_text>", 15, 1, {49406}},
    {"<START_OF_TEXT>x", 16, 2, {49406, 343}},
    {"<\305\277tart_of_text>", 16, 9, {27, 129, 123, 16707, 62, 684, 62, 18169, 285}},
    {"<end_of_text><end_of_text>", 26, 2, {49407, 49407}},
    {"'\305\277", 3, 3, {6, 129, 379}},
    {"it'\305\277", 5, 4, {585, 6, 129, 379}},
    {"a\315\205b", 4, 2, {320, 321}},
    {"\315\205", 2, 0, {0}},
    {"ab\315\205", 4, 1, {3937}},
    {"!\315\205!", 4, 2, {256, 256}},
    {"x<start_of_text", 15, 7, {343, 283, 1572, 318, 539, 318, 4160}},
    {"!<start_of_text>", 16, 8, {0, 283, 1572, 318, 539, 318, 4160, 285}},
    {"''s x", 5, 3, {8445, 338, 343}},
    {"don'T", 5, 2, {847, 713}},
    {"\304\260", 2, 2, {328, 16384}},
    {"\341\272\236\303\237", 5, 4, {127, 253, 127, 509}},
    {"\360\237\230\200\360\237\230\200", 8, 1, {34503}},
    {"\360\220\273\275", 4, 4, {172, 238, 119, 377}},
    {"a\360\221\275\201\314\201", 7, 7, {320, 172, 239, 121, 223, 136, 479}},
    {"\314\201\314\201a", 5, 5, {136, 223, 136, 479, 320}},
    {"\357\277\275", 3, 1, {39802}},
    {"\302\255", 2, 1, {22618}},
    {"\331\241\331\242", 4, 4, {149, 350, 149, 351}},
    {"\302\275", 2, 1, {33613}},
    {"\342\205\240", 3, 3, {158, 227, 364}},
    {"\360\235\237\230", 4, 3, {6874, 253, 502}},
    {"_\342\200\277_", 5, 4, {62, 728, 123, 318}},
    {"a_b", 3, 3, {320, 318, 321}},
    {"a-b", 3, 3, {320, 268, 321}},
    {"x\342\200\231s", 5, 4, {343, 728, 503, 338}},
    {"I'M", 3, 2, {328, 880}},
    {"'LL", 3, 1, {1342}},
    {"'re'VE'd", 8, 3, {982, 1200, 1896}},
    {"''", 2, 1, {8445}},
    {"'", 1, 1, {262}},
    {"<", 1, 1, {283}},
    {"<>", 2, 2, {27, 285}},
    {"\302\240", 2, 0, {0}},
    {"\011", 1, 0, {0}},
    {"\343\202\242\343\203\274\343\203\210", 9, 3, {26560, 18584, 486}},
    {"\340\244\225\340\244\277", 6, 2, {22067, 26721}},
    {"\327\220\326\270", 4, 4, {147, 494, 146, 372}},
    {"\363\240\201\201", 4, 4, {175, 254, 223, 479}},
    {"\364\217\277\277", 4, 4, {176, 237, 123, 379}},
    {"\356\200\200", 3, 2, {36288, 478}},
    {"\341\205\240\341\206\250", 6, 6, {157, 227, 254, 157, 228, 357}},
    {"\355\225\234\352\270\200", 6, 4, {15197, 250, 32495, 478}},
    {"\341\204\200\341\205\241\341\206\250", 9, 2, {21122, 479}},
};

/* Python: regex.findall(pattern, text) on raw (uncleaned) text. */
static const pre_case_t pre_cases[] = {
    {"''s x", "''\001s\001x"},
    {"<START_OF_TEXT>x", "<START_OF_TEXT>\001x"},
    {"<\305\277tart_of_text>", "<\305\277tart_of_text>"},
    {"a\315\205b", "a\001b"},
    {"don't", "don\001't"},
    {"2024", "2\0010\0012\0014"},
    {"'\305\277", "'\305\277"},
    {"'S", "'S"},
    {"hello, world!!  ok", "hello\001,\001world\001!!\001ok"},
    {"\302\275\302\275", "\302\275\001\302\275"},
    {"a1b", "a\0011\001b"},
    {"'ll'", "'ll\001'"},
    {"<end_of_text", "<\001end\001_\001of\001_\001text"},
    {"x'", "x\001'"},
    {"\343\200\200a", "a"},
    {"a\034b", "a\001\034\001b"},
};

static void assert_ids(const uint32_t *got, size_t n_got, const uint32_t *want, size_t n_want,
                       const char *what)
{
    int ok = n_got == n_want;
    for (size_t i = 0; ok && i < n_got; i++) {
        ok = got[i] == want[i];
    }
    if (!ok) {
        fprintf(stderr, "%s\n  want:", what);
        for (size_t i = 0; i < n_want; i++) {
            fprintf(stderr, " %u", want[i]);
        }
        fprintf(stderr, "\n  got: ");
        for (size_t i = 0; i < n_got; i++) {
            fprintf(stderr, " %u", got[i]);
        }
        fprintf(stderr, "\n");
        T_FAIL("ids differ for %s", what);
    }
}

#define IDS(...) ((const uint32_t[]){__VA_ARGS__}), sizeof((const uint32_t[]){__VA_ARGS__}) / 4

static void check_enc(const pl_tok_t *tok, const char *text, const uint32_t *want, size_t n_want)
{
    uint32_t ids[128];
    size_t n = tok_enc(tok, text, ids, 128);
    assert_ids(ids, n, want, n_want, text);
}

/* The decompressed CLIP merges file (core_malloc'd). */
static char *clip_plain(size_t *len)
{
    gzFile f = gzopen(t_shared(TOK_CLIP_PATH), "rb");
    T_ASSERT(f != NULL);
    size_t cap = 4 << 20, n = 0;
    char *buf = core_malloc_or_die(cap);
    int got;
    while ((got = gzread(f, buf + n, (unsigned)(cap - n))) > 0) {
        n += (size_t)got;
        T_ASSERT(n < cap);
    }
    T_ASSERT(got == 0);
    gzclose(f);
    *len = n;
    return buf;
}

/* gzip-compresses a buffer (core_malloc'd result). */
static uint8_t *gzip_buf(const void *in, size_t len, size_t *out_len)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    T_ASSERT(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&zs, (uLong)len) + 64;
    uint8_t *out = core_malloc_or_die(cap);
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    T_ASSERT(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    *out_len = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

static int load_str(const char *s, pl_tok_t **out)
{
    return pl_tok_load_buffer(s, strlen(s), out);
}

/* --- spec vectors --- */

T_CASE(spec_vectors)
{
    pl_tok_t *tok = tok_clip();
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 49408);
    T_ASSERT_EQ(pl_tok_n_merges(tok), 48894);
    T_ASSERT_EQ(pl_tok_sot(tok), 49406);
    T_ASSERT_EQ(pl_tok_eot(tok), 49407);
    check_enc(tok, "a photo of a cat", IDS(320, 1125, 539, 320, 2368));
    check_enc(tok, "A Photo of a CAT!!", IDS(320, 1125, 539, 320, 2368, 748));
    check_enc(tok, "Hello, world! It's 2024 &amp; I'm here.",
              IDS(3306, 267, 1002, 256, 585, 568, 273, 271, 273, 275, 261, 328, 880, 763, 269));
    check_enc(tok, "  multiple   spaces\tand\nnewlines ", IDS(6470, 9006, 537, 1218, 3418));
    check_enc(tok, "don't stop believin'", IDS(847, 713, 1691, 4972, 530, 262));
    check_enc(tok, "supercalifragilisticexpialidocious",
              IDS(1642, 2857, 13093, 2076, 5868, 26850, 835, 639, 38466));
    check_enc(tok, "i'll go", IDS(328, 1342, 861));
    check_enc(tok, "a dog", IDS(320, 1929));
    check_enc(tok, "''s x", IDS(8445, 338, 343));
    size_t n = 99;
    T_ASSERT_OK(pl_tok_encode(tok, "", 0, NULL, 0, &n));
    T_ASSERT_EQ(n, 0);
    uint32_t row[PL_TOK_CONTEXT];
    int trunc = -1;
    size_t used = 0;
    T_ASSERT_OK(pl_tok_row(tok, "", 0, row, &trunc, &used));
    T_ASSERT_EQ(trunc, 0);
    T_ASSERT_EQ(used, 2);
    T_ASSERT_EQ(row[0], 49406);
    T_ASSERT_EQ(row[1], 49407);
    for (size_t i = 2; i < PL_TOK_CONTEXT; i++) {
        T_ASSERT_EQ(row[i], 0);
    }
    pl_tok_free(tok);
}

T_CASE(symbols)
{
    pl_tok_t *tok = tok_clip();
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 0), "!");
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 93), "~");
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 220), "\304\240"); /* U+0120 for the space byte */
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 256), "!</w>");
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 512), "in");
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 2368), "cat</w>");
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 49405), "jekyll</w>");
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 49406), "<start_of_text>");
    T_ASSERT_STR_EQ(pl_tok_symbol(tok, 49407), "<end_of_text>");
    T_ASSERT(pl_tok_symbol(tok, 49408) == NULL);
    pl_tok_free(tok);
}

T_CASE(encode_cap_and_count)
{
    pl_tok_t *tok = tok_clip();
    uint32_t ids[4] = {7, 7, 7, 7};
    size_t n;
    const char *t = "a photo of a cat";
    T_ASSERT_OK(pl_tok_encode(tok, t, strlen(t), ids, 2, &n));
    T_ASSERT_EQ(n, 5);
    T_ASSERT_EQ(ids[0], 320);
    T_ASSERT_EQ(ids[1], 1125);
    T_ASSERT_EQ(ids[2], 7); /* nothing past cap */
    pl_tok_free(tok);
}

T_CASE(truncation_60_words)
{
    pl_tok_t *tok = tok_clip();
    char text[1024];
    size_t o = 0;
    for (int i = 0; i < 60; i++) {
        o += (size_t)snprintf(text + o, sizeof text - o, "%sword%d", i ? " " : "", i);
    }
    size_t n;
    T_ASSERT_OK(pl_tok_encode(tok, text, o, NULL, 0, &n));
    T_ASSERT_EQ(n, 170);
    uint32_t row[PL_TOK_CONTEXT];
    int trunc = 0;
    size_t used = 0;
    T_ASSERT_OK(pl_tok_row(tok, text, o, row, &trunc, &used));
    T_ASSERT_EQ(trunc, 1);
    T_ASSERT_EQ(used, 77);
    T_ASSERT_EQ(row[0], 49406);
    T_ASSERT_EQ(row[1], 2653);
    T_ASSERT_EQ(row[2], 271);
    T_ASSERT_EQ(row[74], 278);
    T_ASSERT_EQ(row[75], 2653);
    T_ASSERT_EQ(row[76], 49407);
    /* The row is the first 75 ids of encode() between SOT and EOT. */
    uint32_t all[170];
    T_ASSERT_OK(pl_tok_encode(tok, text, o, all, 170, &n));
    T_ASSERT(memcmp(row + 1, all, 75 * sizeof *row) == 0);
    /* Exactly 75 ids fit without truncation; 76 truncate. */
    char t75[256];
    o = 0;
    for (int i = 0; i < 75; i++) {
        o += (size_t)snprintf(t75 + o, sizeof t75 - o, "%sa", i ? " " : "");
    }
    T_ASSERT_OK(pl_tok_row(tok, t75, o, row, &trunc, &used));
    T_ASSERT_EQ(trunc, 0);
    T_ASSERT_EQ(used, 77);
    T_ASSERT_EQ(row[75], 320);
    T_ASSERT_EQ(row[76], 49407);
    o += (size_t)snprintf(t75 + o, sizeof t75 - o, " a");
    T_ASSERT_OK(pl_tok_row(tok, t75, o, row, &trunc, &used));
    T_ASSERT_EQ(trunc, 1);
    T_ASSERT_EQ(row[75], 320);
    T_ASSERT_EQ(row[76], 49407);
    pl_tok_free(tok);
}

static size_t label_of(const pl_tok_t *tok, const char *text, uint32_t label[PL_TOK_CONTEXT])
{
    uint32_t row[PL_TOK_CONTEXT];
    size_t n;
    T_ASSERT_OK(pl_tok_row(tok, text, strlen(text), row, NULL, NULL));
    pl_tok_label(row, label, &n);
    return n;
}

T_CASE(labels)
{
    pl_tok_t *tok = tok_clip();
    uint32_t label[PL_TOK_CONTEXT];
    /* spec §2.5 */
    size_t n = label_of(tok, "a photo of a cat", label);
    assert_ids(label, n, IDS(0, 320, 539, 1125, 2368, 49406, 49407), "label a photo of a cat");
    n = label_of(tok, "a dog", label);
    assert_ids(label, n, IDS(0, 320, 1929, 49406, 49407), "label a dog");
    n = label_of(tok, "", label);
    assert_ids(label, n, IDS(0, 49406, 49407), "label of empty");
    /* Duplicates collapse; the real token "!" (id 0, non-final) and pad are the same id. */
    n = label_of(tok, "a a a a", label);
    assert_ids(label, n, IDS(0, 320, 49406, 49407), "label a a a a");
    /* A truncated row has no padding, so no 0 unless the text has it. */
    char text[1024];
    size_t o = 0;
    for (int i = 0; i < 60; i++) {
        o += (size_t)snprintf(text + o, sizeof text - o, "%sword%d", i ? " " : "", i);
    }
    n = label_of(tok, text, label);
    T_ASSERT(n >= 3);
    T_ASSERT(label[0] != 0);
    for (size_t i = 1; i < n; i++) {
        T_ASSERT(label[i - 1] < label[i]);
    }
    T_ASSERT_EQ(label[n - 2], 49406);
    T_ASSERT_EQ(label[n - 1], 49407);
    uint32_t row[PL_TOK_CONTEXT];
    T_ASSERT_OK(pl_tok_row(tok, text, o, row, NULL, NULL));
    for (size_t i = 0; i < PL_TOK_CONTEXT; i++) {
        int found = 0;
        for (size_t k = 0; k < n; k++) {
            found |= label[k] == row[i];
        }
        T_ASSERT(found);
    }
    pl_tok_free(tok);
}

/* --- cleaning --- */

static void check_clean(const clean_case_t *c)
{
    char *out;
    size_t len;
    T_ASSERT_OK(pl_tok_clean(c->in, c->in_len, &out, &len));
    if (len != c->out_len || memcmp(out, c->out, len) != 0 || out[len] != '\0') {
        T_FAIL("clean(\"%s\") = \"%s\" (%zu bytes), Python gives \"%s\" (%zu bytes)", c->in, out,
               len, c->out, c->out_len);
    }
    core_free(out);
}

T_CASE(clean_html)
{
    for (size_t i = 0; i < sizeof html_cases / sizeof html_cases[0]; i++) {
        check_clean(&html_cases[i]);
    }
}

T_CASE(clean_lower_sigma_whitespace)
{
    for (size_t i = 0; i < sizeof lower_cases / sizeof lower_cases[0]; i++) {
        check_clean(&lower_cases[i]);
    }
}

T_CASE(unicode_tables_match_utf8proc)
{
    /* unicode_tables.inc records the differences between utf8proc and the reference for one
     * utf8proc version; with another, regenerate it (gen_unicode_tables.py). */
    if (pl__uni_check_version() != 0) {
        T_FAIL("utf8proc has Unicode %s, tables expect %s: run "
               "/usr/bin/python3 pipeline/tok/gen_unicode_tables.py",
               pl__uni_utf8proc_version(), pl__uni_expected_version());
    }
}

/* --- pre-tokenisation and encode edge cases --- */

typedef struct {
    char buf[512];
    size_t len;
} join_t;

static int join_cb(void *ud, const char *piece, size_t len)
{
    join_t *j = ud;
    if (j->len > 0) {
        j->buf[j->len++] = '\001';
    }
    T_ASSERT(j->len + len < sizeof j->buf);
    memcpy(j->buf + j->len, piece, len);
    j->len += len;
    return 0;
}

T_CASE(pretokenize)
{
    for (size_t i = 0; i < sizeof pre_cases / sizeof pre_cases[0]; i++) {
        join_t j = {.len = 0};
        T_ASSERT_OK(pl_tok_pretokenize(pre_cases[i].in, strlen(pre_cases[i].in), join_cb, &j));
        j.buf[j.len] = '\0';
        T_ASSERT_STR_EQ(j.buf, pre_cases[i].pieces);
    }
}

static int stop_cb(void *ud, const char *piece, size_t len)
{
    (void)piece;
    (void)len;
    return ++*(int *)ud == 2 ? 42 : 0;
}

T_CASE(pretokenize_stop)
{
    int calls = 0;
    T_ASSERT_EQ(pl_tok_pretokenize("a b c d", 7, stop_cb, &calls), 42);
    T_ASSERT_EQ(calls, 2);
}

T_CASE(encode_edge_cases)
{
    pl_tok_t *tok = tok_clip();
    for (size_t i = 0; i < sizeof enc_cases / sizeof enc_cases[0]; i++) {
        const enc_case_t *c = &enc_cases[i];
        uint32_t ids[64];
        size_t n;
        T_ASSERT_OK(pl_tok_encode(tok, c->in, c->len, ids, 64, &n));
        assert_ids(ids, n, c->ids, c->n, c->in);
    }
    pl_tok_free(tok);
}

T_CASE(nul_bytes)
{
    pl_tok_t *tok = tok_clip();
    /* "a\0b": three pieces, the NUL byte is the symbol U+0100 + </w> (id 444); Python agrees. */
    uint32_t ids[8];
    size_t n;
    T_ASSERT_OK(pl_tok_encode(tok, "a\0b", 3, ids, 8, &n));
    assert_ids(ids, n, IDS(320, 444, 321), "a NUL b");
    char *c;
    size_t cl;
    T_ASSERT_OK(pl_tok_clean("X\0Y", 3, &c, &cl));
    T_ASSERT_EQ(cl, 3);
    T_ASSERT(memcmp(c, "x\0y", 3) == 0);
    core_free(c);
    pl_tok_free(tok);
}

T_CASE(invalid_utf8)
{
    pl_tok_t *tok = tok_clip();
    static const char *const bad[] = {
        "\xff", "a\xc3", "\xed\xa0\x80", "\xc0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "\x80",
        "\xf8\x88\x80\x80\x80", "ok \xe0\x80\xaf", "&amp;\xc3\x28", "\xef\xbf",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint32_t ids[8] = {0};
        size_t n = 99;
        T_ASSERT_ERR(pl_tok_encode(tok, bad[i], strlen(bad[i]), ids, 8, &n), CORE_EBAD_UTF8);
        T_ASSERT_EQ(n, 0);
        T_ASSERT_EQ(ids[0], 0);
        uint32_t row[PL_TOK_CONTEXT];
        T_ASSERT_ERR(pl_tok_row(tok, bad[i], strlen(bad[i]), row, NULL, NULL), CORE_EBAD_UTF8);
        char *c;
        size_t cl;
        T_ASSERT_ERR(pl_tok_clean(bad[i], strlen(bad[i]), &c, &cl), CORE_EBAD_UTF8);
        join_t j = {.len = 0};
        T_ASSERT_ERR(pl_tok_pretokenize(bad[i], strlen(bad[i]), join_cb, &j), CORE_EBAD_UTF8);
    }
    pl_tok_free(tok);
}

/* --- cost --- */

typedef void (*gen_fn)(char *buf, size_t n);

static void gen_one_word(char *b, size_t n)
{
    memset(b, 'x', n);
}

static void gen_words(char *b, size_t n)
{
    static const char *w[] = {"photo ", "of ", "a ", "cat ", "sitting ", "on ", "supercalifragilistic "};
    size_t o = 0, k = 0;
    while (o < n) {
        size_t l = strlen(w[k % 7]);
        for (size_t i = 0; i < l && o < n; i++) {
            b[o++] = w[k % 7][i];
        }
        k = k * 7 + 3;
    }
}

static void gen_entities(char *b, size_t n)
{
    /* '&' followed by 31 letters: the longest-prefix search runs for every one. */
    for (size_t i = 0; i < n; i++) {
        b[i] = i % 33 == 0 ? '&' : i % 33 == 32 ? ' ' : 'b';
    }
}

static void gen_amps(char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        b[i] = "&amp;amp;"[i % 9];
    }
}

static void gen_cjk(char *b, size_t n)
{
    for (size_t i = 0; i + 3 <= n; i += 3) {
        memcpy(b + i, (i / 3) % 5 ? "\347\214\253" : "\346\262\231", 3);
    }
    for (size_t i = n / 3 * 3; i < n; i++) {
        b[i] = 'a';
    }
}

static void gen_punct(char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        b[i] = "!?.,;:-=+*"[(i * 7 + i / 3) % 10];
    }
}

static void gen_sigma(char *b, size_t n)
{
    /* Capital sigmas among soft hyphens (case-ignorable): every sigma scans its neighbours. */
    size_t o = 0;
    while (o + 2 <= n) {
        memcpy(b + o, o % 20 == 0 ? "\316\243" : "\302\255", 2);
        o += 2;
    }
    for (; o < n; o++) {
        b[o] = 'a';
    }
}

static uint64_t work_of(const pl_tok_t *tok, gen_fn gen, size_t n, int row)
{
    char *b = core_malloc_or_die(n);
    gen(b, n);
    uint64_t before = pl__tok_work;
    if (row) {
        uint32_t r[PL_TOK_CONTEXT];
        T_ASSERT_OK(pl_tok_row(tok, b, n, r, NULL, NULL));
    } else {
        size_t cnt;
        T_ASSERT_OK(pl_tok_encode(tok, b, n, NULL, 0, &cnt));
        T_ASSERT(cnt > 0);
    }
    core_free(b);
    return pl__tok_work - before;
}

T_CASE(cost_linear_100k)
{
    /* Counts work (merge-table probes, heap steps, entity lookups, code points), not time, so the
     * test cannot be flaky: doubling a 100 KiB caption must not more than ~double the work. */
    pl_tok_t *tok = tok_clip();
    T_ASSERT_OK(pl_tok_set_cache(tok, 0)); /* measure the BPE itself */
    gen_fn gens[] = {gen_one_word, gen_words, gen_entities, gen_amps, gen_cjk, gen_punct, gen_sigma};
    const char *names[] = {"one word", "words", "entities", "amps", "cjk", "punct", "sigma"};
    for (size_t g = 0; g < sizeof gens / sizeof gens[0]; g++) {
        for (int row = 0; row < 2; row++) {
            uint64_t w1 = work_of(tok, gens[g], 100 << 10, row);
            uint64_t w2 = work_of(tok, gens[g], 200 << 10, row);
            fprintf(stderr, "%-9s %-6s 100 KiB: %llu  200 KiB: %llu  ratio %.2f\n", names[g],
                    row ? "row" : "encode", (unsigned long long)w1, (unsigned long long)w2,
                    (double)w2 / (double)w1);
            T_ASSERT(w1 > 0);
            T_ASSERT(w2 <= w1 * 5 / 2);
        }
    }
    pl_tok_free(tok);
}

T_CASE(bpe_short_and_long_agree)
{
    /* Three implementations of one BPE: the short-word loop on the trained tables (what encode
     * uses for CLIP), the same loop on the general table, and the heap rounds. */
    pl_tok_t *tok = tok_clip();
    T_ASSERT_EQ(tok->trained, 1);
    uint64_t s = 12345;
    const char *alpha = "aeinorstlh\304\260!.";
    size_t na = strlen(alpha);
    for (int it = 0; it < 3000; it++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        size_t n = 2 + (size_t)(s >> 33) % (PL__TOK_SHORT_WORD - 1);
        uint32_t a[PL__TOK_SHORT_WORD], b[PL__TOK_SHORT_WORD], c[PL__TOK_SHORT_WORD];
        for (size_t i = 0; i < n; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint8_t byte = it % 3 == 0 ? (uint8_t)(s >> 40) : (uint8_t)alpha[(s >> 40) % na];
            a[i] = i + 1 < n ? tok->byte_id[byte] : tok->byte_id_w[byte];
        }
        memcpy(b, a, sizeof a);
        memcpy(c, a, sizeof a);
        size_t na_out, nb_out, nc_out;
        T_ASSERT_OK(pl__tok_bpe(tok, a, n, &na_out, PL__TOK_BPE_AUTO));
        T_ASSERT_OK(pl__tok_bpe(tok, b, n, &nb_out, PL__TOK_BPE_HEAP));
        T_ASSERT_OK(pl__tok_bpe(tok, c, n, &nc_out, PL__TOK_BPE_GENERAL));
        assert_ids(a, na_out, b, nb_out, "short (trained tables) vs heap BPE");
        assert_ids(c, nc_out, b, nb_out, "short (general table) vs heap BPE");
    }
    pl_tok_free(tok);
}

T_CASE(trained_tables_match_the_merge_table)
{
    /* Every merge answers the same from both tables, and so do pairs that are not merges:
     * every pair of base symbols, and each merge with its operands swapped or shifted. */
    pl_tok_t *tok = tok_clip();
    T_ASSERT_EQ(tok->trained, 1);
    T_ASSERT(tok->brank != NULL && tok->rtab != NULL);
    size_t merges = 0, others = 0;
    for (uint64_t i = 0; i <= tok->mmask; i++) {
        const pl__merge_slot_t *sl = &tok->mtab[i];
        if (sl->key == UINT64_MAX) {
            continue;
        }
        uint32_t a = (uint32_t)(sl->key >> 32), b = (uint32_t)sl->key;
        uint32_t probe[3][2] = {{a, b}, {b, a}, {a, b + 1}};
        for (int k = 0; k < 3; k++) {
            uint32_t x = probe[k][0], y = probe[k][1], id1 = 0, id2 = 0;
            uint32_t r1 = pl__tok_merge_find(tok, x, y, &id1);
            uint32_t r2 = pl__tok_merge_find_trained(tok, x, y, &id2);
            T_ASSERT_EQ(r1, r2);
            if (r1 != PL__TOK_NONE) {
                T_ASSERT_EQ(id1, id2);
            }
            merges += k == 0;
            others += k != 0 && r1 == PL__TOK_NONE;
        }
    }
    T_ASSERT_EQ(merges, 48894);
    T_ASSERT(others > 90000);
    for (uint32_t a = 0; a < 512; a++) {
        for (uint32_t b = 0; b < 512; b++) {
            uint32_t id1 = 0, id2 = 0;
            uint32_t r1 = pl__tok_merge_find(tok, a, b, &id1);
            T_ASSERT_EQ(r1, pl__tok_merge_find_trained(tok, a, b, &id2));
        }
    }
    pl_tok_free(tok);
}

T_CASE(untrained_shape_uses_the_general_table)
{
    /* A repeated pair (its first rank makes no id), or a merge whose result is not id 512 + rank,
     * keeps the short-word loop on the general table; results stay the reference's. */
    const char *files[] = {"#h\na b</w>\na b</w>\n", "#h\na b\nb c</w>\na bc</w>\nab c</w>\n"};
    for (size_t f = 0; f < 2; f++) {
        pl_tok_t *tok;
        T_ASSERT_OK(load_str(files[f], &tok));
        T_ASSERT_EQ(tok->trained, 0);
        T_ASSERT(tok->brank == NULL && tok->rtab == NULL);
        uint32_t ids[4];
        size_t n;
        T_ASSERT_OK(pl_tok_encode(tok, "abc", 3, ids, 4, &n));
        T_ASSERT(n >= 1);
        pl_tok_free(tok);
    }
    pl_tok_t *tok;
    T_ASSERT_OK(load_str("#h\na b\nb c</w>\na bc</w>\n", &tok));
    T_ASSERT_EQ(tok->trained, 1); /* the same without the second way to make "abc</w>" */
    pl_tok_free(tok);
}

/* --- decode --- */

static char *decode_str(const pl_tok_t *tok, const uint32_t *ids, size_t n, size_t *len)
{
    size_t need;
    char probe[1];
    T_ASSERT_OK(pl_tok_decode(tok, ids, n, probe, sizeof probe, &need));
    char *out = core_malloc_or_die(need + 1);
    T_ASSERT_OK(pl_tok_decode(tok, ids, n, out, need + 1, len));
    T_ASSERT_EQ(*len, need);
    return out;
}

T_CASE(decode_basic)
{
    pl_tok_t *tok = tok_clip();
    size_t len;
    char *s = decode_str(tok, IDS(320, 1125, 539, 320, 2368), &len);
    T_ASSERT_STR_EQ(s, "a photo of a cat");
    core_free(s);
    s = decode_str(tok, IDS(49406, 320, 49407), &len);
    T_ASSERT_STR_EQ(s, "<start_of_text>a <end_of_text>");
    core_free(s);
    /* A lone 0xC3 byte then "a": Python's errors="replace" gives U+FFFD "a". */
    s = decode_str(tok, IDS(127, 320), &len);
    T_ASSERT_STR_EQ(s, "\357\277\275a");
    core_free(s);
    /* 0xE2 0x82 then "a": one U+FFFD for the maximal subpart. */
    s = decode_str(tok, IDS(tok->byte_id[0xE2], tok->byte_id[0x82], 320), &len);
    T_ASSERT_STR_EQ(s, "\357\277\275a");
    core_free(s);
    s = decode_str(tok, NULL, 0, &len);
    T_ASSERT_STR_EQ(s, "");
    core_free(s);
    char small[5];
    T_ASSERT_OK(pl_tok_decode(tok, IDS(320, 1125), small, sizeof small, &len));
    T_ASSERT_EQ(len, 7);
    T_ASSERT_STR_EQ(small, "a ph");
    T_ASSERT_ERR(pl_tok_decode(tok, IDS(320, 49408), small, sizeof small, &len), CORE_ENOT_FOUND);
    pl_tok_free(tok);
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static int rt_cb(void *ud, const char *piece, size_t len)
{
    sbuf_t *b = ud;
    T_ASSERT(b->len + len + 1 < b->cap);
    memcpy(b->buf + b->len, piece, len);
    b->len += len;
    int special = (len == 15 && memcmp(piece, "<start_of_text>", 15) == 0) ||
                  (len == 13 && memcmp(piece, "<end_of_text>", 13) == 0);
    if (!special) {
        b->buf[b->len++] = ' ';
    }
    return 0;
}

T_CASE(decode_round_trip_golden)
{
    /* decode(encode(t)) is the pre-tokens of clean(t), each followed by a space (special tokens
     * are not), less the final space. */
    pl_tok_t *tok = tok_clip();
    tok_golden_row_t *rows;
    size_t n = tok_golden_load(&rows);
    uint32_t *ids = core_malloc_or_die(1 << 20);
    for (size_t i = 0; i < n; i++) {
        size_t k;
        T_ASSERT_OK(pl_tok_encode(tok, rows[i].text, rows[i].len, ids, 1 << 18, &k));
        T_ASSERT(k <= 1 << 18);
        size_t dl;
        char *d = decode_str(tok, ids, k, &dl);
        char *c;
        size_t cl;
        T_ASSERT_OK(pl_tok_clean(rows[i].text, rows[i].len, &c, &cl));
        sbuf_t want = {core_malloc_or_die(2 * cl + 2), 0, 2 * cl + 2};
        T_ASSERT_OK(pl_tok_pretokenize(c, cl, rt_cb, &want));
        if (want.len > 0 && want.buf[want.len - 1] == ' ') {
            want.len--;
        }
        if (dl != want.len || memcmp(d, want.buf, dl) != 0) {
            T_FAIL("golden.tsv:%zu: decode gives \"%s\", want \"%.*s\"", rows[i].lineno, d,
                   (int)want.len, want.buf);
        }
        core_free(want.buf);
        core_free(c);
        core_free(d);
    }
    core_free(ids);
    tok_golden_free(rows, n);
    pl_tok_free(tok);
}

/* --- vocabulary file --- */

T_CASE(hash_clip)
{
    pl_tok_t *tok = tok_clip();
    T_ASSERT_STR_EQ(pl_tok_hash(tok), CLIP_HASH);
    /* The same merges uncompressed give the same vocabulary. */
    size_t len;
    char *plain = clip_plain(&len);
    pl_tok_t *t2;
    T_ASSERT_OK(pl_tok_load_buffer(plain, len, &t2));
    T_ASSERT_STR_EQ(pl_tok_hash(t2), CLIP_HASH);
    T_ASSERT_EQ(pl_tok_n_merges(t2), 48894);
    pl_tok_free(t2);
    /* One merge fewer: header + 48,893 lines. */
    size_t cut = 0;
    for (int lines = 0; lines < 48894; cut++) {
        lines += plain[cut] == '\n';
    }
    T_ASSERT_OK(pl_tok_load_buffer(plain, cut, &t2));
    T_ASSERT_EQ(pl_tok_n_merges(t2), 48893);
    T_ASSERT_EQ(pl_tok_vocab_size(t2), 49407);
    T_ASSERT_EQ(pl_tok_sot(t2), 49405);
    T_ASSERT_STR_EQ(pl_tok_hash(t2), CLIP_HASH_48893);
    /* "jekyll" is no longer one token */
    uint32_t ids[8];
    size_t n;
    T_ASSERT_OK(pl_tok_encode(t2, "jekyll", 6, ids, 8, &n));
    T_ASSERT(n == 2);
    T_ASSERT_OK(pl_tok_encode(tok, "jekyll", 6, ids, 8, &n));
    T_ASSERT(n == 1 && ids[0] == 49405);
    pl_tok_free(t2);
    /* The hash is sha256 of "a b\n" lines: check it independently. */
    uint8_t dig[CORE_SHA256_LEN];
    char hex[CORE_SHA256_HEX_LEN];
    const char *body = (const char *)memchr(plain, '\n', len) + 1;
    core_sha256(body, cut - (size_t)(body - plain), dig);
    core_hex(dig, sizeof dig, hex);
    T_ASSERT_STR_EQ(hex, CLIP_HASH_48893);
    core_free(plain);
    pl_tok_free(tok);
}

T_CASE(sctok_header)
{
    pl_tok_t *tok;
    T_ASSERT_OK(load_str(PL_TOK_SCTOK_HEADER "2\ni n\nt h\n", &tok));
    T_ASSERT_EQ(pl_tok_n_merges(tok), 2);
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 516);
    T_ASSERT_EQ(pl_tok_sot(tok), 514);
    T_ASSERT_EQ(pl_tok_eot(tok), 515);
    uint32_t ids[8];
    size_t n;
    T_ASSERT_OK(pl_tok_encode(tok, "thin", 4, ids, 8, &n));
    /* "t h i n</w>": (i,n) rank 0 does not apply to (i, n</w>); (t,h) rank 1 does. */
    assert_ids(ids, n, IDS(513, 72, 333), "thin with 2 merges");
    pl_tok_free(tok);
    /* Without a trailing newline, and with a reserved suffix on the header. */
    T_ASSERT_OK(load_str(PL_TOK_SCTOK_HEADER "1 source=x\ni n", &tok));
    T_ASSERT_EQ(pl_tok_n_merges(tok), 1);
    pl_tok_free(tok);
    T_ASSERT_OK(load_str(PL_TOK_SCTOK_HEADER "0\n", &tok));
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 514);
    pl_tok_free(tok);
    /* More than 48,894 merges are all used with the sc-tok header (a CLIP header would stop). */
    T_ASSERT_ERR(load_str(PL_TOK_SCTOK_HEADER "3\ni n\nt h\n", &tok), CORE_ECORRUPT);
    T_ASSERT(tok == NULL);
    T_ASSERT_ERR(load_str(PL_TOK_SCTOK_HEADER "1\ni n\nt h\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str(PL_TOK_SCTOK_HEADER "\ni n\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str(PL_TOK_SCTOK_HEADER "1x\ni n\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str(PL_TOK_SCTOK_HEADER "99999999999\ni n\n", &tok), CORE_ETOO_LARGE);
}

T_CASE(loader_errors)
{
    pl_tok_t *tok = (pl_tok_t *)1;
    T_ASSERT_ERR(pl_tok_load_buffer("", 0, &tok), CORE_ECORRUPT);
    T_ASSERT(tok == NULL);
    T_ASSERT_OK(load_str("#h\n", &tok)); /* header only: no merges */
    T_ASSERT_EQ(pl_tok_vocab_size(tok), 514);
    pl_tok_free(tok);
    T_ASSERT_OK(load_str("#h\ni n\n", &tok));
    T_ASSERT_EQ(pl_tok_n_merges(tok), 1);
    pl_tok_free(tok);
    /* bad merge lines */
    T_ASSERT_ERR(load_str("#h\ni n x\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\nin\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\n i\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\ni \n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\ni  n\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\n\ni n\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\ni n\r\n", &tok), CORE_ECORRUPT);
    /* unknown symbols: not a byte character, or a merge result used before its line */
    T_ASSERT_ERR(load_str("#h\nin n\ni n\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\ni \305\204\n", &tok), CORE_ECORRUPT); /* U+0144: no byte maps to it */
    T_ASSERT_ERR(load_str("#h\ni  \n", &tok), CORE_ECORRUPT);
    T_ASSERT_OK(load_str("#h\ni</w> n\n", &tok)); /* odd but well-formed */
    pl_tok_free(tok);
    T_ASSERT_ERR(load_str("#h\ni n\xff\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(load_str("#h\ni \x00\n", &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(pl_tok_load("/nonexistent/vocab.txt.gz", &tok), -ENOENT);
}

T_CASE(loader_gzip)
{
    const char *text = "#h\ni n\nt h\n";
    size_t gl;
    uint8_t *gz = gzip_buf(text, strlen(text), &gl);
    pl_tok_t *tok;
    T_ASSERT_OK(pl_tok_load_buffer(gz, gl, &tok));
    T_ASSERT_EQ(pl_tok_n_merges(tok), 2);
    char want_hash[PL_TOK_HASH_HEX];
    memcpy(want_hash, pl_tok_hash(tok), sizeof want_hash);
    pl_tok_free(tok);
    /* truncated */
    T_ASSERT_ERR(pl_tok_load_buffer(gz, gl - 5, &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(pl_tok_load_buffer(gz, 12, &tok), CORE_ECORRUPT);
    T_ASSERT_ERR(pl_tok_load_buffer(gz, 2, &tok), CORE_ECORRUPT);
    /* a flipped byte in the CRC, then in the deflate data */
    uint8_t *bad = core_malloc_or_die(gl + 8);
    memcpy(bad, gz, gl);
    bad[gl - 6] ^= 0x55;
    T_ASSERT_ERR(pl_tok_load_buffer(bad, gl, &tok), CORE_ECORRUPT);
    memcpy(bad, gz, gl);
    bad[3] = 0xff; /* reserved FLG bits */
    T_ASSERT_ERR(pl_tok_load_buffer(bad, gl, &tok), CORE_ECORRUPT);
    /* garbage after the stream */
    memcpy(bad, gz, gl);
    memcpy(bad + gl, "garbage!", 8);
    T_ASSERT_ERR(pl_tok_load_buffer(bad, gl + 8, &tok), CORE_ECORRUPT);
    core_free(bad);
    /* two members concatenate */
    const char *p1 = "#h\ni n\n", *p2 = "t h\n";
    size_t l1, l2;
    uint8_t *g1 = gzip_buf(p1, strlen(p1), &l1), *g2 = gzip_buf(p2, strlen(p2), &l2);
    uint8_t *cat = core_malloc_or_die(l1 + l2);
    memcpy(cat, g1, l1);
    memcpy(cat + l1, g2, l2);
    T_ASSERT_OK(pl_tok_load_buffer(cat, l1 + l2, &tok));
    T_ASSERT_STR_EQ(pl_tok_hash(tok), want_hash);
    pl_tok_free(tok);
    core_free(cat);
    core_free(g1);
    core_free(g2);
    core_free(gz);
}

T_CASE(loader_corrupt_clip_gz)
{
    size_t len;
    char *gz = t_read_file(t_shared(TOK_CLIP_PATH), &len);
    gz[len / 2] ^= 0x20;
    pl_tok_t *tok;
    T_ASSERT_ERR(pl_tok_load_buffer(gz, len, &tok), CORE_ECORRUPT);
    T_ASSERT(tok == NULL);
    core_free(gz);
}

T_CASE(duplicates_resolve_like_python)
{
    /* The reference builds dicts, so a repeated merge line's string maps to its last id and the
     * repeated pair has its last rank: "ab</w>" encodes to 513, not 512. */
    pl_tok_t *tok;
    T_ASSERT_OK(load_str("#h\na b</w>\na b</w>\n", &tok));
    uint32_t ids[4];
    size_t n;
    T_ASSERT_OK(pl_tok_encode(tok, "ab", 2, ids, 4, &n));
    assert_ids(ids, n, IDS(513), "ab with a repeated merge");
    pl_tok_free(tok);
}

/* --- cache and threads --- */

T_CASE(cache_hits_and_disable)
{
    pl_tok_t *tok = tok_clip();
    uint64_t h, m;
    size_t e;
    const char *t = "a photo of a cat";
    uint32_t a[8], b[8];
    size_t na, nb;
    pl_tok_cache_clear(tok);
    T_ASSERT_OK(pl_tok_encode(tok, t, strlen(t), a, 8, &na));
    pl_tok_cache_stats(tok, &h, &m, &e);
    T_ASSERT_EQ(m, 4); /* a, photo, of, cat */
    T_ASSERT_EQ(h, 1); /* the second "a" */
    T_ASSERT_EQ(e, 4);
    T_ASSERT_OK(pl_tok_encode(tok, t, strlen(t), b, 8, &nb));
    pl_tok_cache_stats(tok, &h, &m, &e);
    T_ASSERT_EQ(h, 6);
    assert_ids(a, na, b, nb, "cached result");
    pl_tok_cache_clear(tok);
    pl_tok_cache_stats(tok, &h, &m, &e);
    T_ASSERT(h == 0 && m == 0 && e == 0);
    T_ASSERT_OK(pl_tok_set_cache(tok, 0));
    T_ASSERT_OK(pl_tok_encode(tok, t, strlen(t), b, 8, &nb));
    pl_tok_cache_stats(tok, &h, &m, &e);
    T_ASSERT(h == 0 && m == 0 && e == 0);
    assert_ids(a, na, b, nb, "uncached result");
    pl_tok_free(tok);
}

typedef struct {
    const pl_tok_t *tok;
    const tok_golden_row_t *rows;
    size_t n;
    size_t start;
    size_t bad;
} thr_t;

static void *thr_main(void *arg)
{
    thr_t *t = arg;
    for (size_t k = 0; k < t->n; k++) {
        const tok_golden_row_t *g = &t->rows[(t->start + k) % t->n];
        uint32_t row[PL_TOK_CONTEXT];
        size_t used;
        if (pl_tok_row(t->tok, g->text, g->len, row, NULL, &used) != 0 || used != g->n_ids ||
            memcmp(row, g->ids, used * sizeof *row) != 0) {
            t->bad++;
        }
    }
    return NULL;
}

typedef struct {
    const pl_tok_t *tok;
    _Atomic int stop;
    int clears;
} clearer_t;

static void *clearer_main(void *arg)
{
    clearer_t *c = arg;
    while (!atomic_load(&c->stop)) {
        pl_tok_cache_clear(c->tok);
        c->clears++;
    }
    return NULL;
}

T_CASE(threads_share_one_tokenizer)
{
    pl_tok_t *tok = tok_clip();
    /* A small cache: threads keep evicting each other's words. */
    T_ASSERT_OK(pl_tok_set_cache(tok, 256));
    tok_golden_row_t *rows;
    size_t n = tok_golden_load(&rows);
    enum { NT = 6 };
    pthread_t th[NT], cl;
    thr_t a[NT];
    for (int i = 0; i < NT; i++) {
        a[i] = (thr_t){tok, rows, n, (size_t)i * n / NT, 0};
        T_ASSERT_EQ(pthread_create(&th[i], NULL, thr_main, &a[i]), 0);
    }
    /* and one more thread emptying the cache all the time: lookups racing with writers and
     * clears must still give the exact ids (the seqlock discards torn reads) */
    clearer_t c = {.tok = tok, .clears = 0};
    atomic_init(&c.stop, 0);
    T_ASSERT_EQ(pthread_create(&cl, NULL, clearer_main, &c), 0);
    size_t bad = 0;
    for (int i = 0; i < NT; i++) {
        T_ASSERT_EQ(pthread_join(th[i], NULL), 0);
        bad += a[i].bad;
    }
    atomic_store(&c.stop, 1);
    T_ASSERT_EQ(pthread_join(cl, NULL), 0);
    T_ASSERT(c.clears > 0);
    T_ASSERT_EQ(bad, 0);
    /* again without the clearer, so the counters below see a working cache */
    for (int i = 0; i < NT; i++) {
        a[i].bad = 0;
        T_ASSERT_EQ(pthread_create(&th[i], NULL, thr_main, &a[i]), 0);
    }
    for (int i = 0; i < NT; i++) {
        T_ASSERT_EQ(pthread_join(th[i], NULL), 0);
        bad += a[i].bad;
    }
    T_ASSERT_EQ(bad, 0);
    uint64_t h, m;
    size_t e;
    pl_tok_cache_stats(tok, &h, &m, &e);
    T_ASSERT(h > 0 && m > 0 && e <= 512); /* 256 short + 256 long entries */
    tok_golden_free(rows, n);
    pl_tok_free(tok);
}

T_MAIN()
