#!/usr/bin/python3
"""Writes the seed corpus of fuzz_safetensors (tests/fuzz/corpus/safetensors/): a few tiny valid
files in the reference writer's layout and truncated/corrupted variants of them.
Run from the repository root: /usr/bin/python3 tests/ref/gen_st_corpus.py"""
import json
import os
import struct

OUT = "tests/fuzz/corpus/safetensors"


def st(tensors, meta=None, pad=True, raw_header=None):
    """tensors: list of (name, dtype, shape, bytes) in layout order."""
    hdr = {}
    if meta is not None:
        hdr["__metadata__"] = meta
    off = 0
    data = b""
    for name, dt, shape, b in tensors:
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        off += len(b)
        data += b
    h = raw_header if raw_header is not None else json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def main():
    os.makedirs(OUT, exist_ok=True)
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    f64 = struct.pack("<3d", 0.5, 1e-300, -2)
    i64 = struct.pack("<2q", 5, -7)
    files = {
        "valid_one.st": st([("w", "F32", [2, 3], f32)]),
        "valid_multi.st": st([("cap_fq", "F64", [1, 3], f64), ("ids", "I64", [2], i64),
                              ("visual.w", "F32", [2, 3], f32), ("s", "F32", [], f32[:4]),
                              ("e", "F32", [0, 4], b""), ("b", "BF16", [2], b"\x80\x3f\x00\x40")],
                             meta={"format": "pt", "config": "{\"width\": 64}"}),
        "valid_empty.st": st([], meta={}),
        "valid_nopad.st": st([("u", "U8", [3], b"\x01\x02\x03")], pad=False),
        "bad_magic.st": st([], raw_header=b"[1,2,3]"),
        "bad_dtype.st": st([("w", "F33", [2, 3], f32)]),
        "bad_span.st": st([("w", "F32", [2, 2], f32)]),
        "bad_rank.st": st([("w", "F32", [1] * 9, f32[:4])]),
        "bad_overflow.st": st([("w", "F32", [4294967296, 4294967296], f32)]),
        "bad_meta.st": st([("w", "F32", [6], f32)], meta={"k": 1}),
        "bad_dup.st": st([], raw_header=b'{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                         b'"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}') + f32[:8],
        "bad_overlap.st": st([], raw_header=b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
                             b'"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}') + f32[:12],
        "bad_hdrlen.st": struct.pack("<Q", 1 << 40) + b"{}",
        "short.st": b"\x02\x00\x00",
    }
    full = files["valid_multi.st"]
    for cut in (8, 20, len(full) // 2, len(full) - 1):
        files["trunc_%d.st" % cut] = full[:cut]
    flip = bytearray(full)
    flip[40] ^= 0x20
    files["flip40.st"] = bytes(flip)
    for name, b in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b)
    print("wrote %d files to %s" % (len(files), OUT))


if __name__ == "__main__":
    main()
