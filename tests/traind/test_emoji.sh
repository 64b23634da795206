#!/bin/bash
# The pipeline on the real shared corpus: train on emoji-google + emoji-emojione, evaluate
# zero-shot on emoji-twitter-webp (the same captions drawn in another style). The loss falls and
# zero-shot top-1 over 10 candidates beats chance (10%) clearly. STEPS (arg 1) sets the length;
# the slow suite runs longer and reports its accuracy.
. "$(dirname "$0")/traind_lib.sh"
need_shared
STEPS=${1:-300}
make_store "$W/train" emoji-google emoji-emojione
make_store "$W/test" emoji-twitter-webp
"$TRAIND" "${SMALL[@]}" --store "$W/train" --set train.batch=32 --set train.steps="$STEPS" \
    --set train.warmup=20 --set train.lr=0.003 --set train.threads=2 --set log.every=25 \
    --set checkpoint.dir="$W/ck" --set log.metrics="$W/m.jsonl" 2>"$W/train.log" ||
    { cat "$W/train.log"; fail "training"; }
FIRST=$(head -1 "$W/m.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/')
LAST=$(tail -1 "$W/m.jsonl" | sed 's/.*"loss":\([^,]*\),.*/\1/')
awk -v a="$FIRST" -v b="$LAST" 'BEGIN { exit !(b < a - 1.5) }' ||
    { cat "$W/m.jsonl"; fail "loss did not fall: $FIRST -> $LAST"; }
CK=$(ls "$W"/ck/ckpt-*.safetensors | sort | tail -1)
OUT=$("$EVAL" zeroshot --ckpt "$CK" --store "$W/test" --candidates 10 --json 2>/dev/null) ||
    fail "sc-eval zeroshot"
TOP1=$(echo "$OUT" | sed 's/.*"top1":\([^,]*\),.*/\1/')
TOP5=$(echo "$OUT" | sed 's/.*"top5":\([^,]*\),.*/\1/')
TOK=$("$EVAL" tokens --ckpt "$CK" --store "$W/test" --json 2>/dev/null) || fail "sc-eval tokens"
MAP=$(echo "$TOK" | sed 's/.*"map":\([^,]*\),.*/\1/')
# predict: top-5 decoded tokens with probabilities for an image file.
mkdir -p "$W/img"
tar -xf "$SHARED/corpus/emoji-twitter-webp/twitter-webp-000000.tar" -C "$W/img" 2>/dev/null
IMG=$(ls "$W"/img/*.webp | head -1)
PRED=$("$EVAL" predict --ckpt "$CK" --json -k 5 "$IMG" 2>/dev/null) || fail "sc-eval predict"
[ "$(echo "$PRED" | grep -o '"token"' | wc -l)" = 5 ] || fail "predict: $PRED"
echo "$PRED" | grep -q '"p":0\.' || fail "predict scores: $PRED"
echo "steps $STEPS: loss $FIRST -> $LAST; zero-shot on emoji-twitter-webp top-1 $TOP1 top-5 $TOP5 (chance 0.1 / 0.5); token mAP $MAP"
awk -v a="$TOP1" 'BEGIN { exit !(a > 0.15) }' || fail "zero-shot top-1 $TOP1 not clearly above chance 0.10"
