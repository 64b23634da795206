/* Python's html.unescape (Lib/html/__init__.py), reproduced over code points:
 *
 *   _charref = re.compile(r'&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)')
 *
 * Every match is replaced as _replace_charref does: numeric references through the
 * _invalid_charrefs table, surrogates and values above U+10FFFF become U+FFFD, _invalid_codepoints
 * vanish; a name is looked up exactly in the HTML5 table (which has the legacy names without ';'),
 * else its longest prefix of at least two characters is, with the rest kept; otherwise the text
 * stays. Like re.sub, scanning resumes after each match, so a replacement is never rescanned.
 *
 * One deliberate difference: CPython 3.11 raises ValueError for a decimal reference of more than
 * 4300 digits (its int() digit limit); here such a number is simply out of range (U+FFFD). */
#include <string.h>

#include "tok_internal.h"

typedef struct {
    const char *name;  /* ASCII, e.g. "amp;" or "amp" */
    const char *value; /* UTF-8, one or two code points */
} pl__html_entity_t;

#include "html_entities.inc"

#define MAX_NAME 32 /* {1,32} in the pattern */

/* Compares code points with an ASCII name: like strcmp's sign. */
static int name_cmp(const uint32_t *s, size_t n, const char *name)
{
    size_t k = 0;
    for (; k < n && name[k] != '\0'; k++) {
        uint32_t a = s[k], b = (uint8_t)name[k];
        if (a != b) {
            return a < b ? -1 : 1;
        }
    }
    if (k < n) {
        return 1;
    }
    return name[k] == '\0' ? 0 : -1;
}

static const char *entity_find(const uint32_t *s, size_t n)
{
    size_t lo = 0, hi = PL__HTML_N_ENTITIES;
    while (lo < hi) {
        pl__tok_work++;
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(s, n, pl__html_entities[mid].name);
        if (c == 0) {
            return pl__html_entities[mid].value;
        }
        if (c < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

static size_t put_utf8_value(uint32_t *out, const char *v)
{
    const uint8_t *s = (const uint8_t *)v;
    size_t len = strlen(v), i = 0, n = 0;
    while (i < len) {
        uint32_t cp;
        /* The generated table holds valid UTF-8. */
        if (pl__utf8_next(s, len, &i, &cp) != 0) {
            break;
        }
        out[n++] = cp;
    }
    return n;
}

/* Appends the replacement of a numeric reference; returns the number of code points written. */
static size_t numeric_value(uint32_t num, uint32_t *out)
{
    for (size_t i = 0; i < PL__HTML_N_INVALID_CHARREFS; i++) {
        if (pl__html_invalid_charrefs[i][0] == num) {
            out[0] = pl__html_invalid_charrefs[i][1];
            return 1;
        }
    }
    if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
        out[0] = 0xFFFD;
        return 1;
    }
    for (size_t i = 0; i < PL__HTML_N_INVALID_CODEPOINTS; i++) {
        if (pl__html_invalid_codepoints[i] == num) {
            return 0;
        }
    }
    out[0] = num;
    return 1;
}

static int is_dec(uint32_t c)
{
    return c >= '0' && c <= '9';
}

static int hex_val(uint32_t c)
{
    if (c >= '0' && c <= '9') {
        return (int)(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return (int)(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return (int)(c - 'A' + 10);
    }
    return -1;
}

static int is_name_char(uint32_t c)
{
    return c != '\t' && c != '\n' && c != '\f' && c != ' ' && c != '<' && c != '&' && c != '#' &&
           c != ';';
}

#define SAT 0x110000u /* any value above U+10FFFF behaves the same */

void pl__html_unescape(const uint32_t *in, size_t n, uint32_t *out, size_t *n_out)
{
    size_t o = 0, i = 0;
    while (i < n) {
        if (in[i] != '&') {
            out[o++] = in[i++];
            continue;
        }
        size_t j = i + 1;
        if (j < n && in[j] == '#') {
            uint32_t num = 0;
            size_t k = j + 1;
            if (k < n && is_dec(in[k])) {
                while (k < n && is_dec(in[k])) {
                    num = num * 10 + (in[k] - '0');
                    if (num > SAT) {
                        num = SAT;
                    }
                    k++;
                }
            } else if (k + 1 < n && (in[k] == 'x' || in[k] == 'X') && hex_val(in[k + 1]) >= 0) {
                k++;
                while (k < n && hex_val(in[k]) >= 0) {
                    num = num * 16 + (uint32_t)hex_val(in[k]);
                    if (num > SAT) {
                        num = SAT;
                    }
                    k++;
                }
            } else {
                out[o++] = in[i++]; /* no match at this '&' */
                continue;
            }
            if (k < n && in[k] == ';') {
                k++;
            }
            o += numeric_value(num, out + o);
            i = k;
            continue;
        }
        size_t k = j;
        while (k < n && k - j < MAX_NAME && is_name_char(in[k])) {
            k++;
        }
        if (k == j) {
            out[o++] = in[i++];
            continue;
        }
        if (k < n && in[k] == ';') {
            k++;
        }
        /* s = in[j..k) */
        size_t len = k - j;
        const char *v = entity_find(in + j, len);
        if (v != NULL) {
            o += put_utf8_value(out + o, v);
            i = k;
            continue;
        }
        size_t x = len - 1;
        for (; x >= 2; x--) {
            v = entity_find(in + j, x);
            if (v != NULL) {
                break;
            }
        }
        if (v != NULL) {
            o += put_utf8_value(out + o, v);
            for (size_t r = j + x; r < k; r++) {
                out[o++] = in[r];
            }
        } else {
            for (size_t r = i; r < k; r++) {
                out[o++] = in[r];
            }
        }
        i = k;
    }
    *n_out = o;
}
