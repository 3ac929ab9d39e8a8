#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every source file (C, OpenCL C, CMake, shell, Python, templates, scripts) carries the line
# "SPDX-License-Identifier: Apache-2.0" in its first five lines. Lists the files that do not.
#   bash ci/check-spdx.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "${BASH_SOURCE[0]}")/..}"

is_source() {
    case "$1" in
    *.c | *.h | *.cl | *.cmake | *.in | *.sh | *.py | *.supp | CMakeLists.txt | */CMakeLists.txt) return 0 ;;
    esac
    # Scripts without an extension, such as .ci/run.
    head -c 2 "$1" 2>/dev/null | grep -q '^#!'
}

# Tracked and new (not ignored) files in a checkout; every file below the folder otherwise.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    list() { git ls-files -z --cached --others --exclude-standard; }
else
    list() { find . -path ./.git -prune -o -type f -print0 | sed -z 's|^\./||'; }
fi

checked=0
missing=()
while IFS= read -r -d '' f; do
    [ -f "$f" ] || continue
    case "$f" in build*/* | LICENSE) continue ;; esac
    is_source "$f" || continue
    checked=$((checked + 1))
    head -n 5 "$f" | grep -q 'SPDX-License-Identifier: Apache-2.0' || missing+=("$f")
done < <(list)

if [ $checked -eq 0 ]; then
    echo "check-spdx: no source files found" >&2
    exit 1
fi
if [ ${#missing[@]} -ne 0 ]; then
    echo "check-spdx: ${#missing[@]} of $checked source files lack" \
        "'SPDX-License-Identifier: Apache-2.0' in their first 5 lines:" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
fi
echo "check-spdx: $checked source files carry the Apache-2.0 SPDX line"
