#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages clpsa needs to build, test and run on the CPU (PoCL).
# A no-op when everything is already installed; otherwise needs root (apt-get).
set -euo pipefail

packages=(
    cmake gcc make pkg-config       # build
    libc6-dev                       # C headers (only a Recommends of gcc)
    ocl-icd-opencl-dev              # libOpenCL.so (ICD loader) to link against
    opencl-c-headers                # CL/cl.h
    pocl-opencl-icd                 # the CPU OpenCL driver the tests run on
    libclblast-dev                  # peer comparison in bench/
    libcmocka-dev                   # unit tests
    clinfo                          # diagnosing OpenCL set-ups
    clang-format                    # ci/format-check.sh (Debian 12: version 14)
    libpng-dev                      # pictures of level maps
    doxygen                         # API reference (the clpsa_docs target; a ctest builds it)
    python3-numpy python3-pyopencl  # the Python package's runtime dependencies
    python3-pytest python3-venv     # its tests (ci/test.sh installs it into a venv)
    libopenmpi-dev openmpi-bin      # libclpsa_mpi and examples/mpi_ulysses.c (mpirun in ctest)
    clang libclang-rt-14-dev        # ci/fuzz.sh: libFuzzer and the sanitizer runtimes of clang 14
    libtsan2                        # ThreadSanitizer runtime (gcc -fsanitize=thread, test_threads)
)

missing=()
for p in "${packages[@]}"; do
    # "installed" only; a package removed with its configuration kept reads "config-files".
    status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "installed" ]; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all ${#packages[@]} packages present"
    exit 0
fi

echo "install-deps: missing: ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: not root, cannot install them. Run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y" \
        "--no-install-recommends ${missing[*]}" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
echo "install-deps: installed ${missing[*]}"
