#!/usr/bin/env bash
# README quick start, command 1: installs what is missing, builds, and runs the main job on an
# embedded default (no downloads beyond Debian packages).
#
# Today the main job is the label pipeline's first stage: it generates a deterministic caption
# corpus, learns an own BPE vocabulary from it with `sc-tok train`, and shows captions turned into
# SuperClass label vectors and back. Output goes to ./quickstart-out (override with $1).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-quickstart-out}"
tools/install-deps.sh
[[ -d build ]] || meson setup build >/dev/null
ninja -C build >/dev/null
mkdir -p "$out"

# A deterministic caption corpus: colours, shapes, counts and scenes in varied sentences.
awk 'BEGIN {
  split("red orange yellow green blue purple pink brown black white grey golden", col, " ");
  split("circle square triangle star heart diamond hexagon cross arrow moon", shp, " ");
  split("one two three four five six seven eight nine", num, " ");
  split("on a white background|in the middle of the picture|next to a tree|floating in the sky|drawn by hand|on a wooden table|under the rain|in a small frame", scn, "|");
  split("a photo of a %s %s %s|a drawing of %s %s %ss %s|%s %s %ss, %s|clip art: the %s %s %s|an icon showing a %s %s %s", tpl, "|");
  seed = 12345;
  for (i = 0; i < 4000; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648; c = col[1 + seed % 12];
    seed = (seed * 1103515245 + 12345) % 2147483648; s = shp[1 + seed % 10];
    seed = (seed * 1103515245 + 12345) % 2147483648; n = num[1 + seed % 9];
    seed = (seed * 1103515245 + 12345) % 2147483648; p = scn[1 + seed % 8];
    seed = (seed * 1103515245 + 12345) % 2147483648; t = 1 + seed % 5;
    if (t == 2 || t == 3) printf(tpl[t] "\n", n, c, s, p); else printf(tpl[t] "\n", c, s, p);
  }
}' > "$out/captions.txt"
echo "== generated $(wc -l < "$out/captions.txt") captions in $out/captions.txt"

echo "== learning a 1,000-id vocabulary with sc-tok train"
build/tools/sc-tok train --vocab-size 1000 -o "$out/vocab.txt" "$out/captions.txt"
build/tools/sc-tok --vocab "$out/vocab.txt" info

echo "== captions -> token ids -> label vectors (what SuperClass trains on)"
head -n 3 "$out/captions.txt" | while IFS= read -r line; do
  echo "caption: $line"
  printf '  tokens: '; build/tools/sc-tok --vocab "$out/vocab.txt" encode "$line"
  printf '  label:  '; build/tools/sc-tok --vocab "$out/vocab.txt" encode --label "$line"
  ids=$(build/tools/sc-tok --vocab "$out/vocab.txt" encode "$line")
  # shellcheck disable=SC2086
  printf '  decode: '; build/tools/sc-tok --vocab "$out/vocab.txt" decode $ids
done
echo "== done: vocabulary in $out/vocab.txt"
