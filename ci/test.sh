#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The test command: installs what is missing, checks formatting and SPDX lines, builds with
# -Werror and runs the test suites (Release; they include the examples, the export list, the
# API reference, installing + consumers and the Debian package), builds again with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs them again, runs the libFuzzer targets
# for a bounded time (ci/fuzz.sh, about 8 s each), then runs the main job once (`clpsa run`).
# The Python package (python/) is installed with pip into a virtual environment over the
# system's numpy and PyOpenCL, which builds its own libclpsa, and its pytest suite runs on it. Exits non-zero on any
# failure and prints a summary. Run from anywhere, as root on a fresh Debian 12 machine:
#   bash ci/test.sh
# Environment (all optional):
#   CLPSA_CI_CTEST_JOBS   test suites run at once (default 1: some suites time kernels against
#                         a budget, and PoCL runs each kernel on every core anyway; on 2 cores
#                         -j2 took 91 s where -j1 took 104 s, cold caches)
#   POCL_CACHE_DIR        PoCL's kernel cache (default build-ci/pocl-cache, so a run neither
#                         reads nor fills ~/.cache/pocl; the sanitizer run reuses it)
#   CLPSA_CI_SKIP_ASAN=1  skip the sanitizer build (local iterations only; CI runs it)
#   CLPSA_CI_PYTHON       the Python the package is tested with (default /usr/bin/python3, the
#                         one apt's python3-numpy and python3-pyopencl belong to)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

JOBS=$(nproc 2>/dev/null || echo 2)
CTEST_JOBS=${CLPSA_CI_CTEST_JOBS:-1}
BUILD=build-ci
ASAN_BUILD=build-asan
TSAN_BUILD=build-tsan
LOG_DIR=$ROOT/$BUILD/ci-logs

# Sanitizer settings for every process of the sanitizer ctest run (tests, and the `clpsa`
# binary the CLI suite starts). Leaks inside the OpenCL driver stack are suppressed by
# ci/lsan.supp; anything of ours is reported. UBSan stops at the first finding.
SAN_ASAN_OPTIONS="detect_leaks=1:strict_string_checks=1"
SAN_LSAN_OPTIONS="suppressions=$ROOT/ci/lsan.supp:print_suppressions=0"
SAN_UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"

export CTEST_OUTPUT_ON_FAILURE=1
export POCL_CACHE_DIR=${POCL_CACHE_DIR:-$ROOT/$BUILD/pocl-cache}

steps=()   # "name|result|seconds"
rm -rf "$LOG_DIR" # logs of an earlier run would show in this run's summary
failed=0
t_start=$(date +%s)

# Runs a named step in a subshell with `set -e` in force, records PASS/FAIL and its time in
# `steps` and its exit status in `last_rc`, and always returns 0. It must be called as a plain
# command, never inside `if`, `&&` or `||`: bash ignores `set -e` in everything such a context
# runs, subshells included, so a failing command in the middle of a step would go unnoticed.
last_rc=0
run_step() {
    local name=$1
    shift
    local t0 dt
    t0=$(date +%s)
    echo
    echo "==== [$name] $(date -u +%H:%M:%S) ===="
    set +e
    (
        set -e
        "$@"
    )
    last_rc=$?
    set -e
    dt=$(($(date +%s) - t0))
    if [ $last_rc -eq 0 ]; then
        steps+=("$name|PASS|$dt")
    else
        steps+=("$name|FAIL (exit $last_rc)|$dt")
        failed=1
        echo "==== [$name] FAILED with exit status $last_rc ====" >&2
    fi
    return 0
}

skip_step() {
    steps+=("$1|SKIPPED ($2)|0")
}

summary() {
    local total=$(($(date +%s) - t_start))
    echo
    echo "================================ clpsa CI summary ================================"
    local s name result secs
    for s in "${steps[@]}"; do
        IFS='|' read -r name result secs <<<"$s"
        printf '  %-24s %-32s %5ss\n' "$name" "$result" "$secs"
    done
    local f
    for f in "$LOG_DIR/ctest-release.log" "$LOG_DIR/ctest-asan.log"; do
        if [ -f "$f" ]; then
            printf '  %-24s %s\n' "$(basename "$f" .log):" \
                "$(grep -E 'tests passed|tests failed' "$f" | tail -1 || true)"
        fi
    done
    if [ -f "$LOG_DIR/pytest.log" ]; then
        printf '  %-24s %s\n' "pytest:" \
            "$(grep -E '[0-9]+ (passed|failed|error)' "$LOG_DIR/pytest.log" | tail -1 || true)"
    fi
    if [ -f "$LOG_DIR/fuzz.log" ]; then
        grep -E '^  fuzz_' "$LOG_DIR/fuzz.log" | sed 's/^/  /' || true
    fi
    if [ -f "$LOG_DIR/smoke.log" ]; then
        local lines
        lines=$(grep -E 'check|error|density' "$LOG_DIR/smoke.log" | head -n 6 || true)
        [ -n "$lines" ] || lines=$(tail -n 4 "$LOG_DIR/smoke.log")
        echo "  clpsa run:"
        printf '%s\n' "$lines" | sed 's/^/    /'
    fi
    echo "  wall time: ${total}s on $JOBS cores"
    if [ $failed -eq 0 ]; then
        echo "  RESULT: PASS"
    else
        echo "  RESULT: FAIL"
    fi
    echo "=================================================================================="
}
# Also on an unexpected exit (a bug in this script, a signal), so the log always ends with it.
on_exit() {
    local rc=$?
    trap - EXIT
    if [ $rc -ne 0 ]; then
        failed=1
    fi
    summary
    exit $rc
}
trap on_exit EXIT

# A build folder configured from another source tree (copied checkout) makes CMake stop;
# start such a folder afresh instead.
prepare_build_dir() {
    local dir=$1 home
    if [ -f "$dir/CMakeCache.txt" ]; then
        home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$dir/CMakeCache.txt")
        if [ "$home" != "$ROOT" ]; then
            echo "ci: $dir was configured for $home; starting it afresh"
            rm -rf "$dir"
        fi
    fi
    mkdir -p "$dir"
}

step_environment() {
    echo "host: $(uname -srm), $JOBS cores, $(id -un), CI=${CI:-}"
    echo "os: $(sed -n 's/^PRETTY_NAME=//p' /etc/os-release 2>/dev/null | tr -d '"')"
    cmake --version | head -1
    gcc --version | head -1
    echo "OpenCL platforms and devices:"
    clinfo -l
    # PoCL's CPU device must be there: the whole suite runs on it.
    if ! clinfo -l | grep -qi 'device'; then
        echo "ci: no OpenCL device found (is pocl-opencl-icd installed and" \
            "/etc/OpenCL/vendors/pocl.icd present?)" >&2
        return 1
    fi
}

configure() {
    local dir=$1
    shift
    prepare_build_dir "$dir"
    cmake -S "$ROOT" -B "$dir" -DCLPSA_BUILD_TESTS=ON -DCLPSA_WERROR=ON "$@"
}

build() {
    cmake --build "$1" -j "$JOBS"
}

run_ctest() {
    local dir=$1 log=$2
    mkdir -p "$LOG_DIR"
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j "$CTEST_JOBS" \
        </dev/null 2>&1 | tee "$log"
}

run_ctest_asan() {
    ASAN_OPTIONS=$SAN_ASAN_OPTIONS LSAN_OPTIONS=$SAN_LSAN_OPTIONS \
        UBSAN_OPTIONS=$SAN_UBSAN_OPTIONS run_ctest "$ASAN_BUILD" "$LOG_DIR/ctest-asan.log"
}

# The threads suite alone under ThreadSanitizer: the library and tests/test_threads.c built
# with -fsanitize=thread (nothing else: the other suites are single-threaded and a whole TSan
# build would cost minutes), then run with reports fatal. ci/tsan.supp names the driver only.
tsan_threads() {
    configure "$TSAN_BUILD" -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" \
        -DCLPSA_SANITIZE=thread -DCLPSA_BUILD_BENCH=OFF -DCLPSA_BUILD_EXAMPLES=OFF \
        -DCLPSA_BUILD_MPI=OFF -DCLPSA_BUILD_STATIC=OFF
    cmake --build "$TSAN_BUILD" -j "$JOBS" --target test_threads
    mkdir -p "$LOG_DIR"
    TSAN_OPTIONS="halt_on_error=1:exitcode=66:suppressions=$ROOT/ci/tsan.supp" \
        "./$TSAN_BUILD/tests/test_threads" </dev/null 2>&1 | tee "$LOG_DIR/tsan-threads.log"
}

# `pip install ./python` into a fresh venv (system site packages: apt's numpy, PyOpenCL and
# pytest), then the suite on the installed package, run from outside the source tree so the
# import cannot pick up python/src. pip fetches scikit-build-core (build only) and ml_dtypes.
python_tests() {
    local py=${CLPSA_CI_PYTHON:-/usr/bin/python3} venv=$ROOT/$BUILD/python-venv
    rm -rf "$venv"
    "$py" -m venv --system-site-packages "$venv"
    # Keep apt's numpy: a numpy 2 from PyPI (which the newest ml_dtypes wants) would break
    # apt's PyOpenCL, built against numpy 1.
    "$venv/bin/python" -c 'import numpy; print("numpy==" + numpy.__version__)' \
        >"$venv/constraints.txt"
    "$venv/bin/pip" install --disable-pip-version-check -c "$venv/constraints.txt" \
        "$ROOT/python[bfloat16]" </dev/null
    mkdir -p "$LOG_DIR"
    cd "$LOG_DIR"
    env -u CLPSA_LIBRARY "$venv/bin/python" -c \
        'import clpsa, sys; p = clpsa._lib.lib.clpsa_path; print("clpsa from", p); sys.exit(sys.prefix not in p)'
    local rc=0
    env -u CLPSA_LIBRARY CLPSA_CACHE_DIR="$ROOT/$BUILD/test-cache" \
        "$venv/bin/python" -m pytest -p no:cacheprovider -rs "$ROOT/python/tests" </dev/null \
        2>&1 | tee "$LOG_DIR/pytest.log" || rc=$?
    if [ $rc -eq 5 ]; then
        echo "ci: pytest collected no tests" >&2
    fi
    return $rc
}

fuzz() {
    mkdir -p "$LOG_DIR"
    bash ci/fuzz.sh 2>&1 | tee "$LOG_DIR/fuzz.log"
}

smoke() {
    mkdir -p "$LOG_DIR"
    # The main job's binary on its embedded default workload; must exit 0.
    CLPSA_CACHE_DIR="$ROOT/$BUILD/test-cache" "./$BUILD/clpsa" run </dev/null 2>&1 |
        tee "$LOG_DIR/smoke.log"
}

# A step that later ones need stops the chain when it fails; independent ones go on.
run_step "install deps" bash ci/install-deps.sh
[ $last_rc -eq 0 ] || exit 1
run_step "environment" step_environment
[ $last_rc -eq 0 ] || exit 1
run_step "format check" bash ci/format-check.sh
run_step "SPDX lines" bash ci/check-spdx.sh

release_ok=0
run_step "configure Release" configure "$BUILD" -DCMAKE_BUILD_TYPE=Release
if [ $last_rc -eq 0 ]; then
    run_step "build Release" build "$BUILD"
    if [ $last_rc -eq 0 ]; then
        release_ok=1
        run_step "ctest Release" run_ctest "$BUILD" "$LOG_DIR/ctest-release.log"
    fi
fi
[ $release_ok -eq 1 ] || skip_step "ctest Release" "no build"
run_step "Python package" python_tests

if [ "${CLPSA_CI_SKIP_ASAN:-0}" = 1 ]; then
    skip_step "ASan+UBSan" "CLPSA_CI_SKIP_ASAN=1"
else
    run_step "configure ASan+UBSan" configure "$ASAN_BUILD" -DCMAKE_BUILD_TYPE=Debug \
        "-DCMAKE_C_FLAGS_DEBUG=-O1 -g" -DCLPSA_SANITIZE=address,undefined
    asan_ok=0
    if [ $last_rc -eq 0 ]; then
        run_step "build ASan+UBSan" build "$ASAN_BUILD"
        if [ $last_rc -eq 0 ]; then
            asan_ok=1
            run_step "ctest ASan+UBSan" run_ctest_asan
        fi
    fi
    [ $asan_ok -eq 1 ] || skip_step "ctest ASan+UBSan" "no build"
fi

run_step "fuzz (libFuzzer)" fuzz
run_step "ThreadSanitizer test_threads" tsan_threads

if [ $release_ok -eq 1 ]; then
    run_step "clpsa run (main job)" smoke
else
    skip_step "clpsa run (main job)" "no build"
fi

[ $failed -eq 0 ]
