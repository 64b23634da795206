#!/usr/bin/env bash
# Installs every Debian package superclass needs to build, test and benchmark, with apt-get.
# Idempotent and quiet when nothing is missing. Run as root (or with sudo available).
#   tools/install-deps.sh            build + test dependencies
#   tools/install-deps.sh --bench    also the benchmark peers (PyTorch, PIL, torchvision)
set -euo pipefail

pkgs=(
  build-essential meson ninja-build pkg-config python3 procps
  libuv1-dev libturbojpeg0-dev libjpeg62-turbo-dev libwebp-dev liblmdb-dev libzstd-dev
  libopenblas-dev zlib1g-dev libutf8proc-dev nettle-dev libarchive-dev libjansson-dev
  libspng-dev libpng-dev libsystemd-dev systemd openmpi-bin libopenmpi-dev
)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-regex python3-torch python3-pil python3-torchvision python3-lmdb python3-numpy)
fi

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >/dev/null
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
