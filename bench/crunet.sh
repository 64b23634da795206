#!/bin/sh
# CRU-Net train-step speed: the C model (bench_crunet) against the PyTorch peer (crunet_peer.py),
# the same network (crunet35c with the stride-2 stem, 64x64, batch 64, 200 classes,
# cross-entropy, SGD momentum 0.9 / weight decay 5e-4), alternating C, peer, C, peer ... per
# thread count, medians reported.
#   bench/crunet.sh [BUILD_DIR] [ROUNDS]     (defaults: build, 3)
# Env: THREADS (default "1 2"), STEPS (timed steps per run, default 5), CORETYPE (the OpenBLAS
#      core type forced on BOTH sides, default SkylakeX per ../shared/BENCHMARKS.md), PY (default
#      /usr/bin/python3).
# Both sides get OPENBLAS_CORETYPE=$CORETYPE before they start; with more than one thread the
# peer also gets OMP_WAIT_POLICY=passive and calls torch.set_num_threads(N).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
rounds=${2:-3}
threads_list=${THREADS:-1 2}
steps=${STEPS:-5}
coretype=${CORETYPE:-SkylakeX}
py=${PY:-/usr/bin/python3}
bench="$build/bench/bench_crunet"
[ -x "$bench" ] || { echo "crunet.sh: $bench not built (ninja -C $build bench/bench_crunet)" >&2; exit 1; }

echo "== configuration"
echo "host: $(uname -srm), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "OPENBLAS_CORETYPE=$coretype for both sides; threads: $threads_list; rounds: $rounds; steps/run: $steps"
echo "C: $bench <threads> $steps"
echo "peer: $py $here/crunet_peer.py --threads <n> --steps $steps ($($py -c 'import torch; print("torch", torch.__version__)' 2>/dev/null))"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
for t in $threads_list; do
    omp=""
    [ "$t" -gt 1 ] && omp="OMP_WAIT_POLICY=passive"
    i=1
    while [ "$i" -le "$rounds" ]; do
        echo "== threads $t, round $i (load $(cut -d' ' -f1 /proc/loadavg))"
        env OPENBLAS_CORETYPE="$coretype" OPENBLAS_NUM_THREADS="$t" "$bench" "$t" "$steps" \
            | grep -E '^(RESULT|step:|phases|config)' | sed 's/^RESULT /RESULT side=c /' | tee -a "$out"
        env OPENBLAS_CORETYPE="$coretype" $omp "$py" "$here/crunet_peer.py" --threads "$t" \
            --steps "$steps" | grep -E '^(RESULT|config)' | tee -a "$out"
        i=$((i + 1))
    done
done

echo "== summary (median over $rounds rounds)"
awk '
/^RESULT / {
    side = ""; th = ""; img = ""; cpu = ""
    for (f = 2; f <= NF; f++) {
        split($f, kv, "=")
        if (kv[1] == "side") side = kv[2]
        else if (kv[1] == "threads") th = kv[2]
        else if (kv[1] == "img_s") img = kv[2]
        else if (kv[1] == "img_cpu_s") cpu = kv[2]
    }
    k = side " " th; n[k]++; im[k, n[k]] = img; ic[k, n[k]] = cpu
    if (!(th in ths)) { ths[th] = 1; order[++nth] = th }
}
function med(arr, k, m,   i, j, t, v) {
    if (m == 0) return 0
    for (i = 1; i <= m; i++) v[i] = arr[k, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
    return m % 2 ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
    printf "%-8s %10s %10s %8s %12s %12s %8s\n", "threads", "C img/s", "Py img/s", "C/Py", "C img/cpu-s", "Py img/cpu-s", "C/Py"
    for (x = 1; x <= nth; x++) {
        th = order[x]
        c = "c " th; p = "peer " th
        ci = med(im, c, n[c]); pi = med(im, p, n[p]); cc = med(ic, c, n[c]); pc = med(ic, p, n[p])
        printf "%-8s %10.2f %10.2f %7.2fx %12.2f %12.2f %7.2fx\n", th, ci, pi, (pi > 0 ? ci / pi : 0), cc, pc, (pc > 0 ? cc / pc : 0)
    }
    print "target: C/Py >= 1.5x img/s (wall); img per CPU second is the load-robust view"
}' "$out"
