#!/usr/bin/env bash
# Installs the CPU half of libtorch 2.13.0 (the version tch 0.26 is built for) from PyPI into a cache folder and
# prints the folder to use as LIBTORCH. PyPI's Linux wheel is a CUDA build: its CUDA libraries are deleted so that
# torch-sys links the CPU libraries only; libtorch_cpu.so still needs libcudart and libcupti, installed beside it.
# Usage: export LIBTORCH=$(scripts/libtorch.sh)
set -euo pipefail
version=2.13.0
home=${LABD_LIBTORCH_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/labd/libtorch-$version}
find_torch() { find "$home/lib" -maxdepth 3 -type d -path '*/site-packages/torch' 2>/dev/null | head -n1 || true; }
torch=$(find_torch)
if [ -z "$torch" ] || [ ! -f "$torch/lib/libtorch_cpu.so" ]; then
  echo "installing libtorch $version into $home (about 540 MB from PyPI)" >&2
  rm -rf "$home"
  python3 -m venv "$home" >&2
  "$home/bin/pip" install -q --disable-pip-version-check --no-deps \
    "torch==$version" nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85 >&2
  torch=$(find_torch)
  rm -f "$torch"/lib/libtorch_cuda.so "$torch"/lib/libtorch_cuda_linalg.so "$torch"/lib/libtorch_nvshmem.so \
    "$torch"/lib/libc10_cuda.so "$torch"/lib/libcaffe2_nvrtc.so
fi
echo "$torch"
