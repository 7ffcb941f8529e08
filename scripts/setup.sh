#!/usr/bin/env bash
# Installs the Debian packages recur needs to build and test, when they are missing. Idempotent.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libopenblas-dev          # GEMMs (CBLAS)
  zlib1g-dev               # gzip-compressed data files (Fashion-MNIST idx)
  libyaml-cpp-dev          # YAML configs
  nlohmann-json3-dev       # safetensors headers, JSON output
  libcli11-dev             # the CLI
  libspdlog-dev libfmt-dev # logging, formatting
  libsentencepiece-dev     # subword tokens
  libgtest-dev libgmock-dev libbenchmark-dev
  openmpi-bin libopenmpi-dev  # mpirun + MPI for data-parallel training (docs/DISTRIBUTED.md)
  clang libclang-rt-14-dev # libFuzzer + sanitizers for the fuzz step
  # video files (recur/data/video.h; optional, CMake RECUR_OPENCV): decoding/encoding via FFmpeg
  libopencv-core-dev libopencv-imgproc-dev libopencv-videoio-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
