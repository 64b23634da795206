#!/usr/bin/python3
"""Golden tensors for the C ViT + SuperClass loss + AdamW, computed with PyTorch.

Written from ../shared/spec/superclass.md (sections 2-4), not from OpenCLIP: a CLIP-style ViT
(conv patch embed without bias, class token prepended, learnable position embedding, ln_pre,
pre-norm blocks with torch.nn.MultiheadAttention and exact GELU, ln_post on all tokens, mean over
the patch tokens), the head (LayerNorm + Linear to the vocabulary), the online-IDF soft-target
cross-entropy, and AdamW with the warmup+cosine schedule. Parameter names are OpenCLIP's
state_dict names, so the weight file loads into either side without renaming.

Tiny config: 32x32 images, patch 8 (4x4 grid, 17 tokens), width 64, 2 layers, 2 heads (head_dim
32: the heads = width/64 rule is for the presets; attention scales by 1/sqrt(head_dim)), MLP 256,
vocabulary 1000 with SOT=998, EOT=999, pad 0, batch 4.

Outputs (tests/data/golden/):
  vit_tiny_weights.safetensors  initial parameters + buffers cap_fq [1,V] F64, num_samples [1,1] F64
  vit_tiny_io.safetensors       inputs (uint8 NHWC source images, mean/std, normalised NCHW float
                                images, token rows, label CSR), step-0 expectations (activations,
                                logits, pooled features, IDF weights, targets, loss, buffers after
                                the update) and grad.<name> for every parameter
  vit_tiny_steps.safetensors    5 AdamW steps on the same batch: lr and loss per step, every
                                parameter (and the buffers) after the 5th step
  loss_worked.safetensors       the spec section 2.5 worked example (V=49408, B=2), two steps

Regenerate from the repository root:  /usr/bin/python3 tests/ref/gen_vit_golden.py
"""
import json
import math
import os
import sys
from collections import OrderedDict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

OUT = "tests/data/golden"
CFG = dict(image=32, patch=8, width=64, layers=2, heads=2, mlp=256, vocab=1000, sot=998, eot=999,
           ctx=77, batch=4, ln_eps=1e-5, base_lr=1e-3, warmup=2, total=5, wd=0.2,
           beta1=0.9, beta2=0.98, adam_eps=1e-6, steps=5, seed=0)
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)


class Block(nn.Module):
    """Pre-norm residual block: x + MHA(LN1(x)); x + FC2(GELU(FC1(LN2(x))))."""

    def __init__(self, w, heads, hidden, eps):
        super().__init__()
        self.ln_1 = nn.LayerNorm(w, eps=eps)
        self.attn = nn.MultiheadAttention(w, heads, batch_first=True)
        self.ln_2 = nn.LayerNorm(w, eps=eps)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(w, hidden)), ("gelu", nn.GELU()), ("c_proj", nn.Linear(hidden, w))]))

    def forward(self, x):
        h = self.ln_1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]
        return x + self.mlp(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self, w, layers, heads, hidden, eps):
        super().__init__()
        self.resblocks = nn.ModuleList([Block(w, heads, hidden, eps) for _ in range(layers)])


class Visual(nn.Module):
    def __init__(self, c):
        super().__init__()
        w, g = c["width"], c["image"] // c["patch"]
        self.conv1 = nn.Conv2d(3, w, kernel_size=c["patch"], stride=c["patch"], bias=False)
        self.class_embedding = nn.Parameter(w ** -0.5 * torch.randn(w))
        self.positional_embedding = nn.Parameter(w ** -0.5 * torch.randn(g * g + 1, w))
        self.ln_pre = nn.LayerNorm(w, eps=c["ln_eps"])
        self.transformer = Transformer(w, c["layers"], c["heads"], c["mlp"], c["ln_eps"])
        self.ln_post = nn.LayerNorm(w, eps=c["ln_eps"])

    def forward(self, img, acts):
        x = self.conv1(img)                      # [B, w, g, g]
        x = x.flatten(2).transpose(1, 2)         # [B, g*g, w], token k = h*g + w (row-major)
        cls = self.class_embedding.expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding
        x = self.ln_pre(x)
        acts["ln_pre"] = x
        for i, blk in enumerate(self.transformer.resblocks):
            x = blk(x)
            acts["block.%d" % i] = x
        x = self.ln_post(x)
        return x[:, 1:].mean(dim=1)              # mean over patch tokens, class token left out


class Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.ln_mlp = nn.LayerNorm(c["width"], eps=c["ln_eps"])
        self.text_projection = nn.Linear(c["width"], c["vocab"])


class Classifier(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.visual = Visual(c)
        self.text_decoder = Head(c)
        self.register_buffer("cap_fq", torch.zeros(1, c["vocab"], dtype=torch.float64))
        self.register_buffer("num_samples", torch.zeros(1, 1, dtype=torch.float64))

    def forward(self, img, acts):
        pooled = self.visual(img, acts)
        return self.text_decoder.text_projection(self.text_decoder.ln_mlp(pooled)), pooled


def superclass_loss(model, logits, labels_dense, out=None):
    """Spec section 2: update the online IDF with the current batch first, then weights
    ln((n + 1/B) / (cap_fq + 1/B)) in fp64 cast to fp32, L1-normalised targets (eps 1e-12), soft-target
    cross-entropy averaged over the batch."""
    b = labels_dense.shape[0]
    with torch.no_grad():
        model.cap_fq += (labels_dense.sum(dim=0, keepdim=True) / b).float()  # fp32 fraction, fp64 sum
        model.num_samples += 1
        w = torch.log((model.num_samples + 1.0 / b) / (model.cap_fq + 1.0 / b)).float()
        target = F.normalize(labels_dense * w.to(labels_dense.dtype), p=1, dim=1, eps=1e-12)
    loss = -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
    if out is not None:
        out["idf_weight"] = w[0]
        out["targets"] = target
    return loss


def lr_at(s, c):
    if s < c["warmup"]:
        return c["base_lr"] * (s + 1) / c["warmup"]
    return 0.5 * (1 + math.cos(math.pi * (s - c["warmup"]) / (c["total"] - c["warmup"]))) * c["base_lr"]


def no_decay(name, p):
    return p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name


def make_rows(c, g):
    """Token rows like the tokenizer's: SOT, ids, EOT, pad 0; one row overlong (truncated with EOT
    forced at position 76, so it has no pad). Shared ids across rows make the IDF weights differ."""
    v, ctx = c["vocab"], c["ctx"]
    common = [320, 539]                               # in every caption but one
    lens = [5, 12, 0, 90]
    rows = torch.zeros(c["batch"], ctx, dtype=torch.int64)
    for i, n in enumerate(lens):
        ids = torch.randint(1, v - 2, (n,), generator=g).tolist()
        if i != 2:
            ids = common + ids
        if i == 1:
            ids += ids[:3]                            # duplicates collapse in the label set
        seq = [c["sot"]] + ids + [c["eot"]]
        if len(seq) > ctx:
            seq = seq[:ctx]
            seq[ctx - 1] = c["eot"]
        rows[i, :len(seq)] = torch.tensor(seq)
    return rows


def labels_from_rows(rows, v):
    offs, ids = [0], []
    dense = torch.zeros(rows.shape[0], v, dtype=torch.float32)
    for r in rows:
        u = sorted(set(r.tolist()))
        ids += u
        offs.append(len(ids))
        dense[len(offs) - 2, u] = 1.0
    return torch.tensor(offs, dtype=torch.int64), torch.tensor(ids, dtype=torch.int64), dense


def init_weights(model):
    """Spec 3.4 defaults, then every LayerNorm and bias perturbed so the golden test exercises the
    affine terms (all-ones/zeros would hide a swapped weight and bias)."""
    with torch.no_grad():
        nn.init.normal_(model.text_decoder.text_projection.weight, std=CFG["width"] ** -0.5)
        for name, p in model.named_parameters():
            if "ln" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))


def gen_vit(c):
    torch.manual_seed(c["seed"])
    model = Classifier(c)
    init_weights(model)
    params = OrderedDict((n, p) for n, p in model.named_parameters())
    weights = OrderedDict((n, p.detach().clone()) for n, p in params.items())
    weights["cap_fq"] = model.cap_fq.clone()
    weights["num_samples"] = model.num_samples.clone()

    g = torch.Generator().manual_seed(1234)
    img_u8 = torch.randint(0, 256, (c["batch"], c["image"], c["image"], 3), dtype=torch.uint8,
                           generator=g)
    mean = torch.tensor(MEAN, dtype=torch.float32)
    std = torch.tensor(STD, dtype=torch.float32)
    # ToTensor (uint8 HWC -> float CHW / 255) then Normalize, as torchvision does it in fp32.
    images = ((img_u8.permute(0, 3, 1, 2).float().div(255.0)) - mean[:, None, None]) / std[:, None, None]
    rows = make_rows(c, g)
    offs, ids, dense = labels_from_rows(rows, c["vocab"])

    decay = [p for n, p in params.items() if not no_decay(n, p)]
    nodecay = [p for n, p in params.items() if no_decay(n, p)]
    opt = torch.optim.AdamW([{"params": nodecay, "weight_decay": 0.0},
                             {"params": decay, "weight_decay": c["wd"]}],
                            lr=c["base_lr"], betas=(c["beta1"], c["beta2"]), eps=c["adam_eps"])
    io = OrderedDict()
    io["input.images_u8"] = img_u8
    io["input.mean"] = mean
    io["input.std"] = std
    io["input.images"] = images
    io["input.tokens"] = rows
    io["input.label_offsets"] = offs
    io["input.label_ids"] = ids
    losses, lrs = [], []
    for s in range(c["steps"]):
        lr = lr_at(s, c)
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad(set_to_none=False)
        acts, extra = {}, {}
        logits, pooled = model(images, acts)
        loss = superclass_loss(model, logits, dense, extra if s == 0 else None)
        loss.backward()
        if s == 0:
            for k, v in acts.items():
                io["expect.act." + k] = v.detach().clone()
            io["expect.logits"] = logits.detach().clone()
            io["expect.pooled"] = pooled.detach().clone()
            io["expect.idf_weight"] = extra["idf_weight"]
            io["expect.targets"] = extra["targets"]
            io["expect.loss"] = loss.detach().reshape(1).clone()
            io["expect.cap_fq"] = model.cap_fq.clone()
            io["expect.num_samples"] = model.num_samples.clone()
            for n, p in params.items():
                io["grad." + n] = p.grad.detach().clone()
        losses.append(loss.item())
        lrs.append(lr)
        opt.step()
    steps = OrderedDict((n, p.detach().clone()) for n, p in params.items())
    steps["cap_fq"] = model.cap_fq.clone()
    steps["num_samples"] = model.num_samples.clone()
    steps["steps.loss"] = torch.tensor(losses, dtype=torch.float32)
    steps["steps.lr"] = torch.tensor(lrs, dtype=torch.float64)

    meta = {"generator": "tests/ref/gen_vit_golden.py", "torch": torch.__version__,
            "config": json.dumps(c, sort_keys=True),
            "no_decay": json.dumps(sorted(n for n, p in params.items() if no_decay(n, p))),
            "notes": "attention scale 1/sqrt(head_dim=32); GELU exact erf; fp32; "
                     "images = (u8/255 - mean)/std in fp32, NCHW"}
    st_io.save(os.path.join(OUT, "vit_tiny_weights.safetensors"), weights, meta)
    st_io.save(os.path.join(OUT, "vit_tiny_io.safetensors"), io, meta)
    st_io.save(os.path.join(OUT, "vit_tiny_steps.safetensors"), steps, meta)
    print("vit: loss step0 %.7f, losses %s" % (losses[0], ["%.6f" % x for x in losses]))
    print("vit: params %d (%d tensors), label nnz %d"
          % (sum(p.numel() for p in params.values()), len(params), len(ids)))


def gen_worked(c):
    """Spec 2.5: V=49408, B=2, step 1 (and step 2 on the same batch). Logits are 0 except a few
    set values, stored sparsely so the file stays small; the C side densifies them.
    Computed in float64 after the fp32 IDF weights (the spec's cast): with V = 49,408 an fp32
    log-sum-exp is only good to a few 1e-6 relative in either implementation (torch's own fp32
    result is 1.9e-5 off in the loss), so the exact value is the reference and the C test states
    its fp32 tolerance."""
    v, b = 49408, 2
    sets = [[0, 320, 539, 1125, 2368, 49406, 49407], [0, 320, 1929, 49406, 49407]]
    offs = torch.tensor([0, len(sets[0]), len(sets[0]) + len(sets[1])], dtype=torch.int64)
    ids = torch.tensor(sets[0] + sets[1], dtype=torch.int64)
    dense = torch.zeros(b, v, dtype=torch.float64)
    for i, s in enumerate(sets):
        dense[i, s] = 1.0
    # sparse logits: row, col, value
    lr_ = [(0, 539, 2.0), (0, 1125, -1.0), (0, 7, 3.5), (0, 49407, 1.25),
           (1, 1929, 0.5), (1, 320, -2.0), (1, 49000, 4.0)]
    logits = torch.zeros(b, v, dtype=torch.float64)
    for r, col, val in lr_:
        logits[r, col] = val
    logits.requires_grad_(True)

    class Bufs:
        pass
    m = Bufs()
    m.cap_fq = torch.zeros(1, v, dtype=torch.float64)
    m.num_samples = torch.zeros(1, 1, dtype=torch.float64)
    out = OrderedDict()
    out["input.label_offsets"] = offs
    out["input.label_ids"] = ids
    out["input.logit_rows"] = torch.tensor([x[0] for x in lr_], dtype=torch.int64)
    out["input.logit_cols"] = torch.tensor([x[1] for x in lr_], dtype=torch.int64)
    out["input.logit_vals"] = torch.tensor([x[2] for x in lr_], dtype=torch.float32)
    probe = torch.tensor([0, 7, 320, 539, 1125, 1929, 2368, 49000, 49406, 49407, 5], dtype=torch.int64)
    out["probe.cols"] = probe
    for step in (1, 2):
        extra = {}
        loss = superclass_loss(m, logits, dense, extra)
        (grad,) = torch.autograd.grad(loss, logits)
        out["step%d.loss" % step] = loss.detach().reshape(1)   # F64
        out["step%d.idf_weight" % step] = extra["idf_weight"][probe]           # F32 (spec cast)
        out["step%d.targets" % step] = extra["targets"][:, probe]              # F64
        out["step%d.dlogits" % step] = grad[:, probe]
        out["step%d.num_samples" % step] = m.num_samples.clone()
        out["step%d.cap_fq" % step] = m.cap_fq[0, probe].clone()
        if step == 1:
            t = extra["targets"]
            assert abs(t[0, 539].item() - 1 / 3) < 1e-7 and abs(t[1, 1929].item() - 1) < 1e-7
            assert t[0, 0].item() == 0 and t[0, 49406].item() == 0
            assert abs(extra["idf_weight"][1929].item() - math.log(1.5)) < 1e-7
    meta = {"generator": "tests/ref/gen_vit_golden.py", "torch": torch.__version__,
            "config": json.dumps({"vocab": v, "batch": b, "steps": 2,
                                  "logits": "zero except input.logit_rows/cols/vals"}),
            "notes": "spec superclass.md 2.5 worked example; probe.cols selects the stored columns"}
    st_io.save(os.path.join(OUT, "loss_worked.safetensors"), out, meta)
    print("worked: loss step1 %.7f step2 %.7f" % (out["step1.loss"].item(), out["step2.loss"].item()))


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    gen_vit(CFG)
    gen_worked(CFG)
    for f in sorted(os.listdir(OUT)):
        print("%8d %s" % (os.path.getsize(os.path.join(OUT, f)), f))


if __name__ == "__main__":
    main()
