#!/usr/bin/env bash
# Builds recur here (CUDA for sm_90, no -march=native) and bundles the binaries with the shared
# libraries they need into .gpu/prebuilt, the fallback scripts/gpu-check.sh uses when the GPU
# machine lacks a build dependency. The CUDA libraries (cuBLAS) come from the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-prebuilt -DCMAKE_BUILD_TYPE=Release -DRECUR_NATIVE=OFF -DRECUR_WERROR=OFF -DRECUR_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES=90 >/dev/null
cmake --build build-prebuilt -j "$(nproc)" --target recur_cli recur_tests
rm -rf .gpu/prebuilt && mkdir -p .gpu/prebuilt/lib
cp build-prebuilt/bin/recur build-prebuilt/recur_tests .gpu/prebuilt/
strip .gpu/prebuilt/recur .gpu/prebuilt/recur_tests
for b in .gpu/prebuilt/recur .gpu/prebuilt/recur_tests; do
  ldd "$b" | awk '/=> \// {print $3}'
done | sort -u | grep -v -E 'lib(c|m|pthread|dl|rt|stdc\+\+|gcc_s|cuda|cublas|cublasLt|cudnn|nccl)\.so' |
  while read -r lib; do cp -L "$lib" .gpu/prebuilt/lib/; done
du -sh .gpu/prebuilt
