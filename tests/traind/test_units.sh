#!/bin/bash
# etc/systemd/sc-traind.service passes systemd-analyze verify (with ExecStart pointed at the built
# binary); the committed etc/superclass/traind.conf is what --print-config generates and loads.
. "$(dirname "$0")/traind_lib.sh"
SRC=${SC_SOURCE_ROOT:?}
"$TRAIND" --config /dev/null --print-config | cmp -s - "$SRC/etc/superclass/traind.conf" ||
    fail "etc/superclass/traind.conf is stale: regenerate with sc-traind --config /dev/null --print-config"
"$TRAIND" --config "$SRC/etc/superclass/traind.conf" --check-config >/dev/null || fail "traind.conf does not load"
"$TRAIND" --config /dev/null --set train.bogus=1 --check-config 2>/dev/null && fail "unknown key accepted"
# sc-synth is deterministic: the same arguments give byte-identical shards.
SYN=$BUILD/tools/sc-synth
"$SYN" --out "$W/s1" --count 300 --per-shard 120 --seed 7 2>/dev/null || fail "sc-synth"
"$SYN" --out "$W/s2" --count 300 --per-shard 120 --seed 7 2>/dev/null || fail "sc-synth"
[ "$(ls "$W/s1" | wc -l)" = 3 ] || fail "sc-synth: expected 3 shards"
for f in "$W"/s1/*.tar; do cmp -s "$f" "$W/s2/$(basename "$f")" || fail "sc-synth not deterministic"; done
[ "$(tar -tf "$W/s1/synth-000000.tar" | wc -l)" = 240 ] || fail "sc-synth: 120 jpg+txt pairs expected"
command -v systemd-analyze >/dev/null || { echo "no systemd-analyze: skip"; exit 77; }
sed "s|/usr/sbin/sc-traind|$TRAIND|" "$SRC/etc/systemd/sc-traind.service" > "$W/sc-traind.service"
OUT=$(systemd-analyze verify "$W/sc-traind.service" 2>&1)
RC=$?
# Only complaints about our own unit count (a missing sc-datad.service is expected here).
if [ $RC != 0 ] || echo "$OUT" | grep "sc-traind.service" | grep -qv "sc-datad"; then
    echo "$OUT"; fail "systemd-analyze verify: status $RC"
fi
echo "ok: unit verified, config table consistent"
