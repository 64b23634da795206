#!/bin/bash
# A CRU-Net backbone (crunet24-mini, 32x32) with the SuperClass head: kill -9 mid-run + restart
# ends bit-identical to an uninterrupted run (weights, moments, BN running statistics, IDF
# buffers, optimiser step), the checkpoint records the backbone, and sc-eval rebuilds the CRU-Net
# from it and evaluates with the running statistics.
. "$(dirname "$0")/traind_lib.sh"
need_shared
N=20
CRU=("${SMALL[@]}" --set model.backbone=crunet24-mini --set model.image_size=32)
make_store "$W/st" emoji-google
"$TRAIND" "${CRU[@]}" --store "$W/st" --set train.steps=$N --set checkpoint.dir="$W/ref" \
    --set checkpoint.every_steps=10 --set checkpoint.keep_last=5 2>"$W/ref.log" ||
    { cat "$W/ref.log"; fail "reference run"; }
grep -q "model crunet24-mini (CRU-Net)" "$W/ref.log" || { cat "$W/ref.log"; fail "not a CRU-Net"; }
A=$(ls "$W"/ref/ckpt-0000000000$N-*.safetensors) || fail "no final reference checkpoint"
MID=$(ls "$W"/ref/ckpt-000000000010-*.safetensors) || fail "no step-10 reference checkpoint"
"$CKPT" info "$A" >"$W/info.txt" || fail "sc-ckpt info"
grep -q "traind.backbone: crunet24-mini" "$W/info.txt" || { cat "$W/info.txt"; fail "backbone not recorded"; }
grep -q "traind.backbone_kind: crunet" "$W/info.txt" || { cat "$W/info.txt"; fail "backbone kind not recorded"; }
grep -q "optimizer.step: $N" "$W/info.txt" || { cat "$W/info.txt"; fail "optimiser step not recorded"; }
# The comparison below can fail: the step-10 and step-20 checkpoints differ, BN statistics too.
"$CKPT" diff "$MID" "$A" --atol 0 --rtol 0 >"$W/d0.txt" 2>&1 && fail "sc-ckpt diff sees no training"
grep -q "running_mean" "$W/d0.txt" || { cat "$W/d0.txt"; fail "BN running statistics did not change"; }
# Interrupted run: checkpoints every 4 steps, slowed down so kill -9 lands mid-run.
"$TRAIND" "${CRU[@]}" --store "$W/st" --set train.steps=$N --set checkpoint.dir="$W/run" \
    --set checkpoint.every_steps=4 --set debug.step_sleep_ms=100 2>"$W/run1.log" &
P=$!
for _ in $(seq 600); do
    ls "$W"/run/ckpt-000000000008-* >/dev/null 2>&1 && break
    sleep 0.05
done
sleep 0.15
kill -9 $P; wait $P 2>/dev/null
ls "$W"/run/ckpt-000000000008-* >/dev/null 2>&1 || { cat "$W/run1.log"; fail "no checkpoint at 8"; }
ls "$W"/run/ckpt-0000000000$N-* >/dev/null 2>&1 && fail "the run finished before kill -9"
"$TRAIND" "${CRU[@]}" --store "$W/st" --set train.steps=$N --set checkpoint.dir="$W/run" \
    --set checkpoint.every_steps=4 2>"$W/run2.log" || { cat "$W/run2.log"; fail "resumed run"; }
grep -q "resuming from .*ckpt-0000000000[01][0-9]-" "$W/run2.log" || { cat "$W/run2.log"; fail "did not resume"; }
B=$(ls "$W"/run/ckpt-0000000000$N-*.safetensors) || fail "no final checkpoint of the resumed run"
"$CKPT" diff "$A" "$B" --atol 0 --rtol 0 >"$W/diff.txt" ||
    { cat "$W/diff.txt"; fail "resumed CRU-Net run differs from the uninterrupted one"; }
# sc-eval: rebuilds the CRU-Net from the metadata; inference with the running statistics is
# deterministic (two runs agree exactly).
E1=$("$EVAL" zeroshot --ckpt "$A" --store "$W/st" --limit 64 --candidates 10 --json 2>"$W/e.log") ||
    { cat "$W/e.log"; fail "sc-eval zeroshot on a CRU-Net checkpoint"; }
echo "$E1" | grep -q '"top1"' || fail "zeroshot output: $E1"
E2=$("$EVAL" zeroshot --ckpt "$A" --store "$W/st" --limit 64 --candidates 10 --json 2>/dev/null)
[ "$E1" = "$E2" ] || fail "sc-eval is not deterministic: $E1 / $E2"
TOK=$("$EVAL" tokens --ckpt "$A" --store "$W/st" --limit 64 --json 2>/dev/null) || fail "sc-eval tokens"
echo "$TOK" | grep -q '"map"' || fail "tokens output: $TOK"
mkdir -p "$W/img"
tar -xf "$SHARED/corpus/emoji-google/google-000000.tar" -C "$W/img" 2>/dev/null
IMG=$(ls "$W"/img/*.* | grep -Ev '\.(txt|json)$' | head -1)
PRED=$("$EVAL" predict --ckpt "$A" --json -k 5 "$IMG" 2>/dev/null) || fail "sc-eval predict $IMG"
[ "$(echo "$PRED" | grep -o '"token"' | wc -l)" = 5 ] || fail "predict: $PRED"
echo "ok: resumed == uninterrupted (atol 0); zeroshot $E1"
