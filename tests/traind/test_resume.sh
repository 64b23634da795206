#!/bin/bash
# kill -9 at step k, restart, end at step n: bit-identical to an uninterrupted run. Also: a
# truncated and a corrupted newest checkpoint are reported and skipped; SIGTERM checkpoints and
# exits 0. MODE=datad runs through sc-datad, restarted between the two halves.
. "$(dirname "$0")/traind_lib.sh"
need_shared
MODE=${1:-local}
N=30
make_store "$W/st" emoji-google
run_ref() {
    "$TRAIND" "${SMALL[@]}" --store "$W/st" --set train.steps=$N --set checkpoint.dir="$W/ref" \
        --set checkpoint.every_steps=0 --set checkpoint.every_minutes=0 2>"$W/ref.log" ||
        { cat "$W/ref.log"; fail "reference run"; }
}
start_datad() {
    "$DATAD" --config /dev/null --set store.dir="$W/st" --set spool.enabled=false \
        --set socket.data="$W/d.sock" --set socket.control="$W/dc.sock" --set server.workers=1 \
        2>>"$W/datad.log" &
    DPID=$!
    for _ in $(seq 100); do [ -S "$W/d.sock" ] && return; sleep 0.1; done
    fail "sc-datad did not come up"
}
SRC=(--store "$W/st")
if [ "$MODE" = datad ]; then
    [ -x "$DATAD" ] || { echo "no sc-datad: skip"; exit 77; }
    SRC=(--set data.socket="$W/d.sock")
    start_datad
fi
run_ref
[ -f "$W"/ref/ckpt-0000000000$N-*.safetensors ] || fail "no final reference checkpoint"
# Interrupted run: checkpoints every 7 steps, slowed down so kill -9 lands mid-run.
"$TRAIND" "${SMALL[@]}" "${SRC[@]}" --set train.steps=$N --set checkpoint.dir="$W/run" \
    --set checkpoint.every_steps=7 --set debug.step_sleep_ms=60 2>"$W/run1.log" &
P=$!
for _ in $(seq 600); do
    ls "$W"/run/ckpt-000000000014-* >/dev/null 2>&1 && break
    sleep 0.05
done
sleep 0.2
kill -9 $P; wait $P 2>/dev/null
ls "$W"/run/ckpt-000000000014-* >/dev/null 2>&1 || { cat "$W/run1.log"; fail "no checkpoint at 14"; }
if [ "$MODE" = datad ]; then
    kill -9 $DPID; wait $DPID 2>/dev/null; rm -f "$W/d.sock"
    start_datad
fi
# Damage the newest checkpoint two ways: a truncated copy and a bit flip in the data; both must
# be skipped.
NEWEST=$(ls "$W"/run/ckpt-*.safetensors | sort | tail -1)
STEP=$(basename "$NEWEST" | cut -d- -f2)
NEXT=$(printf '%012d' $((10#$STEP + 1)))
head -c 5000 "$NEWEST" > "$W/run/ckpt-$NEXT-00000098.safetensors"
NEXT2=$(printf '%012d' $((10#$STEP + 2)))
cp "$NEWEST" "$W/run/ckpt-$NEXT2-00000099.safetensors"
SZ=$(stat -c %s "$NEWEST")
printf '\x55' | dd of="$W/run/ckpt-$NEXT2-00000099.safetensors" bs=1 seek=$((SZ - 100)) conv=notrunc 2>/dev/null
"$TRAIND" "${SMALL[@]}" "${SRC[@]}" --set train.steps=$N --set checkpoint.dir="$W/run" \
    --set checkpoint.every_steps=7 2>"$W/run2.log" || { cat "$W/run2.log"; fail "resumed run"; }
grep -q "ckpt-$NEXT-00000098.safetensors is damaged" "$W/run2.log" || { cat "$W/run2.log"; fail "truncated checkpoint not reported"; }
grep -q "ckpt-$NEXT2-00000099.safetensors is damaged" "$W/run2.log" || { cat "$W/run2.log"; fail "corrupted checkpoint not reported"; }
grep -q "resuming from .*ckpt-$STEP-" "$W/run2.log" || { cat "$W/run2.log"; fail "did not resume from step $STEP"; }
A=$(ls "$W"/ref/ckpt-0000000000$N-*.safetensors)
B=$(ls "$W"/run/ckpt-0000000000$N-*.safetensors)
"$CKPT" diff "$A" "$B" --atol 0 --rtol 0 >"$W/diff.txt" || { cat "$W/diff.txt"; fail "resumed run differs from the uninterrupted one"; }
# SIGTERM: finish the step, checkpoint, exit 0.
"$TRAIND" "${SMALL[@]}" "${SRC[@]}" --set train.steps=100000 --set checkpoint.dir="$W/term" \
    --set checkpoint.every_steps=0 --set debug.step_sleep_ms=20 --set log.control="$W/t.sock" \
    --set log.prometheus="$W/t.prom" --set log.every=1 2>"$W/term.log" &
P=$!
for _ in $(seq 600); do grep -q "first batch" "$W/term.log" && break; sleep 0.05; done
sleep 0.5
# Control socket (sc-ctl's JSON-lines format), SIGUSR1 checkpoint, Prometheus textfile.
ST=$("$CTL" --socket "$W/t.sock" --json status) || fail "sc-ctl status on the trainer"
echo "$ST" | grep -q '"daemon":"sc-traind"' || fail "status reply: $ST"
echo "$ST" | grep -q '"state":"training"' || fail "status reply: $ST"
# A second trainer on the same checkpoint directory is refused.
"$TRAIND" "${SMALL[@]}" "${SRC[@]}" --set train.steps=100 --set checkpoint.dir="$W/term" 2>"$W/second.log" &&
    fail "a second trainer ran on the same checkpoint directory"
grep -q "in use by another sc-traind" "$W/second.log" || { cat "$W/second.log"; fail "no clear error for the second trainer"; }
kill -USR1 $P
for _ in $(seq 200); do ls "$W"/term/ckpt-*.safetensors >/dev/null 2>&1 && break; sleep 0.05; done
ls "$W"/term/ckpt-*.safetensors >/dev/null 2>&1 || fail "SIGUSR1 wrote no checkpoint"
grep -q '^superclass_traind_step [0-9]' "$W/t.prom" || fail "no Prometheus textfile"
kill -TERM $P
wait $P || { cat "$W/term.log"; fail "SIGTERM exit status $?"; }
[ "$(ls "$W"/term/ckpt-*.safetensors | wc -l)" -ge 2 ] || fail "no checkpoint after SIGTERM"
echo "ok: $MODE resume bit-identical after kill -9 at step >= $STEP; damaged checkpoints skipped; SIGTERM checkpointed"
