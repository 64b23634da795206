#!/bin/sh
# Ingest speed: bench_ingest (C) against ingest_peer.py (tarfile + PIL load() + the Python CLIP
# tokenizer of tok_peer.py + zlib + python3-lmdb put), side by side, alternating C and Python so
# drift on a shared machine hits both, each pinned to one core; for verify=header and verify=full.
#   bench/ingest.sh [BUILD_DIR] [ROUNDS]        (defaults: build, 3)
# Env: CORPUS (default ../shared/data/corpus), VOCAB, CORE (cpu for taskset, default 0),
#      PY (default /usr/bin/python3), TMPDIR (where the stores are written, default /tmp).
# Figures per core: samples and input MB per CPU second (user+sys of the run, so other load on
# the machine does not count), medians over the rounds; the time split is each run's own
# (wall-clock per stage, median). The "bound" line says how far verify=full could go if decoding
# (libjpeg-turbo, libwebp and libspng doing the least work that still reads every image) were all
# that was left of the C side.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${1:-$root/build}
rounds=${2:-3}
corpus=${CORPUS:-$root/../shared/data/corpus}
vocab=${VOCAB:-$root/../shared/data/tokenizer/bpe_simple_vocab_16e6.txt.gz}
core=${CORE:-0}
py=${PY:-/usr/bin/python3}
tmp=${TMPDIR:-/tmp}
bench="$build/bench/bench_ingest"
[ -x "$bench" ] || { echo "ingest.sh: $bench not built (ninja -C $build bench/bench_ingest)" >&2; exit 1; }
[ -d "$corpus" ] || [ -f "$corpus" ] || { echo "ingest.sh: $corpus not found" >&2; exit 1; }
pin=""
command -v taskset >/dev/null 2>&1 && pin="taskset -c $core"

echo "== configuration"
echo "host: $(uname -srm), $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "pinning: ${pin:-none (taskset missing)}; rounds: $rounds; corpus: $corpus ($(du -sh "$corpus" | cut -f1))"
echo "C: $bench; Python: $py $here/ingest_peer.py ($($py --version 2>&1), Pillow $($py -c 'import PIL; print(PIL.__version__)'))"

out=$(mktemp)
trap 'rm -f "$out"' EXIT
i=1
while [ "$i" -le "$rounds" ]; do
    echo "== round $i"
    for v in header full; do
        $pin "$bench" --verify $v -v "$vocab" -d "$tmp" "$corpus" | tee -a "$out"
        $pin $py "$here/ingest_peer.py" --verify $v --vocab "$vocab" --dir "$tmp" "$corpus" | tee -a "$out"
    done
    i=$((i + 1))
done

echo "== summary (median over $rounds rounds; per core = per CPU second of the run)"
awk '
/^RESULT/ {
    impl = ""; ver = ""
    for (f = 2; f <= NF; f++) { split($f, kv, "="); val[kv[1]] = kv[2] }
    k = val["impl"] " " val["verify"]; n[k]++
    for (x in val) if (x != "impl" && x != "verify") m[k, x, n[k]] = val[x]
    samples[k] = val["samples"]; kept[k] = val["kept"]
}
function med(k, x,   i, j, t, v, c) {
    c = n[k]
    for (i = 1; i <= c; i++) v[i] = m[k, x, i]
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
    return c % 2 ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
}
END {
    printf "%-7s %-5s %8s %7s %12s %10s %9s  %s\n", "verify", "impl", "samples", "kept", "samples/s/core", "MB/s/core", "wall s", "split (s): read decode tokenize compress lmdb"
    split("header full", vs, " ")
    for (a = 1; a <= 2; a++) {
        for (b = 1; b <= 2; b++) {
            k = (b == 1 ? "c" : "py") " " vs[a]
            if (!n[k]) continue
            printf "%-7s %-5s %8d %7d %12.0f %10.2f %9.2f  %.2f %.2f %.2f %.2f %.2f\n", vs[a], (b == 1 ? "c" : "py"),
                samples[k], kept[k], med(k, "samples_per_cpu_s"), med(k, "mb_per_cpu_s"), med(k, "wall_s"),
                med(k, "read_s"), med(k, "decode_s"), med(k, "tokenize_s"), med(k, "compress_s"), med(k, "lmdb_s")
        }
        c = "c " vs[a]; p = "py " vs[a]
        if (n[c] && n[p]) printf "ratio C/Py verify=%s: %.1fx samples/s per core\n", vs[a], med(c, "samples_per_cpu_s") / med(p, "samples_per_cpu_s")
        if (n[c] && n[p] && vs[a] == "full" && med(c, "decode_s") > 0) {
            # CPU seconds in decode ~ the run CPU time times decode s share of the wall clock
            dcpu = med(c, "cpu_s") * med(c, "decode_s") / med(c, "wall_s")
            printf "bound verify=full: decode alone takes ~%.2f of C %.2f CPU s; were every other stage free, C/Py <= %.1fx\n",
                dcpu, med(c, "cpu_s"), (samples[c] / dcpu) / med(p, "samples_per_cpu_s")
        }
    }
    print "target: C/Py >= 10x per core with verify=full"
}' "$out"
