#!/usr/bin/python3
"""Writes unicode_tables.inc: the few places where the reference (CPython's str methods and
unicodedata, and the `regex` module the reference pre-tokenizer uses) differs from what utf8proc
gives us, plus the two Unicode properties CPython's final-sigma rule needs (Cased and
Case_Ignorable), which utf8proc does not expose.

Run with Debian's /usr/bin/python3 (the Python the golden file was made with; it needs
python3-regex):  /usr/bin/python3 pipeline/tok/gen_unicode_tables.py
It loads the system libutf8proc through ctypes to compute the differences, and records both
Unicode versions; tok_unicode.c refuses to pretend when utf8proc's version differs (a unit test
checks it). The output is committed."""
import ctypes
import ctypes.util
import os
import sys
import unicodedata

import regex

SIGMA = '\u03a3'


def ranges(pred):
    out, start = [], None
    for cp in range(0x110000 + 1):
        ok = cp <= 0x10FFFF and not (0xD800 <= cp <= 0xDFFF) and pred(cp)
        if ok and start is None:
            start = cp
        elif not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    # Merge across the surrogate gap, which UTF-8 input can never contain.
    merged = []
    for a, b in out:
        if merged and merged[-1][1] + 1 == a:
            merged[-1] = (merged[-1][0], b)
        elif merged and merged[-1][1] == 0xD7FF and a == 0xE000:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged


def main():
    lib = ctypes.CDLL(ctypes.util.find_library('utf8proc') or 'libutf8proc.so.2')
    lib.utf8proc_unicode_version.restype = ctypes.c_char_p
    lib.utf8proc_category.restype = ctypes.c_int
    lib.utf8proc_category.argtypes = [ctypes.c_int32]
    lib.utf8proc_tolower.restype = ctypes.c_int32
    lib.utf8proc_tolower.argtypes = [ctypes.c_int32]

    class Prop(ctypes.Structure):
        _fields_ = [('category', ctypes.c_int16), ('combining_class', ctypes.c_int16)]

    lib.utf8proc_get_property.restype = ctypes.POINTER(Prop)
    lib.utf8proc_get_property.argtypes = [ctypes.c_int32]
    u8p_version = lib.utf8proc_unicode_version().decode()

    # Pre-tokenizer classes, as tok_unicode.c derives them from utf8proc, and as the reference's
    # regex (with IGNORECASE) sees them: 1 space (\s), 2 letter, 3 number, 4 other, 0 none.
    rl = regex.compile(r'[\p{L}]', regex.IGNORECASE)
    rn = regex.compile(r'[\p{N}]', regex.IGNORECASE)
    ro = regex.compile(r'[^\s\p{L}\p{N}]', regex.IGNORECASE)
    rs = regex.compile(r'\s', regex.IGNORECASE)
    white = {0x9, 0xA, 0xB, 0xC, 0xD, 0x20, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F,
             0x3000} | set(range(0x2000, 0x200B))
    class_fix = []
    ccc_fix = []
    lower_fix = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        c = chr(cp)
        flags = (bool(rs.fullmatch(c)), bool(rl.fullmatch(c)), bool(rn.fullmatch(c)),
                 bool(ro.fullmatch(c)))
        assert sum(flags) <= 1, hex(cp)
        want = 1 + flags.index(True) if any(flags) else 0
        cat = lib.utf8proc_category(cp)
        if cp in white:
            have = 1
        elif 1 <= cat <= 5:
            have = 2
        elif 9 <= cat <= 11:
            have = 3
        else:
            have = 4
        if want != have:
            class_fix.append((cp, want))
        # Canonical combining classes: a mark that is new in utf8proc's Unicode is unassigned
        # (class 0, no compositions) for the reference.
        if unicodedata.combining(c) != lib.utf8proc_get_property(cp).contents.combining_class:
            assert unicodedata.combining(c) == 0 and unicodedata.category(c) == 'Cn', hex(cp)
            ccc_fix.append(cp)
        if cp != 0x3A3:
            low = c.lower()
            if low != chr(lib.utf8proc_tolower(cp)):
                lower_fix.append((cp, [ord(x) for x in low]))
    # The final-sigma rule reads Case_Ignorable and Cased. Probe CPython's own tables through
    # str.lower: with c before a final sigma ("c" + SIGMA), the sigma becomes final iff c is cased
    # and not case-ignorable; with "A" + c + SIGMA it becomes final iff c is case-ignorable or
    # cased.
    def final(s):
        return s.lower()[-1] == '\u03c2'

    # NFC quick check, as the reference's unicodedata sees it: text made only of characters with
    # canonical combining class 0 and NFC_Quick_Check=Yes is already NFC. "No": NFC changes the
    # character alone; "Maybe": it can be the second half of a primary composite (Hangul vowel
    # and trailing jamo are composed algorithmically, so they are added by hand).
    maybe = set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith('<'):
            parts = d.split()
            if len(parts) == 2 and unicodedata.normalize('NFC', chr(cp)) == chr(cp):
                maybe.add(int(parts[1], 16))
    nfc_unsafe = ranges(lambda cp: unicodedata.combining(chr(cp)) != 0 or cp in maybe or
                        unicodedata.normalize('NFC', chr(cp)) != chr(cp))
    assert nfc_unsafe[0][0] >= 0x300, nfc_unsafe[0]
    # The NFC_Quick_Check No/Maybe part alone: the rest of nfc_unsafe are marks (class > 0) that
    # NFC leaves alone unless they follow another mark out of order.
    nfc_qc = ranges(lambda cp: cp in maybe or unicodedata.normalize('NFC', chr(cp)) != chr(cp))

    cased_stop = ranges(lambda cp: final(chr(cp) + SIGMA))
    ignorable = ranges(lambda cp: final('A' + chr(cp) + SIGMA) and not final(chr(cp) + SIGMA))

    out = []
    w = out.append
    w('/* Generated by pipeline/tok/gen_unicode_tables.py. Do not edit.')
    w(' * Reference: Python %s, unicodedata %s, regex %s; compared with utf8proc (Unicode %s). */'
      % (sys.version.split()[0], unicodedata.unidata_version, regex.__version__, u8p_version))
    w('#define PL__UNI_PY_UNICODE "%s"' % unicodedata.unidata_version)
    w('#define PL__UNI_UTF8PROC_UNICODE "%s"' % u8p_version)
    w('')
    w('/* Code points whose pre-tokenizer class (PL__CLS_*) differs from the one utf8proc\'s')
    w(' * category gives: {code point, class}. */')
    w('#define PL__UNI_N_CLASS_FIX %d' % len(class_fix))
    w('static const uint32_t pl__uni_class_fix[PL__UNI_N_CLASS_FIX][2] = {')
    for cp, k in class_fix:
        w('    {0x%04X, %d},' % (cp, k))
    w('};')
    w('')
    w('/* Combining marks that are unassigned for the reference: NFC treats them as starters. */')
    w('#define PL__UNI_N_NFC_BREAK %d' % len(ccc_fix))
    w('static const uint32_t pl__uni_nfc_break[PL__UNI_N_NFC_BREAK] = {')
    for i in range(0, len(ccc_fix), 6):
        w('    ' + ' '.join('0x%04X,' % c for c in ccc_fix[i:i + 6]))
    w('};')
    w('')
    w('/* str.lower results that differ from utf8proc_tolower: {code point, n, mapping[3]}. */')
    w('#define PL__UNI_N_LOWER_FIX %d' % len(lower_fix))
    w('#define PL__UNI_LOWER_MAX %d /* code points one str.lower mapping can give */'
      % max([1] + [len(m) for _, m in lower_fix]))
    w('static const uint32_t pl__uni_lower_fix[PL__UNI_N_LOWER_FIX][5] = {')
    for cp, m in lower_fix:
        assert 1 <= len(m) <= 3
        m3 = m + [0] * (3 - len(m))
        w('    {0x%04X, %d, 0x%04X, 0x%04X, 0x%04X},' % (cp, len(m), m3[0], m3[1], m3[2]))
    w('};')
    notes = {
        'cased': 'Cased and not Case_Ignorable (inclusive ranges).',
        'ignorable': 'Case_Ignorable (inclusive ranges).',
        'nfc_unsafe': 'Combining class > 0 or NFC_Quick_Check No/Maybe (inclusive ranges; none\n'
                      ' * below U+0300): text without these is already NFC.',
        'nfc_qc': 'NFC_Quick_Check No or Maybe (inclusive ranges): nfc_unsafe less the marks that\n'
                  ' * are NFC-quick-check Yes.',
    }
    for name, rs_ in (('cased', cased_stop), ('ignorable', ignorable), ('nfc_unsafe', nfc_unsafe),
                      ('nfc_qc', nfc_qc)):
        w('')
        w('/* %s */' % notes[name])
        w('#define PL__UNI_N_%s %d' % (name.upper(), len(rs_)))
        w('static const uint32_t pl__uni_%s[PL__UNI_N_%s][2] = {' % (name, name.upper()))
        for a, b in rs_:
            w('    {0x%04X, 0x%04X},' % (a, b))
        w('};')
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'unicode_tables.inc')
    with open(path, 'w', encoding='ascii') as f:
        f.write('\n'.join(out) + '\n')


if __name__ == '__main__':
    main()
