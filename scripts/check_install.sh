#!/usr/bin/env bash
# Checks that okd can be embedded: installs a build of okd into a scratch prefix
# (cmake --install), then configures, builds and runs examples/embed, a separate CMake project
# that finds it with find_package(okd) and trains with it. Exits non-zero on any failure.
# Usage: scripts/check_install.sh [BUILD_DIR]   (default: build; it must be built already)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
[[ -f "$build/CMakeCache.txt" ]] || { echo "check_install: $build is not a configured okd build" >&2; exit 2; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cmake --install "$build" --prefix "$scratch/prefix" > "$scratch/install.log"
echo "installed $(find "$scratch/prefix" -type f | wc -l) files into a scratch prefix"
cmake -S examples/embed -B "$scratch/embed" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$scratch/prefix" > "$scratch/configure.log" ||
  { cat "$scratch/configure.log"; exit 1; }
cmake --build "$scratch/embed" -j"${OKD_JOBS:-$(nproc)}" > "$scratch/build.log" ||
  { cat "$scratch/build.log"; exit 1; }
"$scratch/embed/embed"
