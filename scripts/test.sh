#!/usr/bin/env bash
# `make test`: the lint checks and every suite, with the independent ones side by side, so that a clean clone on a
# 2-core machine is done in about 21 minutes (1,255 s measured), most of it the Swift build. In order:
#
#   1. At once: the Swift build (CPU), the engine's .venv (network: PyTorch) and the system packages the suites need
#      (Debian's postgresql, chromium and a CJK font; network), each only when missing; the lint checks (swift-format,
#      the generated files).
#   2. As soon as .venv is there: the engine's lint (ruff) and tests, beside the build.
#   3. Once the build is there: the Swift tests that do not time themselves (in parallel, one process), the web page in
#      a real browser, and the API fuzzing (schemathesis), side by side; ComfyUI's clients once the web page is done.
#   4. Alone on the machine: what measures time (the Swift tests named in REEL_TIMED_TESTS; /healthz under load),
#      since a busy machine would fail them for the wrong reason.
#
# Each step's output lands in test-artifacts/logs/STEP.log; a failed step's log is printed in full, a passed one's
# last lines, and the run ends with what failed: each failed step's failing tests or last lines, so that the tail of
# a CI log names them. Every step that can still run does; the exit status is non-zero when any failed.
set -uo pipefail
cd "$(dirname "$0")/.."

SWIFT=${SWIFT:-swift}
# Flags for `swift build` (the Makefile's: the toolchain's lld as the linker, where it has one).
read -r -a SWIFT_BUILD_FLAGS <<<"${SWIFT_BUILD_FLAGS:-}"
PYTHON=${PYTHON:-python3}
VPY=.venv/bin/python
REEL=.build/debug/reel
export REEL_PYTHON="$PWD/$VPY"
# One OpenMP thread per CPU worker: suites run several workers at once on a small machine.
export OMP_NUM_THREADS=1
# The PostgreSQL store and cluster tests fail, not skip, should the server be missing.
export REEL_REQUIRE_POSTGRES=1
# Swift tests that time something (linear-time parsing, connection timeouts, latency), as a --filter pattern: they
# run alone, in step 4. The Makefile names them.
TIMED=${REEL_TIMED_TESTS:?"REEL_TIMED_TESTS is unset: run this through make test"}

LOGS=test-artifacts/logs
rm -rf "$LOGS"
mkdir -p "$LOGS"
T0=$SECONDS
declare -A PID
FAILED=()

say() { printf '[%4ss] %s\n' "$((SECONDS - T0))" "$*"; }

# start NAME COMMAND…: runs COMMAND in the background, its output into NAME's log.
start() {
    local name=$1
    shift
    (
        begun=$SECONDS
        "$@" >"$LOGS/$name.log" 2>&1
        status=$?
        echo "$status $((SECONDS - begun))" >"$LOGS/$name.status"
        exit "$status"
    ) &
    PID[$name]=$!
    say "$name: started"
}

# finish NAME: waits for NAME and reports it; returns its exit status.
finish() {
    local name=$1 status took
    wait "${PID[$name]}"
    status=$?
    read -r _ took <"$LOGS/$name.status" 2>/dev/null || took='?'
    if ((status == 0)); then
        say "$name: passed in ${took}s"
        tail -n 4 "$LOGS/$name.log" | sed 's/^/        /'
    else
        FAILED+=("$name")
        say "$name: FAILED (exit $status) after ${took}s; its log:"
        sed 's/^/        /' "$LOGS/$name.log"
    fi
    return "$status"
}

skip() {
    FAILED+=("$1")
    say "$1: not run: $2"
}

# What the suites need from the system: PostgreSQL's server, a headless Chromium and a font with CJK glyphs.
system_packages() {
    local missing=() package
    for package in postgresql chromium fonts-wqy-microhei; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    if ((${#missing[@]} == 0)); then
        echo "all present"
        return 0
    fi
    if ! command -v apt-get >/dev/null; then
        command -v initdb >/dev/null && command -v chromium >/dev/null && return 0
        echo "install PostgreSQL's server and Chromium (this script knows Debian's apt-get only)"
        return 1
    fi
    echo "installing ${missing[*]}"
    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

venv() {
    make -s .venv/.installed .venv/.api-installed
}

# The generated files match their sources, and the Swift code is formatted as .swift-format says (`make format`).
lint() {
    "$PYTHON" scripts/embed-web.py --check && "$PYTHON" scripts/embed-catalog.py --check && make -s lint SWIFT="$SWIFT"
}

engine_tests() {
    (cd engine && "../$VPY" -m ruff check . && "../$VPY" -m pytest -q)
}

swift_tests() {
    scripts/with-postgres.sh "$SWIFT" test --skip-build --parallel --skip "$TIMED"
}

timed_swift_tests() {
    scripts/with-postgres.sh "$SWIFT" test --skip-build --no-parallel --filter "$TIMED"
}

web_test() {
    "$PYTHON" e2e/web/test_web.py --reel "$REEL" --python "$VPY"
}

api_test() {
    "$VPY" e2e/api/test_api.py --reel "$REEL" --python "$VPY" --schemathesis .venv/bin/schemathesis
}

comfy_test() {
    "$VPY" e2e/comfy/test_comfy.py --reel "$REEL" --python "$VPY"
}

healthz_under_load() {
    "$VPY" e2e/api/healthz_under_load.py --reel "$REEL" --seconds 20
}

# 1.
# One build of everything: building `reel` and the test bundle as separate products compiles some dependencies twice.
start build "$SWIFT" build "${SWIFT_BUILD_FLAGS[@]}" --build-tests
start venv venv
start packages system_packages
start lint lint
finish lint

# 2.
if finish venv; then
    start engine engine_tests
    venv_ok=1
else
    venv_ok=0
fi
finish packages && packages_ok=1 || packages_ok=0
finish build && build_ok=1 || build_ok=0

# 3.
if ((build_ok && venv_ok && packages_ok)); then
    start swift swift_tests
    start web web_test
    start api api_test
    finish web
    # After the web page: the ComfyUI clients, beside the Swift tests and the fuzzer.
    start comfy comfy_test
    finish swift
    finish api
    finish comfy
else
    skip swift "the build, .venv or the system packages failed"
    skip web "the build, .venv or the system packages failed"
    skip api "the build, .venv or the system packages failed"
    skip comfy "the build, .venv or the system packages failed"
fi
((venv_ok)) && finish engine

# 4.
if ((build_ok && venv_ok && packages_ok)); then
    start timed timed_swift_tests
    finish timed
    start healthz healthz_under_load
    finish healthz
else
    skip timed "the build, .venv or the system packages failed"
    skip healthz "the build, .venv or the system packages failed"
fi

# What a failed step printed about its failures: Swift Testing's and XCTest's failed tests, pytest's FAILED and ERROR
# lines, Python tracebacks' last lines; its last lines when it printed none of those.
failures() {
    local log=$LOGS/$1.log lines
    lines=$(grep -E '(✘ Test .*(recorded an issue|failed)|error: -\[|^(FAILED|ERROR) |^[A-Za-z.]*(Error|Exception): )' "$log" \
        | cut -c1-400 | head -n 40)
    [[ -n $lines ]] || lines=$(tail -n 15 "$log" | cut -c1-400)
    printf '%s\n' "$lines" | sed "s/^/    $1: /"
}

if ((${#FAILED[@]})); then
    for name in "${FAILED[@]}"; do
        [[ -f $LOGS/$name.log ]] && failures "$name"
    done
    say "make test: FAILED: ${FAILED[*]}"
    exit 1
fi
say "make test: all passed"
