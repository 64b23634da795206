#!/bin/sh
# Tokenizer speed: the C tokenizer (bench_tok) against the Python peer (tok_peer.py), side by side,
# alternating A B A B so drift on a shared machine hits both, each pinned to one core.
#   bench/tok.sh [BUILD_DIR] [ROUNDS]      (defaults: build, 3)
# Env: GOLDEN (golden.tsv path), VOCAB (merges file, default next to GOLDEN), CORE (cpu for taskset, default 0), PY (default /usr/bin/python3),
#      C_REPS / PY_REPS (repetitions inside one run; medians are taken over all runs' medians).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
rounds=${2:-3}
golden=${GOLDEN:-$root/../shared/data/tokenizer/golden.tsv}
vocab=${VOCAB:-$(dirname "$golden")/bpe_simple_vocab_16e6.txt.gz}
core=${CORE:-0}
py=${PY:-/usr/bin/python3}
c_reps=${C_REPS:-5}
py_reps=${PY_REPS:-3}
bench="$build/bench/bench_tok"
[ -x "$bench" ] || { echo "tok.sh: $bench not built (ninja -C $build bench/bench_tok)" >&2; exit 1; }
[ -r "$golden" ] || { echo "tok.sh: $golden not found" >&2; exit 1; }
pin=""
command -v taskset >/dev/null 2>&1 && pin="taskset -c $core"

echo "== configuration"
echo "host: $(uname -srm), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "pinning: ${pin:-none (taskset missing)}; rounds: $rounds; golden: $golden"
echo "C: $bench -r $c_reps (compiler and build type: see the c: lines)"
echo "Python: $py $here/tok_peer.py --bench -r $py_reps ($($py --version 2>&1))"

out=$(mktemp)
run=$(mktemp)
trap 'rm -f "$out" "$run"' EXIT
check=$($py "$here/tok_peer.py" --vocab "$vocab" --check "$golden") || { echo "tok.sh: the peer does not match $golden: $check" >&2; exit 1; }
echo "peer check: $check"
i=1
while [ "$i" -le "$rounds" ]; do
    echo "== round $i"
    $pin $py "$here/tok_peer.py" --vocab "$vocab" --bench "$golden" -r "$py_reps" >"$run" || exit 1
    cat "$run" && cat "$run" >>"$out"
    $pin "$bench" -r "$c_reps" -v "$vocab" "$golden" >"$run" || exit 1
    cat "$run" && cat "$run" >>"$out"
    i=$((i + 1))
done

echo "== summary (median over $rounds rounds of each run's median)"
awk '
/^(peer|c) (cold|warm)(-cpu)?:/ {
    k = $1 " " $2; sub(":", "", k)
    n[k]++; ts[k, n[k]] = $3; mb[k, n[k]] = $5
}
function med(arr, k, m,   i, j, t, v) {
    for (i = 1; i <= m; i++) v[i] = arr[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
    printf "%-9s %-5s %12s %9s %12s %9s %8s\n", "cache", "clock", "C texts/s", "C MB/s", "Py texts/s", "Py MB/s", "C/Py"
    split("cold warm cold-cpu warm-cpu", ks, " ")
    for (x = 1; x <= 4; x++) {
        c = "c " ks[x]; p = "peer " ks[x]
        if (!n[c] || !n[p]) continue
        ct = med(ts, c, n[c]); cm = med(mb, c, n[c]); pt = med(ts, p, n[p]); pm = med(mb, p, n[p])
        name = ks[x]; clock = "wall"
        if (sub("-cpu", "", name)) clock = "cpu"
        printf "%-9s %-5s %12.0f %9.2f %12.0f %9.3f %7.1fx\n", name, clock, ct, cm, pt, pm, ct / pt
    }
    print "target: C/Py >= 50x texts/s (cpu rows: per CPU-second of the one thread, robust to load)"
}' "$out"
