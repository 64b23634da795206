/* Pre-tokenisation (spec §1.5): findall with the reference pattern, compiled by the `regex`
 * module with IGNORECASE,
 *
 *   <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
 *
 * At each position the first alternative that matches wins; where none does, one character is
 * skipped. The literal alternatives match case-insensitively with simple case folding: for the
 * letters in them that means ASCII case plus U+017F (long s) for 's'. The runs are greedy and do
 * not stop where a literal alternative could start ("''s" gives "''" and "s"). Character classes
 * come from tok_unicode.c; under IGNORECASE U+0345 belongs to no class and is skipped. */
#include <string.h>

#include "core/err.h"
#include "tok_internal.h"

/* Does the literal `lit` (lowercase ASCII) match case-insensitively at s[i]? Returns the byte
 * length of the match, 0 if none. */
static size_t match_literal(const uint8_t *s, size_t len, size_t i, const char *lit)
{
    size_t p = i;
    for (const char *l = lit; *l != '\0'; l++) {
        if (p >= len) {
            return 0;
        }
        uint32_t cp;
        size_t q = p;
        if (pl__utf8_next(s, len, &q, &cp) != 0) {
            return 0;
        }
        uint32_t want = (uint8_t)*l;
        int ok = cp == want || (want >= 'a' && want <= 'z' && cp == want - 32) ||
                 (want == 's' && cp == 0x17F);
        if (!ok) {
            return 0;
        }
        p = q;
    }
    return p - i;
}

static const char *const contractions[] = {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};

int pl_tok_pretokenize(const char *clean, size_t len, pl_tok_piece_cb cb, void *ud)
{
    const uint8_t *s = (const uint8_t *)clean;
    size_t i = 0;
    pl__uni_init();
    while (i < len) {
        size_t start = i, m = 0;
        if (s[i] == '<') {
            m = match_literal(s, len, i, "<start_of_text>");
            if (m == 0) {
                m = match_literal(s, len, i, "<end_of_text>");
            }
        } else if (s[i] == '\'') {
            for (size_t k = 0; k < sizeof contractions / sizeof contractions[0] && m == 0; k++) {
                m = match_literal(s, len, i, contractions[k]);
            }
        }
        if (m > 0) {
            int rc = cb(ud, clean + start, m);
            if (rc != 0) {
                return rc;
            }
            i += m;
            continue;
        }
        uint32_t cp;
        int cls;
        if (s[i] < 0x80) {
            cls = pl__uni_ascii_class[s[i++]];
        } else {
            if (pl__utf8_next_inl(s, len, &i, &cp) != 0) {
                return CORE_EBAD_UTF8;
            }
            cls = cp < 0x10000 ? pl__uni_bmp[cp] & PL__BMP_CLASS : pl__uni_class(cp);
        }
        if (cls == PL__CLS_LETTER || cls == PL__CLS_OTHER) {
            /* Greedy run of the same class. */
            while (i < len) {
                size_t q = i;
                if (s[q] < 0x80) {
                    if (pl__uni_ascii_class[s[q]] != cls) {
                        break;
                    }
                    i = q + 1;
                    continue;
                }
                if (pl__utf8_next_inl(s, len, &q, &cp) != 0) {
                    return CORE_EBAD_UTF8;
                }
                if ((cp < 0x10000 ? pl__uni_bmp[cp] & PL__BMP_CLASS : pl__uni_class(cp)) != cls) {
                    break;
                }
                i = q;
            }
        } else if (cls != PL__CLS_NUMBER) {
            continue; /* whitespace, or a character no alternative matches */
        }
        int rc = cb(ud, clean + start, i - start);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
