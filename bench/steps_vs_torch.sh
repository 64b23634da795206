#!/bin/sh
# The shared runner of the train-step benchmarks (bench/train.sh, bench/crunet.sh): a C bench
# binary against a PyTorch peer script, alternating C, peer, C, peer ... per thread count, medians
# reported. The wrappers set what differs; this file holds what they share.
#   bench/steps_vs_torch.sh NAME C_BIN PEER_SCRIPT DEFAULT_STEPS TARGET [BUILD_DIR] [ROUNDS]
# NAME labels the messages; C_BIN is relative to BUILD_DIR (e.g. bench/bench_train); PEER_SCRIPT
# is in bench/; TARGET is the line printed under the summary.
# Env: THREADS (default "1 2"), STEPS (timed steps per run, default DEFAULT_STEPS), CORETYPE (the
#      OpenBLAS core type forced on BOTH sides, default SkylakeX per ../shared/BENCHMARKS.md), PY
#      (default /usr/bin/python3).
# Both sides get OPENBLAS_CORETYPE=$CORETYPE in the environment before they start; with more than
# one thread the peer also gets OMP_WAIT_POLICY=passive (its OpenMP threads otherwise spin against
# OpenBLAS's) and calls torch.set_num_threads(N). Each run prints a RESULT line with img_s and,
# where the side measures them, img_cpu_s (images per CPU-second, robust to other load) and
# gflops; the summary gives their medians over the rounds and the C/peer ratios.
set -eu
[ $# -ge 5 ] || { echo "usage: $0 NAME C_BIN PEER_SCRIPT DEFAULT_STEPS TARGET [BUILD_DIR] [ROUNDS]" >&2; exit 2; }
name=$1 c_bin=$2 peer=$3 default_steps=$4 target=$5
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${6:-$root/build}
rounds=${7:-3}
threads_list=${THREADS:-1 2}
steps=${STEPS:-$default_steps}
coretype=${CORETYPE:-SkylakeX}
py=${PY:-/usr/bin/python3}
bench="$build/$c_bin"
[ -x "$bench" ] || { echo "$name: $bench not built (ninja -C $build $c_bin)" >&2; exit 1; }

echo "== configuration"
echo "host: $(uname -srm), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "OPENBLAS_CORETYPE=$coretype for both sides; threads: $threads_list; rounds: $rounds; steps/run: $steps"
echo "C: $bench <threads> $steps"
echo "peer: $py $here/$peer --threads <n> --steps $steps ($($py -c 'import torch; print("torch", torch.__version__)' 2>/dev/null))"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in $threads_list; do
    omp=""
    [ "$t" -gt 1 ] && omp="OMP_WAIT_POLICY=passive"
    i=1
    while [ "$i" -le "$rounds" ]; do
        echo "== threads $t, round $i (load $(cut -d' ' -f1 /proc/loadavg))"
        env OPENBLAS_CORETYPE="$coretype" OPENBLAS_NUM_THREADS="$t" "$bench" "$t" "$steps" \
            | grep -E '^(RESULT|step:|phases|sgemm|config)' | sed 's/^RESULT /RESULT side=c /' | tee -a "$out"
        env OPENBLAS_CORETYPE="$coretype" $omp "$py" "$here/$peer" --threads "$t" \
            --steps "$steps" | grep -E '^(RESULT|config)' | tee -a "$out"
        i=$((i + 1))
    done
done

echo "== summary (median over $rounds rounds)"
awk -v target="$target" '
/^RESULT / {
    side = ""; th = ""; img = ""; cpu = ""; gf = ""
    for (f = 2; f <= NF; f++) {
        split($f, kv, "=")
        if (kv[1] == "side") side = kv[2]
        else if (kv[1] == "threads") th = kv[2]
        else if (kv[1] == "img_s") img = kv[2]
        else if (kv[1] == "img_cpu_s") cpu = kv[2]
        else if (kv[1] == "gflops") gf = kv[2]
    }
    k = side " " th; n[k]++
    im[k, n[k]] = img; ic[k, n[k]] = cpu; g[k, n[k]] = gf
    if (cpu != "") has_cpu[k] = 1
    if (gf != "") has_gf[k] = 1
    if (!(th in ths)) { ths[th] = 1; order[++nth] = th }
}
function med(arr, k, m,   i, j, t, v) {
    if (m == 0) return 0
    for (i = 1; i <= m; i++) v[i] = arr[k, i] + 0
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
function col(has, arr, k, fmt) { return (k in has) ? sprintf(fmt, med(arr, k, n[k])) : "-" }
function ratio(has, arr, a, b) {
    if (!((a in has) && (b in has)) || med(arr, b, n[b]) <= 0) return "-"
    return sprintf("%.2fx", med(arr, a, n[a]) / med(arr, b, n[b]))
}
END {
    for (x = 1; x <= nth; x++) { all["c " order[x]] = 1; all["peer " order[x]] = 1 }
    printf "%-8s %10s %10s %8s %12s %12s %8s %9s %9s\n", "threads", "C img/s", "Py img/s", "C/Py",
           "C img/cpu-s", "Py img/cpu-s", "C/Py", "C GF/s", "Py GF/s"
    for (x = 1; x <= nth; x++) {
        th = order[x]; c = "c " th; p = "peer " th
        printf "%-8s %10s %10s %8s %12s %12s %8s %9s %9s\n", th,
               col(all, im, c, "%.2f"), col(all, im, p, "%.2f"), ratio(all, im, c, p),
               col(has_cpu, ic, c, "%.2f"), col(has_cpu, ic, p, "%.2f"), ratio(has_cpu, ic, c, p),
               col(has_gf, g, c, "%.1f"), col(has_gf, g, p, "%.1f")
    }
    print "target: " target
}' "$out"
