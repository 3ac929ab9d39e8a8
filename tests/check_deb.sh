#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the Debian package of a built tree (cpack -G DEB), checks its contents and Depends
# line, unpacks it and runs the packaged `clpsa devices`.
#   bash tests/check_deb.sh BUILD_DIR VERSION
set -euo pipefail
build=$1
version=$2
major=${version%%.*}
work=$(mktemp -d "${TMPDIR:-/tmp}/clpsa-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
    echo "check_deb: $*" >&2
    exit 1
}

cpack -G DEB --config "$build/CPackConfig.cmake" -B "$work/out" >"$work/cpack.log" ||
    { cat "$work/cpack.log"; fail "cpack -G DEB failed"; }
deb=$(find "$work/out" -maxdepth 1 -name "clpsa_${version}*.deb" | head -1)
[ -n "$deb" ] || fail "no clpsa_${version}*.deb in $(ls "$work/out")"
echo "package: $(basename "$deb")"
dpkg-deb -f "$deb" Package Version Depends
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || fail "package version is not $version"
depends=$(dpkg-deb -f "$deb" Depends)
# What the packaged binaries link must be installed with them on a clean machine.
for need in libc6 'libopencl1\|ocl-icd-libopencl1' libclblast libpng; do
    echo "$depends" | grep -q "$need" || fail "Depends lacks $need: $depends"
done
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/bin/clpsa "./usr/lib/libclpsa.so.$version" "./usr/lib/libclpsa.so.$major" \
    ./usr/include/clpsa/clpsa.h ./usr/lib/pkgconfig/clpsa.pc ./usr/lib/cmake/clpsa/clpsaConfig.cmake \
    ./usr/share/doc/clpsa/LICENSE; do
    grep -q " $f\( \|\$\)" "$work/contents" || fail "package lacks $f"
done
grep -q '^prefix=/usr$' <(dpkg-deb --fsys-tarfile "$deb" | tar -xO ./usr/lib/pkgconfig/clpsa.pc) ||
    fail "the packaged clpsa.pc does not say prefix=/usr"
dpkg-deb -x "$deb" "$work/root"
env -u LD_LIBRARY_PATH "$work/root/usr/bin/clpsa" devices || fail "packaged clpsa devices failed"
echo "check_deb: package built, complete, and its clpsa devices runs"
