#!/bin/sh
# Decode + augment benchmark (issue 4): bench_decode (C) beside decode_peer.py (PIL + torchvision),
# same files, same output sizes, one core each (taskset -c $CORE), alternating peer / C for ROUNDS
# rounds; medians over rounds of the per-run medians. Rates are images per CPU-second of each
# process (per-core figures that survive a loaded, shared machine); wall-clock rates are printed
# in the raw lines as wall_img_s.
#
#   bench/decode.sh [BUILD_DIR] [ROUNDS]        (run from the repository root)
#   env: CORE (0), SEC per repetition (1), REPS per run (3), PER_FOLDER (100), SIZES (64,224)
#
# Input sets, made in a temporary directory by `decode_peer.py prepare` (never in the repo):
#   corpus   : the first PER_FOLDER images of every ../shared/data/corpus folder, as stored
#              (JPEG, PNG, WebP; small images, mostly <= 512 px)
#   jpeg512  : wallpapers (6) + openclipart (PER_FOLDER) re-encoded, longer side 512, q90
#   jpeg1024 : the same at 1024
# Modes (C): pipe_tv / pipe_spec = pl_img_decode_augment with RandomResizedCrop scale (0.08, 1)
#   (torchvision's default) / (0.9, 1) (the spec's default), ratio (3/4, 4/3), bicubic, flip p=0.5;
#   raw = TurboJPEG decode of the whole JPEG at the smallest power-of-two DCT scale keeping it
#   >= SIZE (JPEG files only).
# Modes (peer): pil_tv / pil_spec = Image.open + convert("RGB") + RandomResizedCrop + flip +
#   np.asarray; draft_tv / draft_spec = the same after PIL's draft("RGB", (S, S)).
set -eu
BUILD=${1:-build}
ROUNDS=${2:-3}
CORE=${CORE:-0}
SEC=${SEC:-1}
REPS=${REPS:-3}
PER_FOLDER=${PER_FOLDER:-100}
SIZES=${SIZES:-64,224}
PY=/usr/bin/python3
SHARED=../shared/data
if [ ! -d "$SHARED/corpus" ]; then
    echo "decode.sh: $SHARED/corpus not found (run from the repository root)" >&2
    exit 77
fi
if [ ! -x "$BUILD/bench/bench_decode" ]; then
    echo "decode.sh: $BUILD/bench/bench_decode not built (ninja -C $BUILD)" >&2
    exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
$PY bench/decode_peer.py prepare "$SHARED" "$TMP/sets" --per-folder "$PER_FOLDER"
SETS="$TMP/sets/corpus $TMP/sets/jpeg512 $TMP/sets/jpeg1024"
echo "# machine: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); core $CORE"
BT=$($PY -c 'import json, sys; print(next(o["value"] for o in json.load(open(sys.argv[1])) if o["name"] == "buildtype"))' "$BUILD/meson-info/intro-buildoptions.json" 2>/dev/null || echo '?')
echo "# build: $BUILD (buildtype $BT); avx2: $(grep -q avx2 /proc/cpuinfo && echo yes || echo no); load: $(cut -d' ' -f1-3 /proc/loadavg)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    echo "# round $r: peer"
    taskset -c "$CORE" $PY bench/decode_peer.py bench -t "$SEC" -r "$REPS" -s "$SIZES" \
        -m pil_tv,pil_spec,draft_tv,draft_spec $SETS | tee -a "$TMP/results"
    echo "# round $r: C"
    taskset -c "$CORE" "$BUILD/bench/bench_decode" -t "$SEC" -r "$REPS" -s "$SIZES" \
        -m pipe_tv,pipe_spec,raw $SETS | tee -a "$TMP/results"
    r=$((r + 1))
done
$PY - "$TMP/results" <<'EOF'
import statistics
import sys
from collections import defaultdict

runs = defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("#") or "img_s=" not in line:
        continue
    kv = dict(f.split("=", 1) for f in line.split())
    runs[(kv["set"], kv["size"], kv["mode"])].append(float(kv["img_s"]))
med = {k: statistics.median(v) for k, v in runs.items()}
print("\n# images per CPU-second (one core), median over rounds (each round: median of REPS)")
print(f"{'set':9} {'size':>4} " + " ".join(f"{m:>10}" for m in
      ["pil_tv", "draft_tv", "pipe_tv", "pil_spec", "draft_spec", "pipe_spec", "raw"]))
for (s, z) in sorted({(k[0], k[1]) for k in med}, key=lambda t: (t[0], int(t[1]))):
    row = [med.get((s, z, m), float("nan")) for m in
           ["pil_tv", "draft_tv", "pipe_tv", "pil_spec", "draft_spec", "pipe_spec", "raw"]]
    print(f"{s:9} {z:>4} " + " ".join(f"{v:10.1f}" for v in row))
print("\n# ratios")
for (s, z) in sorted({(k[0], k[1]) for k in med}, key=lambda t: (t[0], int(t[1]))):
    g = lambda m: med.get((s, z, m), float("nan"))
    note = " (raw: JPEG files only)" if s == "corpus" else ""
    print(f"{s:9} {z:>4}  pipe_tv/pil_tv {g('pipe_tv')/g('pil_tv'):5.2f}x  "
          f"pipe_tv/draft_tv {g('pipe_tv')/g('draft_tv'):5.2f}x  "
          f"pipe_spec/pil_spec {g('pipe_spec')/g('pil_spec'):5.2f}x  "
          f"pipe_spec/draft_spec {g('pipe_spec')/g('draft_spec'):5.2f}x  "
          f"pipe_tv/raw {100*g('pipe_tv')/g('raw'):4.0f}%  pipe_spec/raw {100*g('pipe_spec')/g('raw'):4.0f}%{note}")
EOF
