#!/bin/sh
# Train-step speed: the C trainer (bench_train) against the PyTorch peer (train_peer.py), the same
# model (ViT-Ti/8 at 64x64, width 192, depth 12, heads 3, batch 64, vocabulary 49,408, online-IDF
# loss, AdamW), alternating C, peer, C, peer ... per thread count, medians reported.
#   bench/train.sh [BUILD_DIR] [ROUNDS]     (defaults: build, 3)
# Env: THREADS (default "1 2"), STEPS (timed steps per run, default 10), CORETYPE, PY: see
# bench/steps_vs_torch.sh, which runs both sides and prints the summary.
here=$(cd "$(dirname "$0")" && pwd)
exec "$here/steps_vs_torch.sh" train.sh bench/bench_train train_peer.py 10 \
    "C/Py >= 1.5x img/s at 2 threads" "$@"
