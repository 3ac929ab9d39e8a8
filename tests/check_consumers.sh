#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs a built clpsa into a temporary prefix and uses it as an outside project would:
# the installed files and SONAME, the installed `clpsa devices`, tests/consumer built with
# CMake's find_package (shared and static), with pkg-config (shared and static), and clpsa
# embedded in another CMake project through add_subdirectory and FetchContent.
#   bash tests/check_consumers.sh BUILD_DIR SOURCE_DIR VERSION
set -euo pipefail
build=$1
source=$2
version=$3
major=${version%%.*}
work=$(mktemp -d "${TMPDIR:-/tmp}/clpsa-consumers.XXXXXX")
trap 'rm -rf "$work"' EXIT
prefix=$work/prefix
consumer=$source/tests/consumer

fail() {
    echo "check_consumers: $*" >&2
    exit 1
}

echo "== install into $prefix"
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
libdir=$(sed -n 's/^libdir=//p' "$prefix"/lib*/pkgconfig/clpsa.pc | head -1)
libdir=${libdir//\$\{prefix\}/$prefix}
for f in "$libdir/libclpsa.so.$version" "$libdir/libclpsa.so.$major" "$libdir/libclpsa.so" \
    "$libdir/libclpsa.a" "$prefix/include/clpsa/clpsa.h" "$prefix/include/clpsa/clpsa_tuning.h" \
    "$prefix/include/clpsa/clpsa_npy.h" "$prefix/include/clpsa/clpsa_workload.h" \
    "$libdir/cmake/clpsa/clpsaConfig.cmake" "$libdir/cmake/clpsa/clpsaConfigVersion.cmake" \
    "$libdir/pkgconfig/clpsa.pc" "$prefix/bin/clpsa" "$prefix/share/doc/clpsa/LICENSE"; do
    [ -e "$f" ] || fail "not installed: $f"
done
[ "$(readlink "$libdir/libclpsa.so.$major")" = "libclpsa.so.$version" ] ||
    fail "libclpsa.so.$major does not point to libclpsa.so.$version"
soname=$(readelf -d "$libdir/libclpsa.so.$version" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libclpsa.so.$major" ] || fail "SONAME is '$soname', expected libclpsa.so.$major"
grep -q "prefix=$prefix\$" "$libdir/pkgconfig/clpsa.pc" ||
    fail "clpsa.pc does not name the install prefix: $(head -3 "$libdir/pkgconfig/clpsa.pc")"

echo "== installed clpsa devices (finds its library through its RPATH)"
env -u LD_LIBRARY_PATH "$prefix/bin/clpsa" devices >"$work/devices.log" ||
    fail "installed clpsa devices failed: $(cat "$work/devices.log")"
used=$(ldd "$prefix/bin/clpsa" | awk '/libclpsa\.so/ {print $3}')
[ -n "$used" ] && [ "$(realpath "$used")" = "$(realpath "$libdir/libclpsa.so.$major")" ] ||
    fail "installed clpsa uses '$used', not the installed libclpsa.so.$major"

run() { # name, program: runs the consumer, which exits 0 when its checks pass
    echo "== run consumer ($1)"
    env -u LD_LIBRARY_PATH "$2" || fail "consumer ($1) failed"
}

for link in clpsa::clpsa clpsa::clpsa_static; do
    dir=$work/package-${link#clpsa::}
    echo "== find_package(clpsa), linking $link"
    cmake -S "$consumer" -B "$dir" -DCMAKE_PREFIX_PATH="$prefix" -DCLPSA_EXPECT_VERSION="$version" \
        -DCLPSA_CONSUMER_LINK="$link" >"$dir.log" || { cat "$dir.log"; fail "configure ($link)"; }
    cmake --build "$dir" >>"$dir.log" || { cat "$dir.log"; fail "build ($link)"; }
    run "find_package, $link" "$dir/consumer"
done
readelf -d "$work/package-clpsa_static/consumer" | grep -q 'NEEDED.*libclpsa' &&
    fail "the consumer linked with clpsa::clpsa_static depends on libclpsa.so"
readelf -d "$work/package-clpsa/consumer" | grep -q "NEEDED.*libclpsa.so.$major" ||
    fail "the consumer linked with clpsa::clpsa does not depend on libclpsa.so.$major"

echo "== pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
cc=${CC:-cc}
flags="-std=c11 -Wall -Wextra -Werror -DCLPSA_CONSUMER_EXPECT_VERSION=\"$version\""
# shellcheck disable=SC2046,SC2086 # word splitting of the flags is intended
$cc $flags "$consumer/consumer.c" "$consumer/consumer_cl12.c" -o "$work/pc-shared" \
    $(pkg-config --cflags --libs clpsa) -Wl,-rpath,"$libdir"
run "pkg-config, shared" "$work/pc-shared"
# The archive instead of the shared library, with what `pkg-config --static` adds for it (-lm).
static_libs=$(pkg-config --static --libs clpsa | sed 's/-lclpsa\b/-l:libclpsa.a/')
pkg-config --static --libs clpsa | grep -q -- '-lm' || fail "pkg-config --static lacks -lm"
# shellcheck disable=SC2046,SC2086
$cc $flags "$consumer/consumer.c" "$consumer/consumer_cl12.c" -o "$work/pc-static" \
    $(pkg-config --cflags clpsa) $static_libs
readelf -d "$work/pc-static" | grep -q 'NEEDED.*libclpsa' &&
    fail "the pkg-config static consumer depends on libclpsa.so"
run "pkg-config, static" "$work/pc-static"

for mode in subdirectory fetchcontent; do
    dir=$work/$mode
    echo "== clpsa inside another CMake project: $mode"
    # Static only for add_subdirectory: an embedding project may build just one library.
    extra=()
    [ "$mode" = subdirectory ] && extra=(-DCLPSA_BUILD_SHARED=OFF)
    cmake -S "$consumer" -B "$dir" -DCLPSA_CONSUMER_MODE="$mode" -DCLPSA_SOURCE_DIR="$source" \
        -DCLPSA_EXPECT_VERSION="$version" "${extra[@]}" >"$dir.log" ||
        { cat "$dir.log"; fail "configure ($mode)"; }
    cmake --build "$dir" -j "$(nproc 2>/dev/null || echo 2)" >>"$dir.log" ||
        { cat "$dir.log"; fail "build ($mode)"; }
    run "$mode" "$dir/consumer"
done
echo "check_consumers: all consumers built and ran"
