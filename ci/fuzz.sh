#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets of fuzz/ with Debian's clang (AddressSanitizer and
# UndefinedBehaviorSanitizer on, the library instrumented for coverage) and runs each for a
# bounded time from its committed seeds (fuzz/corpus/TARGET) and past crash inputs
# (fuzz/regressions/TARGET). New inputs go to a work folder in the build directory, never into
# the source tree. Prints the executions of every target; exits non-zero on any finding, with
# the input that triggered it under BUILD/fuzz-artifacts/ (copy it to fuzz/regressions/TARGET/:
# the normal ctest run replays every file there). ci/test.sh calls it.
# Environment (all optional):
#   CLPSA_FUZZ_SECONDS  time per target (default 8)
#   CLPSA_FUZZ_BUILD    build folder (default build-fuzz)
#   CLPSA_FUZZ_CC       the clang to use (default clang)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
BUILD=${CLPSA_FUZZ_BUILD:-build-fuzz}
SECONDS_EACH=${CLPSA_FUZZ_SECONDS:-8}
CC=${CLPSA_FUZZ_CC:-clang}
TARGETS=(fuzz_npy fuzz_params fuzz_program_cache fuzz_plan_desc)

# A build folder configured from another source tree (copied checkout) makes CMake stop.
if [ -f "$BUILD/CMakeCache.txt" ] &&
    [ "$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")" != "$ROOT" ]; then
    rm -rf "$BUILD"
fi
# Only the static objects and the fuzz targets: no tools, tests or shared library.
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=Debug \
    "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" -DCMAKE_C_FLAGS=-fsanitize=fuzzer-no-link \
    -DCLPSA_SANITIZE=address,undefined -DCLPSA_BUILD_FUZZ=ON -DCLPSA_WERROR=ON \
    -DCLPSA_BUILD_TESTS=OFF -DCLPSA_BUILD_TOOLS=OFF -DCLPSA_BUILD_BENCH=OFF \
    -DCLPSA_BUILD_EXAMPLES=OFF -DCLPSA_BUILD_MPI=OFF -DCLPSA_INSTALL=OFF \
    -DCLPSA_BUILD_SHARED=OFF >/dev/null
cmake --build "$BUILD" -j "$(nproc 2>/dev/null || echo 2)" --target "${TARGETS[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
summary=()
for target in "${TARGETS[@]}"; do
    work=$BUILD/fuzz-work/$target
    artifacts=$BUILD/fuzz-artifacts
    mkdir -p "$work" "$artifacts"
    log=$BUILD/fuzz-work/$target.log
    rc=0
    # -timeout: one input running a second is a hang; -rss_limit_mb: a runaway allocation.
    "$BUILD/fuzz/$target" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -max_len=4096 -print_final_stats=1 -artifact_prefix="$artifacts/$target-" \
        "$work" "fuzz/corpus/$target" "fuzz/regressions/$target" </dev/null >"$log" 2>&1 || rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    corpus=$(grep -Eo 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -1 || true)
    if [ $rc -ne 0 ]; then
        failed=1
        echo "==== $target FAILED (exit $rc); the end of its log:" >&2
        tail -n 40 "$log" >&2
        summary+=("$(printf '  %-20s FAIL (exit %d) after %s executions; input in %s' \
            "$target" "$rc" "${runs:-?}" "$artifacts")")
    else
        summary+=("$(printf '  %-20s %10s executions in %ss, %s' "$target" "${runs:-?}" \
            "$SECONDS_EACH" "${corpus:-corp: ?}")")
    fi
done
echo "fuzz: libFuzzer with ASan+UBSan, $SECONDS_EACH s per target"
printf '%s\n' "${summary[@]}"
exit $failed
