#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The main job: installs what is missing, builds clpsa (Release) in build/, then runs
# `clpsa run` on its embedded default workload on the default OpenCL device (PoCL's CPU device
# on a machine without a GPU). Extra arguments go to `clpsa run`, e.g.
#   bash ci/run-main.sh --dtype fp16 --json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Set-up chatter goes to stderr so stdout carries only what `clpsa run` prints (e.g. --json).
bash ci/install-deps.sh >&2
# A build/ folder configured from another source tree (a copied checkout) makes CMake stop.
if [ -f build/CMakeCache.txt ] &&
    ! grep -qx "CMAKE_HOME_DIRECTORY:INTERNAL=$PWD" build/CMakeCache.txt; then
    rm -rf build
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCLPSA_BUILD_TESTS=OFF >&2
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" --target clpsa_tool >&2
exec ./build/clpsa run "$@"
