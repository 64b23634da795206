#!/usr/bin/python3
"""PIL + torchvision peer for bench_decode (issue 4), and the input-set preparation.

  decode_peer.py prepare SHARED_DATA OUTDIR [--per-folder N]
      OUTDIR/corpus: the first N images (default 200) of every folder of ../shared/data/corpus,
                     as stored (JPEG, PNG, WebP)
      OUTDIR/jpeg512, OUTDIR/jpeg1024: those of wallpapers (all 6) + openclipart (first N)
                     re-encoded with PIL so that the longer side is 512 / 1024 (LANCZOS), q90 4:2:0
  decode_peer.py bench [-t SEC] [-r REPS] [-s 64,224] [-m MODES] DIR...
      the usual way: Image.open(BytesIO) -> [draft('RGB', (S, S))] -> convert('RGB') ->
      torchvision RandomResizedCrop(S, scale, bicubic) -> RandomHorizontalFlip -> np.asarray.
      Modes: pil_tv / pil_spec (scale (0.08, 1) / (0.9, 1)), draft_tv / draft_spec (with PIL's
      draft(): DCT-scaled JPEG decode to >= S), eval (Resize(S) + CenterCrop(S)).
Output lines have the same shape as bench_decode's: img_s is images per CPU-second of the process
(time.process_time, torch pinned to 1 thread), wall_img_s the wall-clock rate. Run with Debian's
/usr/bin/python3.
"""
import argparse
import glob
import io
import os
import statistics
import sys
import tarfile
import time

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import PIL
from PIL import Image

EXTS = (".jpg", ".jpeg", ".png", ".webp")


def prepare(shared, out, per_folder):
    corpus = os.path.join(out, "corpus")
    j512 = os.path.join(out, "jpeg512")
    j1024 = os.path.join(out, "jpeg1024")
    for d in (corpus, j512, j1024):
        os.makedirs(d, exist_ok=True)
    for folder in sorted(glob.glob(os.path.join(shared, "corpus", "*"))):
        name = os.path.basename(folder)
        n = 0
        for tpath in sorted(glob.glob(os.path.join(folder, "*.tar"))):
            with tarfile.open(tpath) as t:
                for m in t:
                    if n >= per_folder:
                        break
                    if not m.isfile() or not m.name.endswith(EXTS):
                        continue
                    data = t.extractfile(m).read()
                    base = os.path.basename(m.name)
                    with open(os.path.join(corpus, f"{name}_{base}"), "wb") as f:
                        f.write(data)
                    if name in ("wallpapers", "openclipart"):
                        im = Image.open(io.BytesIO(data)).convert("RGB")
                        for side, d in ((512, j512), (1024, j1024)):
                            w, h = im.size
                            s = side / max(w, h)
                            r = im.resize((max(1, round(w * s)), max(1, round(h * s))),
                                          Image.LANCZOS)
                            stem = os.path.splitext(base)[0]
                            r.save(os.path.join(d, f"{name}_{stem}.jpg"), "JPEG", quality=90)
                    n += 1
    for d in (corpus, j512, j1024):
        print(d, len(os.listdir(d)), "files")


def load(d):
    files = []
    for p in sorted(os.listdir(d)):
        with open(os.path.join(d, p), "rb") as f:
            files.append(f.read())
    return files


def make(mode, size):
    flip = T.RandomHorizontalFlip()
    bic = T.InterpolationMode.BICUBIC
    if mode == "eval":
        tf = T.Compose([T.Resize(size, interpolation=bic), T.CenterCrop(size)])
    else:
        scale = (0.08, 1.0) if mode.endswith("_tv") else (0.9, 1.0)
        tf = T.Compose([T.RandomResizedCrop(size, scale=scale, interpolation=bic), flip])
    draft = mode.startswith("draft")

    def one(b):
        im = Image.open(io.BytesIO(b))
        if draft and im.format == "JPEG":
            im.draft("RGB", (size, size))
        im = im.convert("RGB")
        return np.asarray(tf(im))

    return one


def bench(args):
    torch.set_num_threads(1)
    torch.manual_seed(1234)
    print(f"# decode_peer: 1 thread, PIL {PIL.__version__}, torchvision {torchvision.__version__}, "
          f"bicubic, flip p=0.5, ratio (3/4, 4/3)")
    for d in args.dirs:
        files = load(d)
        set_name = os.path.basename(d.rstrip("/"))
        for size in [int(s) for s in args.s.split(",")]:
            for mode in args.m.split(","):
                fn = make(mode, size)
                errors = 0
                for b in files:  # warm-up pass
                    try:
                        fn(b)
                    except Exception:
                        errors += 1
                rates, wrates = [], []
                for _ in range(args.r):
                    # CPU seconds of the process (one torch thread), as bench_decode measures.
                    t0, w0 = time.process_time(), time.perf_counter()
                    n = 0
                    while True:
                        for b in files:
                            try:
                                fn(b)
                                n += 1
                            except Exception:
                                pass
                        el = time.process_time() - t0
                        if el >= args.t:
                            break
                    rates.append(n / el)
                    wrates.append(n / (time.perf_counter() - w0))
                rates.sort()
                print(f"set={set_name} mode={mode} size={size} files={len(files)} "
                      f"img_s={statistics.median(rates):.1f} min={rates[0]:.1f} "
                      f"max={rates[-1]:.1f} wall_img_s={statistics.median(wrates):.1f} "
                      f"errors={errors}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("shared")
    p.add_argument("out")
    p.add_argument("--per-folder", type=int, default=200)
    b = sub.add_parser("bench")
    b.add_argument("-t", type=float, default=1.0)
    b.add_argument("-r", type=int, default=5)
    b.add_argument("-s", default="64,224")
    b.add_argument("-m", default="pil_tv,pil_spec,draft_tv,draft_spec")
    b.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(a.shared, a.out, a.per_folder)
    else:
        bench(a)


if __name__ == "__main__":
    sys.exit(main())
