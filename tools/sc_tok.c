/* sc-tok: the CLIP BPE tokenizer from the command line (pipeline/tok.h, pipeline/tok_train.h).
 *
 *   sc-tok [--vocab FILE] encode [--row | --label] [--json] [TEXT...]
 *   sc-tok [--vocab FILE] encode --row --tsv            golden.tsv format in, same format out
 *   sc-tok [--vocab FILE] decode [ID...]
 *   sc-tok [--vocab FILE] info [--json]
 *   sc-tok train --vocab-size N [-o OUT] FILE...
 *
 * The vocabulary is --vocab FILE, else $SC_VOCAB, else /usr/share/superclass/bpe_simple_vocab_16e6
 * .txt.gz. Exit status: 0 ok, 1 runtime error (unreadable vocabulary or input, invalid UTF-8, an
 * unknown id), 2 usage error. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "core/progress.h"
#include "pipeline/tok.h"
#include "pipeline/tok_train.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define DEFAULT_VOCAB "/usr/share/superclass/bpe_simple_vocab_16e6.txt.gz"

static const char *k_usage =
    "usage: sc-tok [--vocab FILE] <command> [options]\n"
    "\n"
    "The CLIP BPE tokenizer of superclass (exact to OpenAI CLIP's SimpleTokenizer, with Unicode\n"
    "NFC in place of ftfy), and a trainer for own vocabularies.\n"
    "\n"
    "Commands (each takes --help):\n"
    "  encode [--row|--label] [--json] [TEXT...]  ids of each TEXT, or of each stdin line\n"
    "  encode --row --tsv                         golden.tsv lines in, text<TAB>row ids out\n"
    "  decode [ID...]                             text of the ids, or of each stdin line of ids\n"
    "  info [--json]                              vocabulary size, merges, hash, special ids\n"
    "  train --vocab-size N [-o OUT] FILE...      learn a vocabulary from caption files\n"
    "\n"
    "Options:\n"
    "  --vocab FILE   merges file: bpe_simple_vocab_16e6.txt.gz (OpenAI CLIP, MIT licence; download\n"
    "                 it yourself) or a file written by `sc-tok train`; gzip or plain text.\n"
    "                 Default: $SC_VOCAB, else " DEFAULT_VOCAB ".\n"
    "  -h, --help     this text\n"
    "\n"
    "Exit status: 0 ok, 1 runtime error (vocabulary or input unreadable, invalid UTF-8, unknown\n"
    "id), 2 usage error.\n";

static const char *k_usage_encode =
    "usage: sc-tok [--vocab FILE] encode [--row | --label] [--json] [--] [TEXT...]\n"
    "       sc-tok [--vocab FILE] encode --row --tsv < golden.tsv\n"
    "Encodes each TEXT argument, or each line of stdin (without its newline), one output line\n"
    "per text:\n"
    "  (default)  the BPE ids of the cleaned text, without SOT/EOT (the reference encode())\n"
    "  --row      the 77-id context row: SOT, ids, EOT, 0 padding; longer texts are cut to 77\n"
    "             with EOT last\n"
    "  --label    the label set of that row: its sorted unique ids (SOT, EOT and 0 included)\n"
    "  --json     one JSON object per line: {\"text\", \"ids\"} / {\"text\", \"row\",\n"
    "             \"truncated\"} / {\"text\", \"label\"}\n"
    "  --tsv      (with --row) input lines in golden.tsv format: escaped text (\\\\ \\t \\n \\r),\n"
    "             anything after a TAB ignored, '#' lines copied through, a blank line is the\n"
    "             empty text; output `text<TAB>ids` with the row up to its last non-pad id, so\n"
    "             `sc-tok encode --row --tsv < golden.tsv | diff - golden.tsv` prints nothing.\n"
    "A text that is not valid UTF-8 is reported on stderr and gives an empty output line; the\n"
    "exit status is then 1.\n";

static const char *k_usage_decode =
    "usage: sc-tok [--vocab FILE] decode [ID...]\n"
    "Decodes the ids given as arguments into one line of text, or, without arguments, each\n"
    "stdin line of ids (separated by spaces or commas) into one line. Like the reference\n"
    "decode(), \"</w>\" becomes a space and invalid UTF-8 becomes U+FFFD; the final space is\n"
    "dropped. An id outside the vocabulary is an error (exit 1).\n";

static const char *k_usage_info =
    "usage: sc-tok [--vocab FILE] info [--json]\n"
    "Prints the vocabulary file, its size (512 + merges + 2), the number of merges, the ids of\n"
    "<start_of_text> and <end_of_text>, and its hash: sha256 of the used merges, one \"a b\\n\"\n"
    "line each, in rank order (the identity a shard store checks).\n";

static const char *k_usage_train =
    "usage: sc-tok train --vocab-size N [-o OUT] FILE...\n"
    "Learns byte-level BPE merges from captions with the tokenizer's own cleaning and\n"
    "pre-tokenisation, deterministically, until the vocabulary has N ids (512 + merges + 2,\n"
    "N >= 514) or no pair occurs twice. FILE has one caption per line; '-' reads stdin. Lines\n"
    "that are not valid UTF-8 are skipped and counted. Writes OUT (default vocab.txt; gzip when\n"
    "OUT ends in .gz) with the header \"#version: 0.2 sc-tok merges=M\", loadable with --vocab.\n";

static int has_help(int argc, char **argv)
{
    for (int i = 0; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            return 1;
        }
    }
    return 0;
}

/* Loads the vocabulary; returns 0 or an exit status. */
static int load_vocab(const char *flag, pl_tok_t **tok, const char **used)
{
    const char *env = getenv("SC_VOCAB");
    const char *path = flag != NULL ? flag : (env != NULL && env[0] != '\0') ? env : DEFAULT_VOCAB;
    *used = path;
    if (flag == NULL && (env == NULL || env[0] == '\0') && access(path, R_OK) != 0) {
        fprintf(stderr,
                "sc-tok: no vocabulary: pass --vocab FILE (bpe_simple_vocab_16e6.txt.gz, the\n"
                "OpenAI CLIP merges file, or a file made by `sc-tok train`) or set SC_VOCAB;\n"
                "the default %s does not exist\n",
                DEFAULT_VOCAB);
        return EXIT_USAGE;
    }
    int rc = pl_tok_load(path, tok);
    if (rc != 0) {
        fprintf(stderr, "sc-tok: cannot load the vocabulary %s: %s\n", path, core_strerror(rc));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* Takes "--vocab FILE" / "--vocab=FILE" at argv[*i]; returns 1 if it was one, -1 on error. */
static int take_vocab(int argc, char **argv, int *i, const char **vocab)
{
    if (strcmp(argv[*i], "--vocab") == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "sc-tok: --vocab needs a FILE\n");
            return -1;
        }
        *vocab = argv[++*i];
        return 1;
    }
    if (strncmp(argv[*i], "--vocab=", 8) == 0) {
        *vocab = argv[*i] + 8;
        return 1;
    }
    return 0;
}

static void print_ids(FILE *f, const uint32_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(f, i ? " %" PRIu32 : "%" PRIu32, ids[i]);
    }
}

static json_t *ids_json(const uint32_t *ids, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n && a != NULL; i++) {
        json_array_append_new(a, json_integer((json_int_t)ids[i]));
    }
    return a;
}

/* --- encode --- */

enum { OUT_IDS, OUT_ROW, OUT_LABEL };

typedef struct {
    const pl_tok_t *tok;
    int mode;
    int json;
    uint32_t *buf; /* for OUT_IDS */
    size_t cap;
    unsigned long long failed;
} enc_ctx_t;

/* Encodes one text and prints one line; returns 0, or -1 after reporting the error. */
static int encode_one(enc_ctx_t *c, const char *text, size_t len, const char *where)
{
    uint32_t row[PL_TOK_CONTEXT], label[PL_TOK_CONTEXT];
    const uint32_t *out = NULL;
    size_t n = 0, used = 0;
    int trunc = 0, rc;
    if (c->mode == OUT_IDS) {
        rc = pl_tok_encode(c->tok, text, len, c->buf, c->cap, &n);
        if (rc == 0 && n > c->cap) {
            uint32_t *nb = core_realloc(c->buf, n * sizeof *nb);
            rc = nb == NULL ? CORE_ERR(ENOMEM) : 0;
            if (nb != NULL) {
                c->buf = nb;
                c->cap = n;
                rc = pl_tok_encode(c->tok, text, len, c->buf, c->cap, &n);
            }
        }
        out = c->buf;
    } else {
        rc = pl_tok_row(c->tok, text, len, row, &trunc, &used);
        out = row;
        n = PL_TOK_CONTEXT;
        if (rc == 0 && c->mode == OUT_LABEL) {
            pl_tok_label(row, label, &n);
            out = label;
        }
    }
    if (rc != 0) {
        fprintf(stderr, "sc-tok: %s: %s\n", where, core_strerror(rc));
        fputc('\n', stdout);
        c->failed++;
        return -1;
    }
    if (!c->json) {
        print_ids(stdout, out, n);
        fputc('\n', stdout);
        return 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "text", json_stringn(text, len));
    json_object_set_new(o, c->mode == OUT_IDS ? "ids" : c->mode == OUT_ROW ? "row" : "label",
                        ids_json(out, n));
    if (c->mode == OUT_ROW) {
        json_object_set_new(o, "truncated", json_boolean(trunc));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL) {
        fprintf(stderr, "sc-tok: %s: out of memory\n", where);
        fputc('\n', stdout);
        c->failed++;
        return -1;
    }
    fputs(s, stdout);
    fputc('\n', stdout);
    free(s);
    return 0;
}

/* golden.tsv escapes: \\ \t \n \r; other backslashes stay as they are. */
static size_t unescape(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '\\' && i + 1 < len) {
            char e = s[i + 1];
            char r = e == '\\' ? '\\' : e == 't' ? '\t' : e == 'n' ? '\n' : e == 'r' ? '\r' : 0;
            if (r != 0) {
                out[o++] = r;
                i++;
                continue;
            }
        }
        out[o++] = ch;
    }
    return o;
}

static int encode_tsv(enc_ctx_t *c)
{
    char *line = NULL, *text = NULL;
    size_t lcap = 0, tcap = 0;
    ssize_t got;
    unsigned long long lineno = 0;
    while ((got = getline(&line, &lcap, stdin)) >= 0) {
        size_t len = (size_t)got;
        lineno++;
        if (len > 0 && line[len - 1] == '\n') {
            len--;
        }
        if (len > 0 && line[0] == '#') {
            fwrite(line, 1, len, stdout);
            fputc('\n', stdout);
            continue;
        }
        const char *tab = memchr(line, '\t', len);
        size_t flen = tab != NULL ? (size_t)(tab - line) : len;
        if (flen + 1 > tcap) {
            char *nt = core_realloc(text, flen + 1);
            if (nt == NULL) {
                fprintf(stderr, "sc-tok: out of memory\n");
                break;
            }
            text = nt;
            tcap = flen + 1;
        }
        size_t tl = unescape(line, flen, text);
        uint32_t row[PL_TOK_CONTEXT];
        size_t used;
        int rc = pl_tok_row(c->tok, text, tl, row, NULL, &used);
        fwrite(line, 1, flen, stdout);
        fputc('\t', stdout);
        if (rc != 0) {
            fprintf(stderr, "sc-tok: stdin line %llu: %s\n", lineno, core_strerror(rc));
            c->failed++;
        } else {
            print_ids(stdout, row, used);
        }
        fputc('\n', stdout);
    }
    int err = ferror(stdin);
    free(line);
    core_free(text);
    if (err) {
        fprintf(stderr, "sc-tok: error reading stdin\n");
        return EXIT_RUNTIME;
    }
    return c->failed ? EXIT_RUNTIME : 0;
}

static int cmd_encode(int argc, char **argv, const char *vocab)
{
    int mode = OUT_IDS, json = 0, tsv = 0, first_text = argc;
    for (int i = 0; i < argc; i++) {
        int v = take_vocab(argc, argv, &i, &vocab);
        if (v < 0) {
            return EXIT_USAGE;
        }
        if (v > 0) {
            continue;
        }
        if (strcmp(argv[i], "--") == 0) {
            first_text = i + 1;
            break;
        }
        if (strcmp(argv[i], "--row") == 0 || strcmp(argv[i], "--label") == 0) {
            int m = argv[i][2] == 'r' ? OUT_ROW : OUT_LABEL;
            if (mode != OUT_IDS && mode != m) {
                fprintf(stderr, "sc-tok: encode: --row and --label exclude each other\n");
                return EXIT_USAGE;
            }
            mode = m;
        } else if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--tsv") == 0) {
            tsv = 1;
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "sc-tok: encode: unknown option %s\n\n%s", argv[i], k_usage_encode);
            return EXIT_USAGE;
        } else {
            first_text = i;
            break;
        }
    }
    if (tsv && (mode != OUT_ROW || json || first_text < argc)) {
        fprintf(stderr, "sc-tok: encode: --tsv goes with --row, reads stdin only, and has no "
                        "--json form\n");
        return EXIT_USAGE;
    }
    pl_tok_t *tok;
    const char *path;
    int st = load_vocab(vocab, &tok, &path);
    if (st != 0) {
        return st;
    }
    enc_ctx_t c = {tok, mode, json, NULL, 0, 0};
    c.cap = 256;
    c.buf = core_malloc(c.cap * sizeof *c.buf);
    if (c.buf == NULL) {
        pl_tok_free(tok);
        return EXIT_RUNTIME;
    }
    int ret = 0;
    if (tsv) {
        ret = encode_tsv(&c);
    } else if (first_text < argc) {
        for (int i = first_text; i < argc; i++) {
            char where[32];
            snprintf(where, sizeof where, "argument %d", i - first_text + 1);
            encode_one(&c, argv[i], strlen(argv[i]), where);
        }
    } else {
        char *line = NULL;
        size_t lcap = 0;
        ssize_t got;
        unsigned long long lineno = 0;
        while ((got = getline(&line, &lcap, stdin)) >= 0) {
            size_t len = (size_t)got;
            lineno++;
            if (len > 0 && line[len - 1] == '\n') {
                len--;
            }
            char where[48];
            snprintf(where, sizeof where, "stdin line %llu", lineno);
            encode_one(&c, line, len, where);
        }
        if (ferror(stdin)) {
            fprintf(stderr, "sc-tok: error reading stdin\n");
            ret = EXIT_RUNTIME;
        }
        free(line);
    }
    if (ret == 0 && c.failed) {
        ret = EXIT_RUNTIME;
    }
    if (fflush(stdout) != 0) {
        ret = EXIT_RUNTIME;
    }
    core_free(c.buf);
    pl_tok_free(tok);
    return ret;
}

/* --- decode --- */

/* Parses ids separated by spaces, tabs or commas. Returns the count or -1 (message printed). */
static long parse_ids(const char *s, uint32_t **ids, size_t *cap, const char *where)
{
    size_t n = 0;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == ',' || *p == '\r') {
            p++;
        }
        if (*p == '\0') {
            break;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno != 0 || v > UINT32_MAX || *p == '-' || *p == '+' ||
            (*end != '\0' && *end != ' ' && *end != '\t' && *end != ',' && *end != '\r')) {
            fprintf(stderr, "sc-tok: %s: \"%s\" is not a list of ids\n", where, s);
            return -1;
        }
        if (n == *cap) {
            size_t nc = *cap ? *cap * 2 : 64;
            uint32_t *nb = core_realloc(*ids, nc * sizeof *nb);
            if (nb == NULL) {
                fprintf(stderr, "sc-tok: out of memory\n");
                return -1;
            }
            *ids = nb;
            *cap = nc;
        }
        (*ids)[n++] = (uint32_t)v;
        p = end;
    }
    return (long)n;
}

static int decode_print(const pl_tok_t *tok, const uint32_t *ids, size_t n, const char *where)
{
    size_t len;
    char probe[1];
    int rc = pl_tok_decode(tok, ids, n, probe, sizeof probe, &len);
    char *out = rc == 0 ? core_malloc(len + 1) : NULL;
    if (rc == 0 && out == NULL) {
        rc = CORE_ERR(ENOMEM);
    }
    if (rc == 0) {
        rc = pl_tok_decode(tok, ids, n, out, len + 1, &len);
    }
    if (rc != 0) {
        fprintf(stderr, "sc-tok: %s: %s\n", where,
                rc == CORE_ENOT_FOUND ? "an id is outside the vocabulary" : core_strerror(rc));
        fputc('\n', stdout);
        core_free(out);
        return -1;
    }
    fwrite(out, 1, len, stdout);
    fputc('\n', stdout);
    core_free(out);
    return 0;
}

static int cmd_decode(int argc, char **argv, const char *vocab)
{
    int first = argc;
    for (int i = 0; i < argc; i++) {
        int v = take_vocab(argc, argv, &i, &vocab);
        if (v < 0) {
            return EXIT_USAGE;
        }
        if (v > 0) {
            continue;
        }
        if (strcmp(argv[i], "--") == 0) {
            first = i + 1;
            break;
        }
        if (argv[i][0] == '-' && (argv[i][1] < '0' || argv[i][1] > '9')) {
            fprintf(stderr, "sc-tok: decode: unknown option %s\n\n%s", argv[i], k_usage_decode);
            return EXIT_USAGE;
        }
        first = i;
        break;
    }
    uint32_t *ids = NULL;
    size_t cap = 0;
    /* Validate arguments before loading anything: a bad id list is a usage error. */
    for (int i = first; i < argc; i++) {
        if (parse_ids(argv[i], &ids, &cap, "decode") < 0) {
            core_free(ids);
            return EXIT_USAGE;
        }
    }
    pl_tok_t *tok;
    const char *path;
    int st = load_vocab(vocab, &tok, &path);
    if (st != 0) {
        core_free(ids);
        return st;
    }
    int failed = 0;
    if (first < argc) {
        size_t n = 0;
        for (int i = first; i < argc; i++) {
            uint32_t *one = NULL;
            size_t oc = 0;
            long k = parse_ids(argv[i], &one, &oc, "decode");
            for (long j = 0; j < k; j++) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 64;
                    ids = core_realloc_or_die(ids, cap * sizeof *ids);
                }
                ids[n++] = one[j];
            }
            core_free(one);
        }
        failed = decode_print(tok, ids, n, "decode") != 0;
    } else {
        char *line = NULL;
        size_t lcap = 0;
        ssize_t got;
        unsigned long long lineno = 0;
        while ((got = getline(&line, &lcap, stdin)) >= 0) {
            lineno++;
            if (got > 0 && line[got - 1] == '\n') {
                line[got - 1] = '\0';
            }
            char where[48];
            snprintf(where, sizeof where, "stdin line %llu", lineno);
            long k = parse_ids(line, &ids, &cap, where);
            if (k < 0) {
                fputc('\n', stdout);
                failed = 1;
                continue;
            }
            failed |= decode_print(tok, ids, (size_t)k, where) != 0;
        }
        free(line);
    }
    core_free(ids);
    pl_tok_free(tok);
    return failed || fflush(stdout) != 0 ? EXIT_RUNTIME : 0;
}

/* --- info --- */

static int cmd_info(int argc, char **argv, const char *vocab)
{
    int json = 0;
    for (int i = 0; i < argc; i++) {
        int v = take_vocab(argc, argv, &i, &vocab);
        if (v < 0) {
            return EXIT_USAGE;
        }
        if (v > 0) {
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else {
            fprintf(stderr, "sc-tok: info: unexpected argument %s\n\n%s", argv[i], k_usage_info);
            return EXIT_USAGE;
        }
    }
    pl_tok_t *tok;
    const char *path;
    int st = load_vocab(vocab, &tok, &path);
    if (st != 0) {
        return st;
    }
    if (json) {
        json_t *o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:s}", "file", path, "vocab_size",
                              (json_int_t)pl_tok_vocab_size(tok), "merges",
                              (json_int_t)pl_tok_n_merges(tok), "sot", (json_int_t)pl_tok_sot(tok),
                              "eot", (json_int_t)pl_tok_eot(tok), "hash", pl_tok_hash(tok));
        if (o == NULL || json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0) {
            json_decref(o);
            pl_tok_free(tok);
            return EXIT_RUNTIME;
        }
        fputc('\n', stdout);
        json_decref(o);
    } else {
        printf("file:       %s\n", path);
        printf("vocab_size: %" PRIu32 "\n", pl_tok_vocab_size(tok));
        printf("merges:     %" PRIu32 "\n", pl_tok_n_merges(tok));
        printf("sot:        %" PRIu32 " <start_of_text>\n", pl_tok_sot(tok));
        printf("eot:        %" PRIu32 " <end_of_text>\n", pl_tok_eot(tok));
        printf("hash:       %s\n", pl_tok_hash(tok));
    }
    pl_tok_free(tok);
    return fflush(stdout) != 0 ? EXIT_RUNTIME : 0;
}

/* --- train --- */

static void train_progress(void *ud, uint32_t done, uint32_t target)
{
    core_progress_t *p = ud;
    p->total = target;
    core_progress_update(p, done, "merges");
}

static int cmd_train(int argc, char **argv, const char *vocab)
{
    (void)vocab; /* training needs no vocabulary */
    const char *out = "vocab.txt";
    unsigned long long vs = 0;
    int nfiles = 0;
    char **files = core_calloc((size_t)argc + 1, sizeof *files);
    if (files == NULL) {
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--vocab-size") == 0 || strncmp(argv[i], "--vocab-size=", 13) == 0) {
            const char *v = argv[i][12] == '=' ? argv[i] + 13 : (i + 1 < argc ? argv[++i] : NULL);
            char *end = NULL;
            errno = 0;
            vs = v != NULL ? strtoull(v, &end, 10) : 0;
            if (v == NULL || *v == '\0' || *end != '\0' || errno != 0 || vs < 514 ||
                vs > UINT32_MAX) {
                fprintf(stderr, "sc-tok: train: --vocab-size needs a number >= 514 (512 byte "
                                "symbols + merges + 2 special ids)\n");
                core_free(files);
                return EXIT_USAGE;
            }
        } else if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--output") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "sc-tok: train: %s needs a file name\n", argv[i]);
                core_free(files);
                return EXIT_USAGE;
            }
            out = argv[++i];
        } else if (strcmp(argv[i], "-") == 0 || argv[i][0] != '-') {
            files[nfiles++] = argv[i];
        } else {
            fprintf(stderr, "sc-tok: train: unknown option %s\n\n%s", argv[i], k_usage_train);
            core_free(files);
            return EXIT_USAGE;
        }
    }
    if (vs == 0 || nfiles == 0) {
        fputs(k_usage_train, stderr);
        core_free(files);
        return EXIT_USAGE;
    }
    pl_tok_trainer_t *t = NULL;
    int rc = pl_tok_trainer_new(&t);
    int ret = 0;
    if (rc != 0) {
        fprintf(stderr, "sc-tok: train: %s\n", core_strerror(rc));
        core_free(files);
        return EXIT_RUNTIME;
    }
    core_progress_t prog;
    core_progress_init(&prog, "reading", 0, 0);
    unsigned long long lines = 0, skipped = 0;
    char *line = NULL;
    size_t lcap = 0;
    for (int f = 0; f < nfiles && ret == 0; f++) {
        int is_stdin = strcmp(files[f], "-") == 0;
        FILE *in = is_stdin ? stdin : fopen(files[f], "rb");
        if (in == NULL) {
            fprintf(stderr, "sc-tok: train: %s: %s\n", files[f], strerror(errno));
            ret = EXIT_RUNTIME;
            break;
        }
        ssize_t got;
        while ((got = getline(&line, &lcap, in)) >= 0) {
            size_t len = (size_t)got;
            if (len > 0 && line[len - 1] == '\n') {
                len--;
            }
            lines++;
            rc = pl_tok_trainer_add_text(t, line, len);
            if (rc == CORE_EBAD_UTF8) {
                skipped++;
            } else if (rc != 0) {
                fprintf(stderr, "\nsc-tok: train: %s: %s\n", files[f], core_strerror(rc));
                ret = EXIT_RUNTIME;
                break;
            }
            if ((lines & 4095) == 0) {
                char extra[64];
                snprintf(extra, sizeof extra, "lines, %llu skipped", skipped);
                core_progress_update(&prog, lines, extra);
            }
        }
        if (ferror(in)) {
            fprintf(stderr, "sc-tok: train: error reading %s\n", files[f]);
            ret = EXIT_RUNTIME;
        }
        if (!is_stdin) {
            fclose(in);
        }
    }
    free(line);
    char extra[64];
    snprintf(extra, sizeof extra, "lines, %llu skipped", skipped);
    core_progress_finish(&prog, extra);
    uint32_t nm = 0;
    if (ret == 0) {
        core_progress_t mp;
        core_progress_init(&mp, "training", (uint64_t)vs - 514, 0);
        rc = pl_tok_trainer_train(t, (uint32_t)vs, &nm, train_progress, &mp);
        core_progress_finish(&mp, "merges");
        if (rc == 0) {
            rc = pl_tok_trainer_write(t, out);
        }
        if (rc != 0) {
            fprintf(stderr, "sc-tok: train: %s: %s\n", rc == CORE_ECONFIG ? "bad settings" : out,
                    core_strerror(rc));
            ret = EXIT_RUNTIME;
        }
    }
    if (ret == 0) {
        /* Read the result back: it must load, and its hash is the vocabulary's identity. */
        pl_tok_t *tok;
        rc = pl_tok_load(out, &tok);
        if (rc != 0) {
            fprintf(stderr, "sc-tok: train: the written %s does not load: %s\n", out,
                    core_strerror(rc));
            ret = EXIT_RUNTIME;
        } else {
            fprintf(stderr,
                    "sc-tok: %llu texts (%llu skipped: invalid UTF-8), %llu distinct words; "
                    "%" PRIu32 " merges, vocabulary size %" PRIu32 "\n"
                    "sc-tok: wrote %s (hash %s)\n",
                    (unsigned long long)pl_tok_trainer_texts(t), skipped,
                    (unsigned long long)pl_tok_trainer_words(t), nm, pl_tok_vocab_size(tok), out,
                    pl_tok_hash(tok));
            pl_tok_free(tok);
        }
    }
    pl_tok_trainer_free(t);
    core_free(files);
    return ret;
}

int main(int argc, char **argv)
{
    core_log_init("sc-tok");
    const char *vocab = NULL;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(k_usage, stdout);
            return 0;
        }
        int v = take_vocab(argc, argv, &i, &vocab);
        if (v < 0) {
            return EXIT_USAGE;
        }
        if (v == 0) {
            fprintf(stderr, "sc-tok: unknown option %s\n\n%s", argv[i], k_usage);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        fputs(k_usage, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(argv[i], "help") == 0) {
        fputs(k_usage, stdout);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **, const char *);
        const char **usage;
    } cmds[] = {{"encode", cmd_encode, &k_usage_encode},
                {"decode", cmd_decode, &k_usage_decode},
                {"info", cmd_info, &k_usage_info},
                {"train", cmd_train, &k_usage_train}};
    for (size_t c = 0; c < sizeof cmds / sizeof cmds[0]; c++) {
        if (strcmp(argv[i], cmds[c].name) == 0) {
            if (has_help(argc - i - 1, argv + i + 1)) {
                fputs(*cmds[c].usage, stdout);
                return 0;
            }
            return cmds[c].fn(argc - i - 1, argv + i + 1, vocab);
        }
    }
    fprintf(stderr, "sc-tok: unknown command \"%s\"\n\n%s", argv[i], k_usage);
    return EXIT_USAGE;
}
