/* Caption validation for ingest: UTF-8, NUL, blank, byte cap at a character boundary. */
#include <string.h>

#include "ingest_internal.h"
#include "pipeline/ingest.h"
#include "pipeline/record.h"

int pl__utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1Fu;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0Fu;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07u;
            min = 0x10000;
        } else {
            return 0; /* continuation byte, overlong lead C0/C1, or F5..FF */
        }
        if (len - i <= n) {
            return 0;
        }
        for (size_t k = 1; k <= n; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xC0u) != 0x80u) {
                return 0;
            }
            cp = (cp << 6) | (cc & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            return 0;
        }
        i += n + 1;
    }
    return 1;
}

/* Length of the whitespace character at s (Python str.isspace), or 0. s is valid UTF-8. */
static size_t ws_at(const uint8_t *s, size_t len)
{
    uint8_t c = s[0];
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F)) {
        return 1;
    }
    if (c == 0xC2 && len >= 2 && (s[1] == 0x85 || s[1] == 0xA0)) {
        return 2;
    }
    if (len >= 3) {
        uint32_t cp = 0;
        if ((c & 0xF0u) == 0xE0u) {
            cp = ((uint32_t)(c & 0x0Fu) << 12) | ((uint32_t)(s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        }
        if (cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
            cp == 0x202F || cp == 0x205F || cp == 0x3000) {
            return 3;
        }
    }
    return 0;
}

/* Start of the last character of s[0..len) (len > 0). */
static size_t last_char(const uint8_t *s, size_t len)
{
    size_t i = len - 1;
    while (i > 0 && (s[i] & 0xC0u) == 0x80u) {
        i--;
    }
    return i;
}

static void strip(const uint8_t **s, size_t *len)
{
    size_t w;
    while (*len > 0 && (w = ws_at(*s, *len)) > 0) {
        *s += w;
        *len -= w;
    }
    while (*len > 0) {
        size_t i = last_char(*s, *len);
        if (ws_at(*s + i, *len - i) == 0) {
            break;
        }
        *len = i;
    }
}

uint32_t pl__caption_check(const char **cap, size_t *len, uint32_t max_bytes, int reject_over,
                           uint32_t *flags)
{
    const uint8_t *s = (const uint8_t *)*cap;
    size_t n = *len;
    if (n == 0) {
        return PL_REJECT_CAPTION_EMPTY;
    }
    if (memchr(s, 0, n) != NULL) {
        return PL_REJECT_CAPTION_NUL;
    }
    if (!pl__utf8_valid(s, n)) {
        return PL_REJECT_CAPTION_UTF8;
    }
    strip(&s, &n);
    if (n == 0) {
        return PL_REJECT_CAPTION_BLANK;
    }
    if (max_bytes > 0 && n > max_bytes) {
        if (reject_over) {
            return PL_REJECT_CAPTION_TOO_LONG;
        }
        /* Cut before the character that straddles or starts at the cap. */
        size_t cut = max_bytes;
        while (cut > 0 && (s[cut] & 0xC0u) == 0x80u) {
            cut--;
        }
        n = cut;
        strip(&s, &n);
        if (n == 0) {
            return PL_REJECT_CAPTION_BLANK;
        }
        *flags |= PL_REC_CAPTION_TRUNCATED;
    }
    *cap = (const char *)s;
    *len = n;
    return PL_REJECT_NONE;
}
