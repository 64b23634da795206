#!/bin/bash
# Data-parallel scaling of sc-traind (issue 8): images/s per rank with 1 rank and with 2 ranks at
# the same per-rank batch, on this machine, memory-fed (debug.memory_fed: the batch ring is filled
# once and replayed, so the data path is not measured), and the share of step time spent in the
# collectives (the IDF counts/flags + loss reduce, the backward hook that starts and progresses the
# gradient buckets, and the wait for the gradient all-reduce after the backward).
#   bench/scaling.sh [BUILD_DIR] [ROUNDS]          (defaults: build, 3)
# Env: MODEL (ViT-Ti/8), SIZE (64), BATCH (per rank, 16), STEPS (timed steps, 12), BUCKET_MB (25),
#      STORE (a store to read; default: built from ../shared/data/corpus/emoji-google).
# Every rank runs with train.threads=1, so 2 ranks use 2 cores' worth of compute; on a loaded or
# 2-vCPU machine the wall-clock figures suffer, so per-CPU-second rates (process CPU time over the
# timed steps, all threads) are reported too. Rounds alternate 1 rank, 2 ranks (overlap), 2 ranks
# (no overlap); medians over the rounds.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${1:-build}
ROUNDS=${2:-3}
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
TRAIND=$BUILD/daemon/traind/sc-traind
SHARD=$BUILD/tools/sc-shard
MODEL=${MODEL:-ViT-Ti/8}
SIZE=${SIZE:-64}
BATCH=${BATCH:-16}
STEPS=${STEPS:-12}
BUCKET_MB=${BUCKET_MB:-25}
SHARED=${SC_SHARED_DATA:-$root/../shared/data}
command -v mpirun >/dev/null || { echo "scaling.sh: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
[ -x "$TRAIND" ] || { echo "scaling.sh: $TRAIND not built" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d /tmp/sc-scaling.XXXXXX)
trap 'rm -rf "$W"' EXIT
STORE=${STORE:-}
if [ -z "$STORE" ]; then
    STORE=$W/st
    "$SHARD" create "$STORE" --vocab "$SHARED/tokenizer/bpe_simple_vocab_16e6.txt.gz" \
        --verify header >/dev/null && "$SHARD" ingest "$STORE" --no-progress --quiet \
        "$SHARED/corpus/emoji-google" >/dev/null || { echo "scaling.sh: cannot build a store" >&2; exit 1; }
fi
COMMON=(--config /dev/null --store "$STORE" --set model.backbone="$MODEL"
        --set model.image_size="$SIZE" --set train.batch="$BATCH" --set train.steps=$((STEPS + 1))
        --set train.threads=1 --set data.prefetch=2 --set debug.memory_fed=true
        --set log.control= --set log.every=1000 --set checkpoint.every_steps=0
        --set checkpoint.every_minutes=0 --set checkpoint.resume=false
        --set dist.bucket_mb="$BUCKET_MB")

# run NP OVERLAP TAG: one mpirun job; appends each rank's RESULT fields to $W/TAG.txt
run() {
    local np=$1 ov=$2 tag=$3
    rm -rf "$W/ck"
    mpirun --oversubscribe -np "$np" -x OPENBLAS_NUM_THREADS "$TRAIND" "${COMMON[@]}" \
        --set dist.overlap="$ov" --set checkpoint.dir="$W/ck" >"$W/out.txt" 2>"$W/log.txt" ||
        { cat "$W/log.txt" "$W/out.txt" >&2; echo "scaling.sh: $tag failed" >&2; exit 1; }
    grep -o 'RESULT .*' "$W/log.txt" >>"$W/$tag.txt"
}
echo "scaling.sh: $MODEL at ${SIZE}px, per-rank batch $BATCH, $STEPS timed steps, bucket ${BUCKET_MB} MB, $ROUNDS rounds ($(nproc) CPUs)"
for r in $(seq "$ROUNDS"); do
    run 1 true one
    run 2 true two
    run 2 false two_nov
done
/usr/bin/python3 - "$W" "$BATCH" <<'PY'
import statistics as st, sys
w, b = sys.argv[1], int(sys.argv[2])
def load(tag):
    rows = []
    for line in open(f"{w}/{tag}.txt"):
        kv = dict(x.split("=", 1) for x in line.split()[1:])
        rows.append({k: float(v) for k, v in kv.items()})
    return rows
def summary(tag):
    rows = load(tag)
    # this rank's images over the timed run (the first step is start-up: RESULT counts steps-1)
    img = [r["img_s"] for r in rows]
    cpu = [(r["steps"] - 1) * b / r["cpu_s"] if r["cpu_s"] > 0 else 0 for r in rows]
    comm = [(r["small_s"] + r["hook_s"] + r["wait_s"]) / r["run_s"] for r in rows]
    wait = [r["wait_s"] / r["run_s"] for r in rows]
    return st.median(img), st.median(cpu), st.median(comm), st.median(wait)
one, two, nov = summary("one"), summary("two"), summary("two_nov")
print(f"{'':28s} {'img/s/rank':>11s} {'img/CPU-s/rank':>15s} {'collectives':>12s} {'grad wait':>10s}")
for name, s in (("1 rank", one), ("2 ranks, overlap", two), ("2 ranks, no overlap", nov)):
    print(f"{name:28s} {s[0]:11.2f} {s[1]:15.2f} {100*s[2]:11.1f}% {100*s[3]:9.1f}%")
print(f"scaling efficiency 1 -> 2 ranks (per-rank img/s, 2 ranks / 1 rank): wall {two[0]/one[0]:.3f}, "
      f"per CPU-second {two[1]/one[1]:.3f} (no overlap: {nov[0]/one[0]:.3f}, {nov[1]/one[1]:.3f})")
PY
