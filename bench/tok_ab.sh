#!/bin/sh
# Tokenizer A/B: two builds' bench_tok run alternately (A B A B ...), pinned to one core; prints
# each pair's ratio B/A of texts/s (cold and warm, per CPU-second) and their median and quartiles.
# A change to the tokenizer is judged by these paired ratios rather than by two bench/tok.sh runs
# at different times: on a shared machine the speed of both sides moves by several percent from
# minute to minute, and alternating short runs sees the same conditions for A and B.
#   bench/tok_ab.sh BUILD_A BUILD_B [PAIRS]      (PAIRS default 15)
# Env: GOLDEN (golden.tsv path), CORE (cpu for taskset, default 0), C_REPS (repetitions inside one
#      bench_tok run, default 3).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
usage() {
    echo "usage: bench/tok_ab.sh BUILD_A BUILD_B [PAIRS]" >&2
    echo "  runs BUILD_A/bench/bench_tok and BUILD_B/bench/bench_tok alternately, PAIRS times" >&2
    echo "  (default 15), and prints the median and quartiles of B/A texts/s, cold and warm" >&2
}
case "${1:-}" in -h | --help) usage; exit 0 ;; esac
[ $# -ge 2 ] || { usage; exit 2; }
a="$1/bench/bench_tok"
b="$2/bench/bench_tok"
pairs=${3:-15}
golden=${GOLDEN:-$root/../shared/data/tokenizer/golden.tsv}
core=${CORE:-0}
reps=${C_REPS:-3}
for x in "$a" "$b"; do
    [ -x "$x" ] || { echo "tok_ab.sh: $x not built (ninja -C $(dirname "$(dirname "$x")") bench/bench_tok)" >&2; exit 1; }
done
[ -r "$golden" ] || { echo "tok_ab.sh: $golden not found (set GOLDEN)" >&2; exit 1; }
case "$pairs" in '' | *[!0-9]*) echo "tok_ab.sh: PAIRS must be a number, not '$pairs'" >&2; exit 2 ;; esac
pin=""
command -v taskset >/dev/null 2>&1 && pin="taskset -c $core"

# One run: "cold warm" texts/s per CPU-second (bench_tok's cold-cpu and warm-cpu lines).
rates() {
    $pin "$1" -r "$reps" "$golden" |
        awk '/^c cold-cpu:/ { c = $3 } /^c warm-cpu:/ { w = $3 } END { if (c == "" || w == "") exit 1; print c, w }'
}

out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "A: $a"
echo "B: $b"
printf '%4s %12s %12s %12s %12s %8s %8s\n' pair "A cold" "A warm" "B cold" "B warm" "B/A cold" "B/A warm"
i=1
while [ "$i" -le "$pairs" ]; do
    ra=$(rates "$a") || { echo "tok_ab.sh: $a failed (rows differ from golden.tsv?)" >&2; exit 1; }
    rb=$(rates "$b") || { echo "tok_ab.sh: $b failed (rows differ from golden.tsv?)" >&2; exit 1; }
    echo "$ra $rb" | awk -v i="$i" '{ printf "%4d %12.0f %12.0f %12.0f %12.0f %8.4f %8.4f\n", i, $1, $2, $3, $4, $3 / $1, $4 / $2 }' | tee -a "$out"
    i=$((i + 1))
done
# Quartiles by rank (nearest rank) of each ratio column.
for col in 6 7; do
    name=cold
    [ "$col" = 7 ] && name=warm
    awk -v c="$col" '{ print $c }' "$out" | sort -n | awk -v name="$name" '
        { v[NR] = $1 }
        END {
            q1 = v[int((NR + 3) / 4)]; md = v[int((NR + 1) / 2)]; q3 = v[int((3 * NR + 3) / 4)]
            printf "B/A %s texts/s: median %.4f (quartiles %.4f, %.4f) over %d pairs\n", name, md, q1, q3, NR
        }'
done
