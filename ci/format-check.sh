#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Checks that the C sources and OpenCL kernels follow .clang-format.
#   bash ci/format-check.sh          check only (exit 1 and list the files that differ)
#   bash ci/format-check.sh --fix    reformat those files in place
# CI uses Debian 12's clang-format 14; other versions may wrap a few lines differently.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fix=0
case "${1:-}" in
"") ;;
--fix) fix=1 ;;
*)
    echo "usage: bash ci/format-check.sh [--fix]" >&2
    exit 2
    ;;
esac

CLANG_FORMAT=${CLANG_FORMAT:-clang-format}
if ! command -v "$CLANG_FORMAT" >/dev/null 2>&1; then
    echo "format-check: $CLANG_FORMAT not found (bash ci/install-deps.sh installs it)" >&2
    exit 1
fi

# OpenCL C is C with address-space qualifiers; clang-format handles cl/*.cl as C.
files=()
while IFS= read -r -d '' f; do
    files+=("$f")
done < <(find include src tools tests bench cl mpi fuzz -type f \
    \( -name '*.c' -o -name '*.h' -o -name '*.cl' \) -print0 2>/dev/null | sort -z)

if [ ${#files[@]} -eq 0 ]; then
    echo "format-check: no source files found" >&2
    exit 1
fi

if [ $fix -eq 1 ]; then
    "$CLANG_FORMAT" -i "${files[@]}"
    echo "format-check: formatted ${#files[@]} files with $("$CLANG_FORMAT" --version)"
    exit 0
fi

bad=()
for f in "${files[@]}"; do
    if ! "$CLANG_FORMAT" --dry-run --Werror "$f" >/dev/null 2>&1; then
        bad+=("$f")
    fi
done

if [ ${#bad[@]} -ne 0 ]; then
    echo "format-check: ${#bad[@]} of ${#files[@]} files differ from .clang-format:" >&2
    for f in "${bad[@]}"; do
        echo "  $f" >&2
    done
    # Show the first file's diff so a CI log says what is wrong without a re-run.
    echo "first difference (${bad[0]}):" >&2
    "$CLANG_FORMAT" "${bad[0]}" | diff -u "${bad[0]}" - | head -40 >&2 || true
    echo "fix with: bash ci/format-check.sh --fix" >&2
    exit 1
fi
echo "format-check: ${#files[@]} files clean ($("$CLANG_FORMAT" --version))"
