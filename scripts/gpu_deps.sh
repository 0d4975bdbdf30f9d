#!/usr/bin/env bash
# okd's build dependencies for the GPU machine of the device tool, which reaches no package
# registry and whose image (CUDA, PyTorch, CMake from pip) may lack GoogleTest, CLI11, stb and
# zlib's headers, and may hold cuDNN only as PyTorch's nvidia-cudnn wheel.
#   bash scripts/gpu_deps.sh fetch      here, before the session: downloads the Debian packages
#                                       into gpu_deps/ (untracked and not ignored, so the device
#                                       tool copies it along; about 2 MB; never commit it)
#   bash scripts/gpu_deps.sh cmake-args on the GPU machine (gpu_check.sh calls it): unpacks
#                                       gpu_deps/ into /tmp/okd-deps when a header is missing from
#                                       the system, finds cuDNN, and prints the extra CMake
#                                       arguments (one per line); what it did goes to stderr.
# Debian 12 built these packages; their static and shared libraries run on any newer glibc.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(libgtest-dev googletest libcli11-dev libstb-dev libstb0 zlib1g-dev zlib1g)
prefix=/tmp/okd-deps
arch_lib=lib/x86_64-linux-gnu

case "${1:-}" in
  fetch)
    mkdir -p gpu_deps
    (cd gpu_deps && apt-get download "${packages[@]}")
    ls -l gpu_deps
    ;;
  cmake-args)
    have() { [[ -e /usr/include/$1 || -e /usr/local/include/$1 ]]; }
    missing=()
    for h in gtest/gtest.h CLI/CLI.hpp stb/stb_image.h zlib.h; do
      have "$h" && [[ -z ${GPU_DEPS_FORCE:-} ]] || missing+=("$h")  # FORCE: test the unpacking here
    done
    if ((${#missing[@]})); then
      echo "gpu_deps: not on this system: ${missing[*]}" >&2
      compgen -G "gpu_deps/*.deb" > /dev/null || {
        echo "gpu_deps: no gpu_deps/*.deb to unpack (run 'bash scripts/gpu_deps.sh fetch' first)" >&2
        exit 1
      }
      mkdir -p "$prefix"
      for deb in gpu_deps/*.deb; do
        if command -v dpkg-deb > /dev/null; then
          dpkg-deb -x "$deb" "$prefix"
        else  # a .deb is an ar archive holding data.tar.*
          tmp=$(mktemp -d)
          (cd "$tmp" && ar x "$OLDPWD/$deb" && tar -xf data.tar.* -C "$prefix")
          rm -rf "$tmp"
        fi
      done
      echo "gpu_deps: unpacked $(ls gpu_deps/*.deb | wc -l) packages into $prefix" >&2
      u=$prefix/usr
      echo "-DCMAKE_PREFIX_PATH=$u"
      echo "-DGTest_DIR=$u/$arch_lib/cmake/GTest"
      echo "-DCLI11_DIR=$u/share/cmake/CLI11"
      echo "-DOKD_STB_INCLUDE_DIR=$u/include"
      echo "-DOKD_STB_LIBRARY=$u/$arch_lib/libstb.so"
      echo "-DZLIB_INCLUDE_DIR=$u/include"
      echo "-DZLIB_LIBRARY=$u/$arch_lib/libz.a"
    fi
    # cuDNN beside the toolkit, else PyTorch's wheel.
    cuda_home=$(dirname "$(dirname "$(command -v nvcc 2> /dev/null || echo /usr/local/cuda/bin/nvcc)")")
    if ! compgen -G "$cuda_home/include/cudnn.h" > /dev/null && ! [[ -e /usr/include/cudnn.h ]]; then
      root=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0])' 2> /dev/null || true)
      if [[ -n $root && -e $root/include/cudnn.h ]]; then
        echo "gpu_deps: cuDNN from the Python wheel at $root" >&2
        echo "-DOKD_CUDNN_ROOT=$root"
      else
        echo "gpu_deps: no cuDNN found (convolutions will have no CUDA kernel)" >&2
      fi
    fi
    ;;
  *)
    sed -n '2,13p' "$0"
    exit 2
    ;;
esac
