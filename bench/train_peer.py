#!/usr/bin/python3
"""PyTorch peer of the C train-step benchmark (bench/train.sh): the same SuperClass model (the
spec-written ViT of tests/ref/gen_vit_golden.py: CLIP-style ViT, mean pooling over patch tokens,
LayerNorm + Linear head), the online-IDF soft-target loss and AdamW (wd 0.2 on the decayed group),
one full step (zero_grad, forward, loss, backward, optimizer step) per iteration.

Default shape: ViT-Ti/8 at 64x64 (width 192, depth 12, heads 3, MLP 768), batch 64, vocabulary
49,408. Best configuration per ../shared/BENCHMARKS.md: OPENBLAS_CORETYPE (SkylakeX by default)
in the environment before the process starts (the script re-executes itself with it when it is
missing; a value already set is kept), OMP_WAIT_POLICY=passive when threads > 1, and
torch.set_num_threads(N) explicitly. AdamW runs with foreach=True (multi-tensor path).

  /usr/bin/python3 bench/train_peer.py --threads 1 [--steps 10] [--warmup 2] [--json]

Prints one line:  RESULT side=peer threads=N img_s=... gflops=... step_ms=... loss=...
GFLOP/s counts the GEMM/conv FLOPs of forward + backward analytically, with the same formula as
nn_vit_train_gemm_flops() in core/nn/vit.c, so both sides divide the same work.
"""
import argparse
import json
import math
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def ensure_env(threads):
    """OpenBLAS reads its core type and OpenMP its wait policy at load time: set them and
    re-execute before torch is imported (never overriding what the caller already set)."""
    want = {}
    if "OPENBLAS_CORETYPE" not in os.environ:
        want["OPENBLAS_CORETYPE"] = "SkylakeX"
    if threads > 1 and "OMP_WAIT_POLICY" not in os.environ:
        want["OMP_WAIT_POLICY"] = "passive"
    if want and os.environ.get("SC_PEER_REEXEC") != "1":
        env = dict(os.environ, SC_PEER_REEXEC="1", **want)
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def gemm_flops(B, image, patch, D, depth, F, V):
    G = image // patch
    N = G * G + 1
    P = 3.0 * patch * patch
    pe = 2.0 * B * G * G * P * D
    layer = 2.0 * B * N * D * (3 * D + D + 2 * F) + 2.0 * 2.0 * B * N * N * D
    head = 2.0 * B * D * V
    fwd = pe + depth * layer + head
    return fwd + 2.0 * (fwd - pe) + pe


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--image", type=int, default=64)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--width", type=int, default=192)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=49408)
    ap.add_argument("--json", action="store_true", help="also print a JSON line")
    a = ap.parse_args()
    ensure_env(a.threads)

    import torch
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "ref"))
    import gen_vit_golden as ref  # the spec-written model and loss

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = dict(ref.CFG, image=a.image, patch=a.patch, width=a.width, layers=a.depth,
               heads=a.heads, mlp=4 * a.width, vocab=a.vocab, sot=a.vocab - 2, eot=a.vocab - 1,
               batch=a.batch)
    model = ref.Classifier(cfg)
    params = list(model.named_parameters())
    decay = [p for n, p in params if not ref.no_decay(n, p)]
    nodecay = [p for n, p in params if ref.no_decay(n, p)]
    opt = torch.optim.AdamW([{"params": nodecay, "weight_decay": 0.0},
                             {"params": decay, "weight_decay": 0.2}],
                            lr=5e-4, betas=(0.9, 0.98), eps=1e-6, foreach=True)
    g = torch.Generator().manual_seed(1)
    images = torch.randn(a.batch, 3, a.image, a.image, generator=g)
    # token rows like the tokenizer's: SOT, 5..40 ids, EOT, pad 0
    rows = torch.zeros(a.batch, 77, dtype=torch.int64)
    for i in range(a.batch):
        n = int(torch.randint(5, 41, (1,), generator=g))
        ids = torch.randint(1, a.vocab - 2, (n,), generator=g)
        rows[i, 0] = a.vocab - 2
        rows[i, 1:n + 1] = ids
        rows[i, n + 1] = a.vocab - 1

    def step():
        opt.zero_grad(set_to_none=True)
        logits, _ = model(images, {})
        # the reference builds the multi-hot target from the token rows inside the loss
        dense = torch.zeros(a.batch, a.vocab).scatter_(1, rows, 1.0)
        loss = ref.superclass_loss(model, logits, dense)
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    times = []
    loss = float("nan")
    for _ in range(a.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    fl = gemm_flops(a.batch, a.image, a.patch, a.width, a.depth, 4 * a.width, a.vocab)
    res = {"side": "peer", "threads": a.threads, "img_s": a.batch / med, "gflops": fl / med / 1e9,
           "step_ms": med * 1e3, "loss": loss, "steps": a.steps,
           "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
           "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "")}
    print("config: torch %s, threads %d, OPENBLAS_CORETYPE=%s, OMP_WAIT_POLICY=%s, AdamW foreach, "
          "batch %d, %dx%d patch %d, width %d depth %d heads %d, vocab %d"
          % (torch.__version__, torch.get_num_threads(), res["OPENBLAS_CORETYPE"] or "(unset)",
             res["OMP_WAIT_POLICY"] or "(unset)", a.batch, a.image, a.image, a.patch, a.width,
             a.depth, a.heads, a.vocab))
    print("RESULT side=peer threads=%d img_s=%.2f gflops=%.1f step_ms=%.1f loss=%.4f"
          % (a.threads, res["img_s"], res["gflops"], res["step_ms"], loss))
    if a.json:
        print(json.dumps(res))
    if not math.isfinite(loss):
        sys.exit(1)


if __name__ == "__main__":
    main()
