#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The checks themselves must fail when they should: ci/check-spdx.sh on a file without the
# SPDX line, tests/check_exports.sh on an export list that differs from the headers, and the
# configure step on contradictory options.
#   bash tests/check_checkers.sh SOURCE_DIR SHARED_LIBRARY
set -euo pipefail
source=$1
lib=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/clpsa-checkers.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() {
    echo "check_checkers: $*" >&2
    exit 1
}

# expect_failure NEEDLE COMMAND...: the command must exit non-zero and print NEEDLE.
expect_failure() {
    local needle=$1
    shift
    if "$@" >"$work/out" 2>&1; then
        fail "succeeded but should have failed: $*"
    fi
    # CMake wraps its messages: compare with the lines joined.
    tr -s ' \n' '  ' <"$work/out" | grep -q -- "$needle" ||
        fail "'$*' did not say '$needle': $(cat "$work/out")"
}

echo "== check-spdx.sh finds a source file without the line"
mkdir -p "$work/spdx/sub"
printf '/* SPDX-License-Identifier: Apache-2.0 */\nint a;\n' >"$work/spdx/good.c"
printf 'int b;\n' >"$work/spdx/sub/bad.cl"
expect_failure "sub/bad.cl" bash "$source/ci/check-spdx.sh" "$work/spdx"
rm "$work/spdx/sub/bad.cl"
bash "$source/ci/check-spdx.sh" "$work/spdx" >/dev/null || fail "check-spdx.sh rejected a clean tree"

echo "== check_exports.sh finds an exported function the headers do not declare, and the reverse"
cp -r "$source/include/clpsa" "$work/headers"
sed -i 's/^CLPSA_API int clpsa_version_number/int clpsa_version_number/' "$work/headers/clpsa.h"
expect_failure "clpsa_version_number" bash "$source/tests/check_exports.sh" "$lib" "$work/headers"
cp "$source/include/clpsa/clpsa.h" "$work/headers/clpsa.h"
printf 'CLPSA_API int clpsa_not_in_the_library(void);\n' >>"$work/headers/clpsa_npy.h"
expect_failure "clpsa_not_in_the_library" bash "$source/tests/check_exports.sh" "$lib" \
    "$work/headers"

echo "== configure rejects contradictory options"
expect_failure "at least one library must be built" cmake -S "$source" -B "$work/b1" \
    -DCLPSA_BUILD_SHARED=OFF -DCLPSA_BUILD_STATIC=OFF
expect_failure "CLPSA_BUILD_TESTS=ON needs CLPSA_BUILD_TOOLS=ON" cmake -S "$source" \
    -B "$work/b2" -DCLPSA_BUILD_TESTS=ON -DCLPSA_BUILD_TOOLS=OFF
echo "check_checkers: every check failed where it should"
