/* Text cleaning (spec §1.4 with NFC in place of ftfy), exactly as the reference's Python:
 *
 *   text = unicodedata.normalize("NFC", text)
 *   text = html.unescape(html.unescape(text)).strip()
 *   text = " ".join(text.split()).strip()
 *   text = text.lower()
 *
 * strip/split use str.isspace, and " ".join(split()) already strips, so both collapse into one
 * pass. str.lower is the full lowercase mapping (U+0130 -> "i" U+0307) with CPython's final-sigma
 * rule for U+03A3, which looks at the neighbours in the collapsed text.
 *
 * Pure ASCII text without '&' (most captions) takes a byte-level path with the same result. */
#include <errno.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "tok_internal.h"

static int is_ascii_space(uint8_t c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20);
}

/* Output goes to buf when `need` bytes fit, else to a new core_malloc'd buffer. */
static char *out_buf(char *buf, size_t cap, size_t need)
{
    return need <= cap ? buf : core_malloc(need);
}

static int clean_ascii(const uint8_t *s, size_t len, char *buf, size_t cap, char **out,
                       size_t *out_len)
{
    char *o = out_buf(buf, cap, len + 1);
    if (o == NULL) {
        return CORE_ERR(ENOMEM);
    }
    size_t n = 0, i = 0;
    while (i < len) {
        while (i < len && is_ascii_space(s[i])) {
            i++;
        }
        if (i == len) {
            break;
        }
        if (n > 0) {
            o[n++] = ' ';
        }
        while (i < len && !is_ascii_space(s[i])) {
            uint8_t c = s[i++];
            o[n++] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
    }
    o[n] = '\0';
    pl__tok_work += len;
    *out = o;
    *out_len = n;
    return 0;
}

static inline int is_pyspace(uint32_t cp)
{
    return cp < 0x10000 ? (pl__uni_bmp[cp] & PL__BMP_PYSPACE) != 0 : pl__uni_is_pyspace(cp);
}

/* CPython's handle_capital_sigma: final form when preceded by a cased character and not followed
 * by one, skipping case-ignorable characters both ways. */
static uint32_t sigma(const uint32_t *s, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && pl__uni_is_ignorable(s[j - 1])) {
        pl__tok_work++;
        j--;
    }
    int final = j > 0 && pl__uni_is_cased(s[j - 1]);
    if (final) {
        j = i + 1;
        while (j < n && pl__uni_is_ignorable(s[j])) {
            pl__tok_work++;
            j++;
        }
        final = j == n || !pl__uni_is_cased(s[j]);
    }
    return final ? 0x3C2 : 0x3C3;
}

#define STACK_CPS 1024 /* code points handled without allocating */

int pl__tok_clean_into(const char *text, size_t len, char *buf, size_t cap, char **out,
                       size_t *out_len)
{
    int rc = 0;
    const uint8_t *s = (const uint8_t *)text;
    uint32_t stack_cps[STACK_CPS], stack_tmp[STACK_CPS];
    uint32_t *cps = stack_cps, *tmp = stack_tmp;
    char *o = NULL;
    *out = NULL;
    *out_len = 0;

    int ascii = 1, amp = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= 0x80) {
            ascii = 0;
            break;
        }
        amp |= s[i] == '&';
    }
    if (ascii && !amp) {
        return clean_ascii(s, len, buf, cap, out, out_len);
    }

    pl__uni_init();
    /* Decode (and so validate); at most one code point per byte. */
    if (len > STACK_CPS) {
        cps = core_malloc(len * sizeof *cps);
        CORE_FAIL_IF(cps == NULL, CORE_ERR(ENOMEM));
    }
    size_t n = 0;
    int nfc_needed = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        CORE_FAIL_IF(pl__utf8_next_inl(s, len, &i, &cp) != 0, CORE_EBAD_UTF8);
        nfc_needed |= cp < 0x10000 ? (pl__uni_bmp[cp] & PL__BMP_NFC_UNSAFE) != 0
                                   : !pl__uni_nfc_quick_yes(cp);
        cps[n++] = cp;
    }
    if (nfc_needed) {
        uint32_t *nfc;
        size_t nn;
        CORE_TRY(pl__uni_nfc(s, len, &nfc, &nn));
        if (cps != stack_cps) {
            core_free(cps);
        }
        cps = nfc;
        n = nn;
    }
    pl__tok_work += n;

    amp = 0;
    for (size_t i = 0; i < n && !amp; i++) {
        amp = cps[i] == '&';
    }
    if (amp) {
        if (n > STACK_CPS) {
            tmp = core_malloc(n * sizeof *tmp);
            CORE_FAIL_IF(tmp == NULL, CORE_ERR(ENOMEM));
        }
        size_t m;
        pl__html_unescape(cps, n, tmp, &m);
        pl__html_unescape(tmp, m, cps, &n);
    }

    /* strip + split + join, in place. */
    size_t c = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && is_pyspace(cps[i])) {
            i++;
        }
        if (i == n) {
            break;
        }
        if (c > 0) {
            cps[c++] = ' ';
        }
        while (i < n && !is_pyspace(cps[i])) {
            cps[c++] = cps[i++];
        }
    }
    n = c;

    /* lower: each code point gives at most pl__uni_lower_max() code points of 4 bytes. */
    size_t need;
    CORE_TRY(core_size_mul(n, 4 * pl__uni_lower_max(), &need));
    o = out_buf(buf, cap, need + 1);
    CORE_FAIL_IF(o == NULL, CORE_ERR(ENOMEM));
    size_t ol = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t low[3];
        int k;
        if (cps[i] < 0x80) {
            uint32_t ch = cps[i];
            o[ol++] = (char)((ch >= 'A' && ch <= 'Z') ? ch + 32 : ch);
            continue;
        }
        if (cps[i] < 0x10000 && (pl__uni_bmp[cps[i]] & PL__BMP_LOWER_SAME) != 0) {
            ol += pl__utf8_put((uint8_t *)o + ol, cps[i]);
            continue;
        }
        if (cps[i] == 0x3A3) {
            low[0] = sigma(cps, n, i);
            k = 1;
        } else {
            k = pl__uni_lower(cps[i], low);
        }
        for (int j = 0; j < k; j++) {
            ol += pl__utf8_put((uint8_t *)o + ol, low[j]);
        }
    }
    o[ol] = '\0';
    *out = o;
    *out_len = ol;
    o = NULL;
fail:
    if (cps != stack_cps) {
        core_free(cps);
    }
    if (tmp != stack_tmp) {
        core_free(tmp);
    }
    if (o != NULL && o != buf) {
        core_free(o);
    }
    return rc;
}

int pl_tok_clean(const char *text, size_t len, char **out, size_t *out_len)
{
    /* No caller buffer: the result is always core_malloc'd, as the header promises. */
    return pl__tok_clean_into(text, len, NULL, 0, out, out_len);
}
