"""Minimal safetensors writer/reader for the golden generators (no `safetensors` package needed).
Layout as the reference writer: u64 LE header length, JSON header padded with spaces to a multiple
of 8, tensors ordered by decreasing itemsize then name (so each one is aligned)."""
import json
import struct

import numpy as np

_DT = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
       np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8"}
_NP = {v: k for k, v in _DT.items()}


def save(path, tensors, metadata=None):
    """tensors: dict name -> numpy array (or torch tensor); metadata: dict str -> str."""
    arrs = {}
    for k, v in tensors.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        arrs[k] = np.ascontiguousarray(v)
    order = sorted(arrs, key=lambda k: (-arrs[k].dtype.itemsize, k))
    hdr = {}
    if metadata:
        hdr["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    off = 0
    for k in order:
        a = arrs[k]
        hdr[k] = {"dtype": _DT[a.dtype], "shape": list(a.shape),
                  "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for k in order:
            f.write(arrs[k].astype(arrs[k].dtype.newbyteorder("<")).tobytes())


def load(path):
    """Returns (dict name -> numpy array, metadata dict)."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    meta = hdr.pop("__metadata__", {})
    out = {}
    for k, v in hdr.items():
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype=_NP[v["dtype"]]).reshape(v["shape"])
    return out, meta
