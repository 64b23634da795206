#!/usr/bin/env bash
# The README's test command: installs what is missing, builds superclass twice (release-like and
# with AddressSanitizer + UndefinedBehaviorSanitizer), runs every default suite in both, and ends
# with one line "N passed, N failed, N skipped". Exit status is non-zero on any failure.
#   tools/test.sh            both builds
#   tools/test.sh --quick    only the normal build
#   tools/test.sh --tsan     both, plus a ThreadSanitizer build (not in CI: it doubles the time)
set -uo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh || exit 1

builds=(build)
[[ "${1:-}" == "--quick" ]] || builds+=(build-asan)
[[ "${1:-}" == "--tsan" ]] && builds+=(build-tsan)
jobs=$(nproc)
status=0
for b in "${builds[@]}"; do
  opts=()
  [[ "$b" == build-asan ]] && opts=(-Db_sanitize=address,undefined -Db_lundef=false)
  # GCC 12 warns that TSan does not model atomic_thread_fence (the tokenizer cache's seqlock
  # uses one); suppressions for Open MPI's internals come from tests/tsan.supp.
  [[ "$b" == build-tsan ]] && opts=(-Db_sanitize=thread -Db_lundef=false -Dc_args=-Wno-tsan)
  if [[ ! -d "$b" ]]; then
    meson setup "$b" "${opts[@]}" >/dev/null || { echo "meson setup $b failed" >&2; exit 1; }
  fi
  ninja -C "$b" -j "$jobs" >/dev/null || { ninja -C "$b" -j 1 2>&1 | tail -40; echo "build $b failed" >&2; exit 1; }
  echo "== $b: meson test (all suites but slow)"
  # slow is excluded from the default run; meson's own output lists each test.
  meson test -C "$b" --no-suite slow --num-processes "$jobs" --print-errorlogs \
      --timeout-multiplier "$([[ $b == build ]] && echo 1 || echo 4)" >"$b/test-output.txt" 2>&1 || status=1
  grep -E '^ *[0-9]+/[0-9]+ ' "$b/test-output.txt" | grep -vE ' OK | SKIP ' || true
  tail -n 9 "$b/test-output.txt" | grep -E '^(Ok|Fail|Skipped|Timeout|Expected Fail|Unexpected Pass):'
done

python3 - "${builds[@]}" <<'PY'
import json, sys
passed = failed = skipped = 0
for b in sys.argv[1:]:
    try:
        lines = open(f"{b}/meson-logs/testlog.json").read().splitlines()
    except OSError:
        failed += 1
        continue
    for line in lines:
        r = json.loads(line)["result"]
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
PY
rc=$?
[[ $status -ne 0 || $rc -ne 0 ]] && exit 1
exit 0
