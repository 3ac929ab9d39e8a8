#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The shared library exports exactly the functions the public headers declare with CLPSA_API:
# no internal clpsa__ symbol, nothing from a dependency, and no declared function missing.
#   bash tests/check_exports.sh path/to/libclpsa.so include/clpsa
set -euo pipefail
lib=$1
headers=$2
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sort -u)
declared=$(cat "$headers"/*.h | tr '\n' ' ' | grep -oE 'CLPSA_API [^;{}]*\(' |
    grep -oE 'clpsa_[a-z0-9_]+ *\($' | tr -d ' (' | sort -u)
[ -n "$declared" ] || {
    echo "check_exports: no CLPSA_API declarations found in $headers" >&2
    exit 1
}
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
if [ -n "$extra" ] || [ -n "$missing" ]; then
    [ -z "$extra" ] || printf 'check_exports: exported but not public:\n%s\n' "$extra" >&2
    [ -z "$missing" ] || printf 'check_exports: declared but not exported:\n%s\n' "$missing" >&2
    exit 1
fi
echo "check_exports: $(echo "$exported" | wc -l) symbols, all public clpsa_ functions"
