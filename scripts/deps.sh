#!/usr/bin/env bash
# Install (as root) or name the Debian packages optimlab needs.
#   scripts/deps.sh build   - compiler, CMake and libraries
#   scripts/deps.sh run     - the above plus the Fashion-MNIST dataset and the fortunes text corpus
#   scripts/deps.sh test    - the above plus what the tests use
#   scripts/deps.sh fuzz | valgrind - the tools of those CI targets
set -euo pipefail
what=${1:-build}
pkgs=(build-essential cmake pkg-config libopenblas-dev libdnnl-dev zlib1g-dev libjansson-dev libyaml-dev
      libopenmpi-dev openmpi-bin)
case "$what" in
  build) ;;
  run) pkgs+=(dataset-fashion-mnist fortunes) ;;
  test) pkgs+=(dataset-fashion-mnist fortunes python3 python3-numpy) ;;
  fuzz) pkgs+=(clang libclang-rt-dev) ;;
  valgrind) pkgs+=(valgrind) ;;
  *) echo "usage: $0 build|run|test|fuzz|valgrind" >&2; exit 2 ;;
esac
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing Debian packages; install them with:" >&2
  echo "  sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
