#!/usr/bin/env bash
# Installs, with apt-get, everything okd needs on a fresh Debian 12 machine: compiler, CMake,
# GoogleTest, CLI11, stb, OpenBLAS, zlib and the Fashion-MNIST data set. Idempotent: it installs
# only what is missing, says what, and prints nothing when there is nothing to do.
# The CUDA toolkit (nvcc, cuBLAS, cuDNN) is not an apt package here: when /usr/local/cuda is
# present the build uses it, otherwise okd builds for the CPU only.
set -euo pipefail

packages=(g++ make cmake pkg-config libgtest-dev libcli11-dev libstb-dev libopenblas-dev
          zlib1g-dev dataset-fashion-mnist)
# Optional: python3-torch, python3-torchvision and python3-numpy regenerate the reference files under tests/data
# (tests/reference/*.py) and run the PyTorch peer benchmarks; CI only reads the committed files.
if [[ "${OKD_SETUP_PYTHON:-0}" == 1 ]]; then packages+=(python3-numpy python3-torch python3-torchvision); fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "setup: done"
