"""Golden tensors for the CRU-Net (tests/crunet/test_crunet_golden.c), from ../shared/spec/crunet.md.

The model here is written from the spec (sections 2.1-2.5 and 6), not copied from any CRU-Net code:
pre-activation ResNeXt units (2.2), CRU units with a shared 1x1 W_a and depthwise 3x3 W_dw per share
set and no BN between them, per-unit BN1/BN2/BN3 and 1x1s W_b, W_c, and the down unit's projection P
used twice behind two BNs (stride 1 for the branch input, the stage stride for the shortcut; the
stride of the branch sits on the depthwise conv) (2.3). BatchNorm: eps 1e-3, running = 0.9 running
+ 0.1 batch with the BIASED batch variance (the MXNet convention of 2.1), so it is written out by
hand instead of using torch.nn.BatchNorm2d (which would store the unbiased variance).

Everything is computed in float64 and stored as float32, so the C float32 implementation is
compared against a reference whose own rounding error is negligible.

Small configuration (names and layout as core/nn/crunet.c, docs/CRUNET.md): 16x16 images, batch 4;
stem 3x3/1 3->6, BN, ReLU, max-pool 3x3/2; stage0 ResNeXt 1 unit C8 D8 g2 (projection, stride 1);
stage1 ResNeXt 1 unit C12 D8 g4 stride 2; stage2 CRU 2 units C16 m12 stride 2 (one share set);
stage3 CRU 4 units C20 m10 stride 1, share sets of 2 units. Heads: FC to 7 classes (file
crunet_fc.safetensors: eval and train forward, loss, BN running statistics after the forward,
every gradient, three SGD steps with momentum 0.9 / weight decay 5e-4 on conv and FC weights /
lr 0.02), and the SuperClass head LN + Linear to a 9-token vocabulary with the IDF-free SuperClass
loss (crunet_sc.safetensors: train forward, loss, every gradient).

Regenerate from the repository root:  /usr/bin/python3 tests/ref/gen_crunet_golden.py
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

OUT = "tests/data/golden"
EPS = 1e-3
MOM = 0.9
B, IMG = 4, 16
STEM = dict(ch=6, k=3, stride=1, pool=True)
# (kind, units, width C, inner D or m, groups, stride, share_every)
STAGES = [("rx", 1, 8, 8, 2, 1, 0), ("rx", 1, 12, 8, 4, 2, 0), ("cru", 2, 16, 12, 1, 2, 0),
          ("cru", 4, 20, 10, 1, 1, 2)]
DT = torch.float64


class Net:
    """Parameters (dict name -> leaf tensor) and buffers (name -> tensor), C naming."""

    def __init__(self, head, classes, g):
        self.head, self.classes = head, classes
        self.p, self.b = {}, {}
        self.g = g
        self.decay = set()
        self._build()

    def conv(self, name, o, cg, k):
        n = name + ".weight"
        self.p[n] = (torch.randn(o, cg, k, k, generator=self.g, dtype=DT) *
                     (2.0 / (cg * k * k)) ** 0.5).requires_grad_()
        self.decay.add(n)

    def bn(self, name, c):
        self.p[name + ".weight"] = (1 + 0.2 * torch.randn(c, generator=self.g, dtype=DT)).requires_grad_()
        self.p[name + ".bias"] = (0.2 * torch.randn(c, generator=self.g, dtype=DT)).requires_grad_()
        self.b[name + ".running_mean"] = 0.3 * torch.randn(c, generator=self.g, dtype=DT)
        self.b[name + ".running_var"] = 0.5 + torch.rand(c, generator=self.g, dtype=DT)

    def _build(self):
        self.conv("stem.conv", STEM["ch"], 3, STEM["k"])
        self.bn("stem.bn", STEM["ch"])
        cin = STEM["ch"]
        for si, (kind, units, c, d, groups, stride, every) in enumerate(STAGES):
            for u in range(units):
                pre = f"stage{si}.unit{u}."
                s = stride if u == 0 else 1
                if kind == "rx":
                    self.bn(pre + "bn1", cin)
                    self.conv(pre + "conv1", d, cin, 1)
                    self.bn(pre + "bn2", d)
                    self.conv(pre + "conv2", d, d // groups, 3)
                    self.bn(pre + "bn3", d)
                    self.conv(pre + "conv3", c, d, 1)
                    if u == 0 and (cin != c or s != 1):
                        self.bn(pre + "sc_bn", cin)
                        self.conv(pre + "sc_conv", c, cin, 1)
                else:
                    if u == 0:
                        self.bn(pre + "proj_bn1", cin)
                        self.bn(pre + "proj_bn2", cin)
                        self.conv(pre + "proj", c, cin, 1)
                    self.bn(pre + "bn1", c)
                    if (u % every == 0) if every else u == 0:
                        sp = f"stage{si}.share{u // every if every else 0}."
                        self.conv(sp + "conv_a", d, c, 1)
                        self.conv(sp + "conv_dw", d, 1, 3)
                    self.bn(pre + "bn2", d)
                    self.conv(pre + "conv_b", d, d, 1)
                    self.bn(pre + "bn3", d)
                    self.conv(pre + "conv_c", c, d, 1)
                cin = c
        self.bn("head.bn", cin)
        k = self.classes
        if self.head == "fc":
            bound = 1 / cin ** 0.5
            self.p["head.fc.weight"] = ((torch.rand(k, cin, generator=self.g, dtype=DT) * 2 - 1) * bound).requires_grad_()
            self.p["head.fc.bias"] = ((torch.rand(k, generator=self.g, dtype=DT) * 2 - 1) * bound).requires_grad_()
            self.decay.add("head.fc.weight")
        else:
            self.p["text_decoder.ln_mlp.weight"] = (1 + 0.2 * torch.randn(cin, generator=self.g, dtype=DT)).requires_grad_()
            self.p["text_decoder.ln_mlp.bias"] = (0.2 * torch.randn(cin, generator=self.g, dtype=DT)).requires_grad_()
            self.p["text_decoder.text_projection.weight"] = (torch.randn(k, cin, generator=self.g, dtype=DT) / cin ** 0.5).requires_grad_()
            self.p["text_decoder.text_projection.bias"] = (0.1 * torch.randn(k, generator=self.g, dtype=DT)).requires_grad_()
            self.decay.add("text_decoder.text_projection.weight")

    # ---- forward ----
    def bnrelu(self, x, name, train):
        g, b = self.p[name + ".weight"], self.p[name + ".bias"]
        rm, rv = self.b[name + ".running_mean"], self.b[name + ".running_var"]
        if train:
            mean = x.mean(dim=(0, 2, 3))
            var = ((x - mean[None, :, None, None]) ** 2).mean(dim=(0, 2, 3))  # biased
            with torch.no_grad():
                rm.mul_(MOM).add_((1 - MOM) * mean)
                rv.mul_(MOM).add_((1 - MOM) * var)
        else:
            mean, var = rm, rv
        y = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + EPS)
        return F.relu(y * g[None, :, None, None] + b[None, :, None, None])

    def w(self, name):
        return self.p[name + ".weight"]

    def forward(self, img, train):
        k = STEM["k"]
        x = F.conv2d(img, self.w("stem.conv"), stride=STEM["stride"], padding=k // 2)
        x = self.bnrelu(x, "stem.bn", train)
        if STEM["pool"]:
            x = F.max_pool2d(x, 3, 2, 1)
        cin = STEM["ch"]
        for si, (kind, units, c, d, groups, stride, every) in enumerate(STAGES):
            for u in range(units):
                pre = f"stage{si}.unit{u}."
                s = stride if u == 0 else 1
                if kind == "rx":
                    h = F.conv2d(self.bnrelu(x, pre + "bn1", train), self.w(pre + "conv1"))
                    h = F.conv2d(self.bnrelu(h, pre + "bn2", train), self.w(pre + "conv2"),
                                 stride=s, padding=1, groups=groups)
                    h = F.conv2d(self.bnrelu(h, pre + "bn3", train), self.w(pre + "conv3"))
                    if u == 0 and (cin != c or s != 1):
                        sc = F.conv2d(self.bnrelu(x, pre + "sc_bn", train), self.w(pre + "sc_conv"),
                                      stride=s)
                    else:
                        sc = x
                    x = sc + h
                else:
                    sp = f"stage{si}.share{u // every if every else 0}."
                    if u == 0:
                        P = self.w(pre + "proj")
                        p = F.conv2d(self.bnrelu(x, pre + "proj_bn1", train), P)
                        sc = F.conv2d(self.bnrelu(x, pre + "proj_bn2", train), P, stride=s)
                    else:
                        p, sc = x, x
                    h = F.conv2d(self.bnrelu(p, pre + "bn1", train), self.w(sp + "conv_a"))
                    h = F.conv2d(h, self.w(sp + "conv_dw"), stride=s, padding=1, groups=d)
                    h = F.conv2d(self.bnrelu(h, pre + "bn2", train), self.w(pre + "conv_b"))
                    h = F.conv2d(self.bnrelu(h, pre + "bn3", train), self.w(pre + "conv_c"))
                    x = sc + h
                cin = c
        x = self.bnrelu(x, "head.bn", train)
        feat = x.mean(dim=(2, 3))
        if self.head == "fc":
            return feat, F.linear(feat, self.p["head.fc.weight"], self.p["head.fc.bias"])
        hl = F.layer_norm(feat, (cin,), self.p["text_decoder.ln_mlp.weight"],
                          self.p["text_decoder.ln_mlp.bias"], 1e-5)
        return feat, F.linear(hl, self.p["text_decoder.text_projection.weight"],
                              self.p["text_decoder.text_projection.bias"])

    def state(self, prefix):
        out = {prefix + k: v.detach().float() for k, v in self.p.items()}
        out.update({prefix + k: v.detach().float() for k, v in self.b.items()})
        return out


def gen_fc(g):
    net = Net("fc", 7, g)
    img = torch.randn(B, 3, IMG, IMG, generator=g, dtype=DT)
    labels = torch.tensor([3, 0, 6, 3], dtype=torch.int64)
    out = net.state("w.")
    init_bufs = {k: v.clone() for k, v in net.b.items()}
    out["input.images"] = img.float()
    out["input.labels"] = labels
    with torch.no_grad():
        _, z = net.forward(img, False)
    out["expect.logits_eval"] = z.float()
    feat, z = net.forward(img, True)
    loss = F.cross_entropy(z, labels)
    loss.backward()
    out["expect.features"] = feat.detach().float()
    out["expect.logits"] = z.detach().float()
    out["expect.loss"] = loss.detach().float().reshape(1)
    out.update({"expect.buf." + k: v.float() for k, v in net.b.items()})
    out.update({"grad." + k: v.grad.float() for k, v in net.p.items()})
    # three SGD steps (torch.optim.SGD semantics) on the same batch, from the weights and running
    # statistics of the file
    for k, v in init_bufs.items():
        net.b[k].copy_(v)
    lr, mom, wd = 0.02, 0.9, 5e-4
    bufs = {}
    losses = []
    for step in range(3):
        for v in net.p.values():
            v.grad = None
        _, z = net.forward(img, True)
        loss = F.cross_entropy(z, labels)
        loss.backward()
        losses.append(loss.item())
        with torch.no_grad():
            for k, v in net.p.items():
                d = v.grad + (wd * v if k in net.decay else 0)
                bufs[k] = d.clone() if step == 0 else mom * bufs[k] + d
                v -= lr * bufs[k]
        if step == 0:
            out.update({"step1." + k: v.detach().float() for k, v in net.p.items()})
    out["steps.loss"] = torch.tensor(losses, dtype=torch.float32)
    out.update(net.state("after."))
    return out


def gen_sc(g):
    V = 9
    net = Net("sc", V, g)
    img = torch.randn(B, 3, IMG, IMG, generator=g, dtype=DT)
    rows = [[0, 2, 5], [1], [2, 3, 7, 8], [4, 5]]
    off = [0]
    ids = []
    for r in rows:
        ids += r
        off.append(len(ids))
    y = torch.zeros(B, V, dtype=DT)
    for i, r in enumerate(rows):
        y[i, r] = 1.0
    t = y / y.sum(1, keepdim=True)  # IDF off: weights 1, L1-normalised multi-hot
    out = net.state("w.")
    out["input.images"] = img.float()
    out["input.label_offsets"] = torch.tensor(off, dtype=torch.int64)
    out["input.label_ids"] = torch.tensor(ids, dtype=torch.int64)
    feat, z = net.forward(img, True)
    loss = -(t * F.log_softmax(z, dim=1)).sum(1).mean()
    loss.backward()
    out["expect.features"] = feat.detach().float()
    out["expect.logits"] = z.detach().float()
    out["expect.loss"] = loss.detach().float().reshape(1)
    out.update({"expect.buf." + k: v.float() for k, v in net.b.items()})
    out.update({"grad." + k: v.grad.float() for k, v in net.p.items()})
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(6)
    meta = {"generator": "tests/ref/gen_crunet_golden.py", "torch": torch.__version__,
            "config": repr(dict(B=B, IMG=IMG, STEM=STEM, STAGES=STAGES, eps=EPS, momentum=MOM))}
    st_io.save(os.path.join(OUT, "crunet_fc.safetensors"), gen_fc(g), meta)
    st_io.save(os.path.join(OUT, "crunet_sc.safetensors"), gen_sc(g), meta)
    print("wrote", OUT + "/crunet_{fc,sc}.safetensors")


if __name__ == "__main__":
    main()
