#!/usr/bin/python3
"""Goldens for tests/image (run with Debian's python3: PIL 9.4, torchvision 0.14).

  /usr/bin/python3 tests/ref/gen_image_golden.py tests/data/golden

image_resample.bin: small RGB images resized by PIL Image.resize(size, BICUBIC|BILINEAR, box=...).
image_rrc.bin: torchvision RandomResizedCrop.get_params boxes, with torch's random draws replaced by
  a given stream of uniforms (scale/ratio: float32 a + (b - a) * u; randint(lo, hi): lo + floor(u *
  (hi - lo))), so the C implementation can be fed the same stream.
All integers little-endian; layouts are in tests/image/test_image_augment.c.
"""
import math
import random
import struct
import sys

import numpy as np
import torch
import torchvision.transforms.transforms as TT
from PIL import Image

out_dir = sys.argv[1] if len(sys.argv) > 1 else "tests/data/golden"
rng = np.random.default_rng(1234)


def make_img(w, h):
    # smooth gradients plus noise plus a hard edge: exercises negative lobes and clipping
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255.0 / max(w - 1, 1))
    g = (y * 255.0 / max(h - 1, 1))
    b = ((x + y) % 7) * 36.0
    img = np.stack([r, g, b], -1) + rng.normal(0, 20, (h, w, 3))
    img[:, : w // 3, 1] = 255
    return np.clip(img, 0, 255).astype(np.uint8)


CASES = [
    # (src_w, src_h, out_w, out_h, interp, box or None)
    (41, 29, 16, 12, 0, None),
    (41, 29, 64, 48, 0, None),
    (41, 29, 16, 12, 1, None),
    (41, 29, 64, 48, 1, None),
    (57, 41, 7, 5, 0, None),
    (57, 41, 57, 20, 0, None),   # vertical only
    (57, 41, 30, 41, 0, None),   # horizontal only
    (40, 30, 20, 30, 0, (3, 5, 37, 25)),
    (40, 30, 13, 11, 0, (2.5, 1.25, 30.75, 27.5)),
    (40, 30, 13, 11, 1, (2.5, 1.25, 30.75, 27.5)),
    (24, 20, 80, 72, 0, None),
    (90, 70, 32, 32, 0, (11, 6, 80, 65)),
    (1, 1, 4, 4, 0, None),
]

with open(f"{out_dir}/image_resample.bin", "wb") as f:
    f.write(b"SCRS" + struct.pack("<II", 1, len(CASES)))
    for (sw, sh, ow, oh, interp, box) in CASES:
        src = make_img(sw, sh)
        im = Image.fromarray(src, "RGB")
        bx = box if box is not None else (0, 0, sw, sh)
        res = Image.BICUBIC if interp == 0 else Image.BILINEAR
        out = np.asarray(im.resize((ow, oh), res, box=bx))
        f.write(struct.pack("<5I4d", sw, sh, ow, oh, interp, *[float(v) for v in bx]))
        f.write(src.tobytes())
        f.write(out.tobytes())


class FakeTorch:
    """torch, except that empty(1).uniform_ and randint read a given stream of uniforms."""

    def __init__(self, us):
        self.us = us
        self.n = 0

    def next(self):
        u = self.us[self.n]
        self.n += 1
        return u

    def __getattr__(self, name):
        return getattr(torch, name)

    def empty(self, *a, **k):
        fake = self

        class E:
            def uniform_(self, a, b):
                u = fake.next()
                return torch.tensor([float(a) + (float(b) - float(a)) * u], dtype=torch.float32)

        return E()

    def randint(self, lo, hi, size):
        u = self.next()
        return torch.tensor([lo + int(math.floor(u * (hi - lo)))])


class FakeImg:
    pass


real_torch = TT.torch
r = random.Random(99)
cases = []
for k in range(250):
    if k < 40:
        w, h = r.choice([(1, 1), (2, 3), (1000, 10), (10, 1000), (5, 4), (640, 480), (64, 64)])
    else:
        w, h = r.randint(1, 2000), r.randint(1, 2000)
    scale = r.choice([(0.08, 1.0), (0.9, 1.0), (0.4, 1.0), (1.0, 1.0)])
    ratio = r.choice([(3 / 4, 4 / 3), (0.5, 2.0), (1.0, 1.0)])
    us = [r.random() for _ in range(24)]
    fake = FakeTorch(us)
    TT.torch = fake
    try:
        img = Image.new("RGB", (w, h))
        i, j, hh, ww = TT.RandomResizedCrop.get_params(img, list(scale), list(ratio))
    finally:
        TT.torch = real_torch
    cases.append((w, h, scale, ratio, us, fake.n, (i, j, hh, ww)))

with open(f"{out_dir}/image_rrc.bin", "wb") as f:
    f.write(b"SCRR" + struct.pack("<II", 1, len(cases)))
    for (w, h, scale, ratio, us, used, box) in cases:
        f.write(struct.pack("<II4dI", w, h, scale[0], scale[1], ratio[0], ratio[1], len(us)))
        f.write(struct.pack(f"<{len(us)}d", *us))
        f.write(struct.pack("<I4i", used, *box))
print("wrote", out_dir)

# Eval mode end to end: torchvision Resize(S) + CenterCrop(S) on a small PNG that the C test decodes.
import torchvision.transforms as T  # noqa: E402

src = make_img(45, 31)
Image.fromarray(src, "RGB").save(f"{out_dir}/image_eval.png")
EVAL = [(16, 0), (24, 1), (31, 0), (8, 0)]
with open(f"{out_dir}/image_eval.bin", "wb") as f:
    f.write(b"SCEV" + struct.pack("<II", 1, len(EVAL)))
    for (S, interp) in EVAL:
        mode = T.InterpolationMode.BICUBIC if interp == 0 else T.InterpolationMode.BILINEAR
        img = Image.open(f"{out_dir}/image_eval.png").convert("RGB")
        out = np.asarray(T.CenterCrop(S)(T.Resize(S, interpolation=mode)(img)))
        assert out.shape == (S, S, 3)
        f.write(struct.pack("<II", S, interp))
        f.write(out.tobytes())

# A lossy WebP (chroma-subsampled) for the crop-window decoding test.
Image.fromarray(make_img(64, 48), "RGB").save(f"{out_dir}/image_lossy.webp", "WEBP", quality=80)
