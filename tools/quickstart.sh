#!/usr/bin/env bash
# README quick start, command 1: installs what is missing, builds, and runs the main job end to end
# on an embedded default corpus (no downloads beyond Debian packages):
#   sc-synth (deterministic JPEG webdataset shards of shapes, digits and words with captions)
#   -> sc-tok train (an own BPE vocabulary) -> sc-shard (store + ingest)
#   -> sc-datad + sc-traind as background processes (sockets under the output dir), a few minutes
#      of training with progress, checkpoints, clean SIGTERM stop of both
#   -> sc-eval: captions next to predicted tokens, zero-shot accuracy against chance on held-out
#      images.
# Output in ./quickstart-out (or $1). QS_TRAIN_SECONDS (default 180) bounds the training time;
# QS_BUILD (default build) is the build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-quickstart-out}"
tools/install-deps.sh
B="${QS_BUILD:-build}"
[[ -d "$B" ]] || meson setup "$B" >/dev/null
ninja -C "$B" >/dev/null
secs="${QS_TRAIN_SECONDS:-180}"
rm -rf "$out"
mkdir -p "$out/run"
out=$(cd "$out" && pwd)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== 1/6 sc-synth: 6000 training + 600 held-out images with captions"
$B/tools/sc-synth --out "$out/shards" --count 6000 --size 64 --seed 1 --per-shard 1000
$B/tools/sc-synth --out "$out/heldout" --count 600 --size 64 --seed 2 --per-shard 600

echo "== 2/6 sc-tok train: a 1,000-id vocabulary from the training captions"
mkdir -p "$out/tmp"
for t in "$out"/shards/*.tar; do tar -xf "$t" -C "$out/tmp" --wildcards '*.txt'; done
find "$out/tmp" -name '*.txt' | sort | xargs awk '{print}' > "$out/captions.txt"
rm -rf "$out/tmp"
$B/tools/sc-tok train --vocab-size 1000 -o "$out/vocab.txt" "$out/captions.txt"

echo "== 3/6 sc-shard: stores for the training and held-out shards"
$B/tools/sc-shard create "$out/store" --vocab "$out/vocab.txt" >/dev/null
$B/tools/sc-shard ingest "$out/store" --no-progress "$out/shards" | tail -n 2
$B/tools/sc-shard create "$out/heldout-store" --vocab "$out/vocab.txt" >/dev/null
$B/tools/sc-shard ingest "$out/heldout-store" --no-progress --quiet "$out/heldout" >/dev/null

echo "== 4/6 sc-datad (data service) and sc-traind (trainer) in the background"
$B/daemon/sc-datad --config /dev/null --set store.dir="$out/store" --set spool.enabled=false \
    --set socket.data="$out/run/datad.sock" --set socket.control="$out/run/datad-ctl.sock" \
    2> "$out/datad.log" &
pids+=($!); datad=$!
for _ in $(seq 100); do [[ -S "$out/run/datad.sock" ]] && break; sleep 0.1; done
$B/daemon/traind/sc-traind --config /dev/null --set data.socket="$out/run/datad.sock" \
    --set data.vocab="$out/vocab.txt" --set model.backbone=ViT-Mini/8 --set model.image_size=32 \
    --set train.batch=64 --set train.steps=1200 --set train.warmup=60 --set train.lr=0.002 \
    --set train.weight_decay=0.05 --set checkpoint.dir="$out/checkpoints" \
    --set checkpoint.every_steps=300 --set checkpoint.every_minutes=1 \
    --set log.every=50 --set log.control="$out/run/traind-ctl.sock" \
    --set log.metrics="$out/metrics.jsonl" --set log.prometheus="$out/traind.prom" \
    2> >(tee "$out/traind.log" | grep --line-buffered -E "step [0-9]+/|checkpoint|first batch|complete|stopped" >&2) &
pids+=($!); traind=$!
echo "   training for at most ${secs}s (progress every 50 steps; sc-ctl shows the trainer's state)"
start=$SECONDS
shown=0
while kill -0 $traind 2>/dev/null; do
    if (( SECONDS - start >= secs )); then
        echo "== time is up: SIGTERM -> the trainer finishes its step, checkpoints, exits 0"
        kill -TERM $traind
        break
    fi
    if (( !shown && SECONDS - start >= 20 )); then
        $B/tools/sc-ctl --socket "$out/run/traind-ctl.sock" --json status || true
        shown=1
    fi
    sleep 1
done
wait $traind
kill -TERM $datad; wait $datad
pids=()
ckpt=$(ls "$out"/checkpoints/ckpt-*.safetensors | sort | tail -n 1)
echo "== 5/6 stopped cleanly; newest checkpoint: $ckpt"
grep "RESULT" "$out/traind.log" | sed 's/^/   /' || true

echo "== 6/6 sc-eval on the held-out images (never trained on)"
$B/tools/sc-eval tokens --ckpt "$ckpt" --store "$out/heldout-store" --show 8 -k 5 2>/dev/null
$B/tools/sc-eval zeroshot --ckpt "$ckpt" --store "$out/heldout-store" --candidates 10 2>/dev/null
echo "== done: logs, metrics and checkpoints in $out"
