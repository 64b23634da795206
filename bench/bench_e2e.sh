#!/usr/bin/env bash
# End-to-end trainer throughput: sc-traind fed by sc-datad over its socket, versus fed from an
# in-process store reader, versus fed from memory (debug.memory_fed: the same batches replayed, no
# data path at all). Prints images/s and the data-wait fraction (time the training loop waited for
# a batch / wall time, first batch excluded) of each, and the ratio to the memory-fed run.
# Target: data wait < 2% when fed by sc-datad.
#
#   bench/bench_e2e.sh [BUILD_DIR]
# Environment: MODEL (ViT-Ti/16), SIZE (112), BATCH (32), STEPS (40), THREADS (trainer, 0 = all),
#   WORKERS (sc-datad decode workers, 1), SRC_SIZE (synthetic JPEG side, 256), COUNT (3000),
#   PREFETCH (3), REPEAT (2: runs per mode, the best is kept).
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
MODEL=${MODEL:-ViT-Ti/16}; SIZE=${SIZE:-112}; BATCH=${BATCH:-32}; STEPS=${STEPS:-40}
THREADS=${THREADS:-0}; WORKERS=${WORKERS:-1}; SRC_SIZE=${SRC_SIZE:-256}; COUNT=${COUNT:-3000}
PREFETCH=${PREFETCH:-3}; REPEAT=${REPEAT:-2}
W=$(mktemp -d /tmp/bench-e2e.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT
"$B/tools/sc-synth" --out "$W/shards" --count "$COUNT" --size "$SRC_SIZE" 2>/dev/null
for t in "$W"/shards/*.tar; do tar -xf "$t" -C "$W/shards" --wildcards '*.txt'; done
find "$W/shards" -name '*.txt' | sort | xargs awk '{print}' > "$W/captions.txt"
"$B/tools/sc-tok" train --vocab-size 2000 -o "$W/vocab.txt" "$W/captions.txt" >/dev/null 2>&1
"$B/tools/sc-shard" create "$W/st" --vocab "$W/vocab.txt" >/dev/null
"$B/tools/sc-shard" ingest "$W/st" --no-progress --quiet "$W"/shards/*.tar >/dev/null
COMMON=(--config /dev/null --set model.backbone="$MODEL" --set model.image_size="$SIZE"
        --set train.batch="$BATCH" --set train.steps="$STEPS" --set train.threads="$THREADS"
        --set data.prefetch="$PREFETCH" --set log.control= --set checkpoint.every_steps=0
        --set checkpoint.every_minutes=0 --set log.every=1000000)
run() { # mode -> "img_s data_wait"
    local mode=$1 best="0 0"
    for r in $(seq "$REPEAT"); do
        rm -rf "$W/ck"
        local src=()
        case $mode in
            memory) src=(--store "$W/st" --set debug.memory_fed=true) ;;
            store) src=(--store "$W/st") ;;
            datad) src=(--set data.socket="$W/d.sock" --set data.vocab="$W/vocab.txt") ;;
        esac
        "$B/daemon/traind/sc-traind" "${COMMON[@]}" "${src[@]}" --set checkpoint.dir="$W/ck" \
            2> "$W/traind-$mode.log" || { cat "$W/traind-$mode.log" >&2; exit 1; }
        local line; line=$(grep RESULT "$W/traind-$mode.log")
        local ips; ips=$(echo "$line" | sed 's/.*img_s=\([0-9.]*\).*/\1/')
        local dw; dw=$(echo "$line" | sed 's/.*data_wait=\([0-9.]*\).*/\1/')
        if awk -v a="$ips" -v b="${best% *}" 'BEGIN { exit !(a > b) }'; then best="$ips $dw"; fi
    done
    echo "$best"
}
"$B/daemon/sc-datad" --config /dev/null --set store.dir="$W/st" --set spool.enabled=false \
    --set socket.data="$W/d.sock" --set socket.control="$W/dc.sock" \
    --set server.workers="$WORKERS" 2> "$W/datad.log" &
for _ in $(seq 100); do [[ -S "$W/d.sock" ]] && break; sleep 0.1; done
read -r M_IPS M_DW <<< "$(run memory)"
read -r S_IPS S_DW <<< "$(run store)"
read -r D_IPS D_DW <<< "$(run datad)"
echo "bench_e2e: $MODEL ${SIZE}px batch $BATCH, $STEPS steps, trainer threads $THREADS, sc-datad workers $WORKERS, source JPEG ${SRC_SIZE}px, $(nproc) CPUs"
printf '%-28s %10s %12s %10s\n' "feed" "img/s" "data wait" "vs memory"
for m in memory store datad; do
    case $m in memory) i=$M_IPS d=$M_DW n="memory (replayed batches)";; store) i=$S_IPS d=$S_DW n="in-process store reader";; datad) i=$D_IPS d=$D_DW n="sc-datad socket";; esac
    awk -v n="$n" -v i="$i" -v d="$d" -v m="$M_IPS" 'BEGIN { printf "%-28s %10.1f %11.2f%% %9.3fx\n", n, i, 100 * d, i / m }'
done
awk -v d="$D_DW" 'BEGIN { printf "RESULT datad_wait=%.4f target<0.02 %s\n", d, d < 0.02 ? "PASS" : "MISS" }'
