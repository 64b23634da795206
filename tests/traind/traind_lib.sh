# Shared helpers of the sc-traind integration tests (sourced). Exit 77 = skip.
set -u
BUILD=${SC_BUILD_ROOT:?}
SHARED=${SC_SHARED_DATA:-}
TRAIND=$BUILD/daemon/traind/sc-traind
DATAD=$BUILD/daemon/sc-datad
SHARD=$BUILD/tools/sc-shard
CKPT=$BUILD/tools/sc-ckpt
EVAL=$BUILD/tools/sc-eval
CTL=$BUILD/tools/sc-ctl
VOCAB=$SHARED/tokenizer/bpe_simple_vocab_16e6.txt.gz
W=$(mktemp -d /tmp/traind-test.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$W"' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }
need_shared() {
    [ -n "$SHARED" ] && [ -f "$VOCAB" ] || { echo "shared data missing: skip"; exit 77; }
}
# make_store DIR CORPUS...: a store from shared corpus folders
make_store() {
    local st=$1; shift
    "$SHARD" create "$st" --vocab "$VOCAB" --verify header >/dev/null || fail "sc-shard create"
    local args=()
    for c in "$@"; do args+=("$SHARED/corpus/$c"); done
    "$SHARD" ingest "$st" --no-progress --quiet "${args[@]}" >/dev/null || fail "sc-shard ingest"
}
# Small, fast model settings shared by the tests (fixed threads: bit-exact resume).
SMALL=(--config /dev/null --set model.backbone=ViT-Micro/8 --set model.image_size=32
       --set train.batch=16 --set train.warmup=5 --set train.lr=0.002 --set train.threads=1
       --set log.every=5 --set log.control= --set data.prefetch=2)
