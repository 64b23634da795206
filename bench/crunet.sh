#!/bin/sh
# CRU-Net train-step speed: the C model (bench_crunet) against the PyTorch peer (crunet_peer.py),
# the same network (crunet35c with the stride-2 stem, 64x64, batch 64, 200 classes,
# cross-entropy, SGD momentum 0.9 / weight decay 5e-4), alternating C, peer, C, peer ... per
# thread count, medians reported.
#   bench/crunet.sh [BUILD_DIR] [ROUNDS]     (defaults: build, 3)
# Env: THREADS (default "1 2"), STEPS (timed steps per run, default 5), CORETYPE, PY: see
# bench/steps_vs_torch.sh, which runs both sides and prints the summary.
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/steps_vs_torch.sh" crunet.sh bench/bench_crunet crunet_peer.py 5 \
    "C/Py >= 1.5x img/s (wall); img per CPU second is the load-robust view" "$@"
