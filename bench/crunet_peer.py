"""PyTorch peer for bench/bench_crunet.c: the same CRU-Net-35-C (stride-2 stem) at 64x64, batch 64,
200 classes, cross-entropy, SGD (momentum 0.9, weight decay 5e-4), one train step per iteration.

    OPENBLAS_CORETYPE=SkylakeX [OMP_WAIT_POLICY=passive] /usr/bin/python3 bench/crunet_peer.py \
        --threads N --steps S

Best configuration per ../shared/BENCHMARKS.md: OPENBLAS_CORETYPE set before the process starts
(bench/crunet.sh does it), OMP_WAIT_POLICY=passive with more than one thread, and
torch.set_num_threads(N) explicitly. Standard modules (nn.Conv2d, nn.BatchNorm2d with eps 1e-3 and
momentum 0.1, i.e. 0.9 running + 0.1 batch); weight sharing by reusing the same nn.Conv2d modules
in every unit of a share set. Prints one line:

    RESULT side=peer threads=N img_s=... img_cpu_s=... step_ms=...

img_cpu_s is images per process CPU second (time.process_time, all threads).
"""
import argparse
import os
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def bn(c):
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.1)


class RX(nn.Module):
    """Pre-activation ResNeXt unit (spec 2.2)."""

    def __init__(self, cin, c, d, groups, stride):
        super().__init__()
        self.bn1, self.conv1 = bn(cin), nn.Conv2d(cin, d, 1, bias=False)
        self.bn2 = bn(d)
        self.conv2 = nn.Conv2d(d, d, 3, stride, 1, groups=groups, bias=False)
        self.bn3, self.conv3 = bn(d), nn.Conv2d(d, c, 1, bias=False)
        self.proj = cin != c or stride != 1
        if self.proj:
            self.sc_bn, self.sc_conv = bn(cin), nn.Conv2d(cin, c, 1, stride, bias=False)

    def forward(self, x):
        h = self.conv1(F.relu(self.bn1(x)))
        h = self.conv2(F.relu(self.bn2(h)))
        h = self.conv3(F.relu(self.bn3(h)))
        sc = self.sc_conv(F.relu(self.sc_bn(x))) if self.proj else x
        return sc + h


class CRU(nn.Module):
    """CRU unit (spec 2.3); conv_a / conv_dw are shared modules, P is used twice in a down unit."""

    def __init__(self, cin, c, m, stride, conv_a, conv_dw, down):
        super().__init__()
        self.down, self.stride = down, stride
        if down:
            self.proj_bn1, self.proj_bn2 = bn(cin), bn(cin)
            self.proj = nn.Conv2d(cin, c, 1, bias=False)
        self.bn1 = bn(c)
        self.conv_a, self.conv_dw = conv_a, conv_dw
        self.bn2, self.conv_b = bn(m), nn.Conv2d(m, m, 1, bias=False)
        self.bn3, self.conv_c = bn(m), nn.Conv2d(m, c, 1, bias=False)

    def forward(self, x):
        if self.down:
            p = self.proj(F.relu(self.proj_bn1(x)))
            sc = F.conv2d(F.relu(self.proj_bn2(x)), self.proj.weight, stride=self.stride)
        else:
            p, sc = x, x
        h = self.conv_a(F.relu(self.bn1(p)))
        h = F.conv2d(h, self.conv_dw.weight, stride=self.stride if self.down else 1, padding=1,
                     groups=h.shape[1])
        h = self.conv_b(F.relu(self.bn2(h)))
        h = self.conv_c(F.relu(self.bn3(h)))
        return sc + h


class CRUNet35C(nn.Module):
    def __init__(self, classes, stem_stride):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, stem_stride, 1, bias=False)
        self.stem_bn = bn(32)
        units = [RX(32, 64, 32, 8, 1), RX(64, 64, 32, 8, 1), RX(64, 64, 32, 8, 1)]
        cin = 64
        for c, m in ((128, 96), (256, 192)):
            conv_a = nn.Conv2d(c, m, 1, bias=False)
            conv_dw = nn.Conv2d(m, m, 3, 1, 1, groups=m, bias=False)
            for u in range(3):
                units.append(CRU(cin, c, m, 2, conv_a, conv_dw, u == 0))
                cin = c
        self.units = nn.Sequential(*units)
        self.head_bn = bn(cin)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(x)))
        x = self.units(x)
        x = F.relu(self.head_bn(x)).mean(dim=(2, 3))
        return self.fc(x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B, H, K = 64, 64, 200
    model = CRUNet35C(K, 2)
    nparams = sum(p.numel() for p in model.parameters())
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    img = torch.randn(B, 3, H, H)
    labels = torch.randint(0, K, (B,))
    times, cpu = [], []
    for s in range(a.steps + 2):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(img), labels)
        loss.backward()
        opt.step()
        t, c = time.perf_counter() - t0, time.process_time() - c0
        if s >= 2:
            times.append(t)
            cpu.append(c)
    med, cmed = statistics.median(times), statistics.median(cpu)
    print(f"config: peer crunet35c-s2 {H}x{H} batch {B} classes {K}, {nparams} params, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s), OPENBLAS_CORETYPE="
          f"{os.environ.get('OPENBLAS_CORETYPE', '-')}, OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', '-')}, mkldnn {torch.backends.mkldnn.is_available()}")
    print(f"RESULT side=peer threads={a.threads} img_s={B / med:.2f} img_cpu_s={B / cmed:.2f} "
          f"step_ms={1e3 * med:.1f} loss={loss.item():.4f}")


if __name__ == "__main__":
    main()
