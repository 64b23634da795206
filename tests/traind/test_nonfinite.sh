#!/bin/bash
# Non-finite steps (injected with debug.nonfinite_at): a few are skipped and counted and the run
# completes; max_nonfinite in a row stop it with exit 1 and a clear error, keeping the last good
# checkpoint and writing none after the fault.
. "$(dirname "$0")/traind_lib.sh"
need_shared
make_store "$W/st" emoji-google
"$TRAIND" "${SMALL[@]}" --store "$W/st" --set train.steps=20 --set checkpoint.dir="$W/a" \
    --set debug.nonfinite_at=7:2 --set log.metrics="$W/a.jsonl" --set checkpoint.every_steps=2 \
    --set checkpoint.keep_last=2 --set checkpoint.milestone_every=3 2>"$W/a.log" ||
    { cat "$W/a.log"; fail "run with 2 non-finite steps did not complete"; }
# Retention: checkpoints at steps 2, 4, ..., 20 are seq 1..10; kept: the newest 2 (seq 9, 10)
# and every 3rd (seq 3, 6, 9).
KEPT=$(cd "$W/a" && ls ckpt-*.safetensors | tr '\n' ' ')
[ "$KEPT" = "ckpt-000000000006-00000003.safetensors ckpt-000000000012-00000006.safetensors ckpt-000000000018-00000009.safetensors ckpt-000000000020-00000010.safetensors " ] ||
    fail "retention kept: $KEPT"
[ "$(grep -c 'non-finite values' "$W/a.log")" = 2 ] || { cat "$W/a.log"; fail "expected 2 skipped steps"; }
tail -1 "$W/a.jsonl" | grep -q '"skipped":2' || { cat "$W/a.jsonl"; fail "metrics do not count 2 skips"; }
grep -q '"loss":nan\|"loss":-\?inf' "$W/a.jsonl" && fail "a non-finite loss reached the metrics"
"$TRAIND" "${SMALL[@]}" --store "$W/st" --set train.steps=40 --set checkpoint.dir="$W/b" \
    --set checkpoint.every_steps=5 --set debug.nonfinite_at=10:100 --set train.max_nonfinite=4 \
    2>"$W/b.log"
RC=$?
[ $RC = 1 ] || { cat "$W/b.log"; fail "expected exit 1 after 4 non-finite steps in a row, got $RC"; }
grep -q "4 non-finite steps in a row" "$W/b.log" || { cat "$W/b.log"; fail "no clear error"; }
NEWEST=$(ls "$W"/b/ckpt-*.safetensors | sort | tail -1)
case "$NEWEST" in *ckpt-000000000010-*) ;; *) fail "newest checkpoint is $NEWEST, expected step 10";; esac
echo "ok: retention last 2 + every 3rd; non-finite steps skipped and counted; 4 in a row stop the run, checkpoint at step 10 kept"
