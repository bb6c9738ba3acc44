#!/usr/bin/env bash
# The test command. Run it from anywhere in a clone, as root on a Debian machine:
#
#   scripts/test.sh [PYTEST_ARGS...]
#
# It sets up what is missing, then runs the checks:
#   1. python3 able to make a venv (apt-get install python3 python3-venv, only if missing);
#   2. .venv with `pip install -e '.[test]'`, only when .venv is missing or pyproject.toml
#      changed since the last install (stamp: .venv/.cutover-installed); meanwhile, beside
#      it, every apt package of steps 4-6 that is missing, in one apt-get run; bytecode is
#      cached (PYTHONDONTWRITEBYTECODE unset), warmed by one collection beside steps 3-6;
#   3. PostgreSQL: unless CUTOVER_TEST_PG_URL is set, the local cluster on 127.0.0.1:5432 is
#      started if it is not up (pg_ctlcluster), and CUTOVER_TEST_PG_URL is set to
#      postgresql+psycopg://postgres@127.0.0.1:5432/postgres;
#   4. this checkout's own Docker engine (scripts/docker-engine.sh start: apt-installs
#      docker.io and busybox-static if missing); DOCKER_HOST points at it; an engine this run
#      started is stopped when it exits (also on failure or Ctrl-C), one already running is
#      left alone;
#   5. Docker Compose for checking deploy/docker-compose.yml (`docker compose` or
#      docker-compose; apt-installs docker-compose if neither is there);
#   6. Prometheus (Debian's `prometheus`, apt-installed only if missing) for the `prometheus`
#      check's tests, which start it themselves on a loopback port; chromium (Debian's,
#      apt-installed if missing) for the run page's browser test, which saves a screenshot
#      in .ci/artifacts/;
#   7. CI=true: a test whose service is missing fails instead of skipping, and any skip fails
#      the run (tests/conftest.py);
#   8. pytest -q -n 6 --dist worksteal --durations=20 -m "not serial" PYTEST_ARGS: six xdist
#      workers on any number of cores (a test waits on Docker, subprocesses, sockets: with
#      four, three of them spent the suite's first minute on `docker stats` frames),
#      each test with its own databases and Docker names, the known-slow tests first on each
#      worker (tests/slow_first.py); the 20 slowest tests are printed. Beside it, one after
#      another in the background, the lints: ruff check ., mypy bot commands phases,
#      lint-imports (the layers in pyproject.toml), deptry (every package the code or the
#      tests import directly is declared in pyproject.toml, none arrives only through
#      another; the code imports no test-only package); their output is printed after
#      pytest's, each in its own section. Then the tests marked `serial` (bounds in wall
#      time), left out above, run alone: pytest -q -n 0 -m serial PYTEST_ARGS (without
#      PYTEST_ARGS: the test files that mark a test `serial`).
#
# Each section header says how many seconds the script had run when it began (+N s).
#
# Exit 0 when all the checks pass, 1 when any failed (pytest's exit 5, "no tests ran", is a
# failure); a set-up step that fails stops the run with its own exit code before any check.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd -P)"
export DEBIAN_FRONTEND=noninteractive

section() { printf '\n===== %s ===== (+%d s)\n' "$*" "$SECONDS"; }
die() {
    echo "scripts/test.sh: $*" >&2
    exit 1
}

apt_install() {
    [[ "$(id -u)" == 0 ]] || die "missing $*; install it (apt-get install $*) or run as root"
    echo "installing with apt: $*"
    apt-get update -q </dev/null
    apt-get install -y -q "$@" </dev/null
}

ENGINE_STARTED=0
APT_PID=""
WARM_PID=""
LINTS_PID=""
LINTS_DIR=""
cleanup() {
    local rc=$?
    if [[ -n "$APT_PID" ]]; then
        wait "$APT_PID" 2>/dev/null || true # never leave dpkg half-way through an install
    fi
    if [[ -n "$WARM_PID" ]]; then
        kill "$WARM_PID" 2>/dev/null || true
    fi
    if [[ -n "$LINTS_PID" ]]; then
        kill "$LINTS_PID" 2>/dev/null || true
    fi
    if [[ -n "$LINTS_DIR" ]]; then
        rm -rf "$LINTS_DIR"
    fi
    if ((ENGINE_STARTED)); then
        section "stop this checkout's Docker engine"
        scripts/docker-engine.sh stop || true
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

section "set-up: apt packages and python venv (.venv), side by side"
if ! command -v python3 >/dev/null; then
    apt_install python3 python3-venv
elif ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    apt_install python3-venv
fi
# Every apt package the checks need that is missing, in one apt-get run (one `apt-get
# update`, not one per package) beside pip's install: on a clean machine the set-up takes
# the longer of the two instead of their sum. scripts/docker-engine.sh adds its own
# (docker.io, busybox-static) and keeps the packaged docker.service from starting.
apt_wanted=()
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    apt_wanted+=(docker-compose) # tests/test_deploy.py checks deploy/docker-compose.yml
fi
command -v prometheus >/dev/null || apt_wanted+=(prometheus) # tests/test_check_prometheus.py
command -v chromium >/dev/null || apt_wanted+=(chromium)     # tests/test_run_page_browser.py
APT_LOG="$(mktemp)"
scripts/docker-engine.sh install "${apt_wanted[@]}" >"$APT_LOG" 2>&1 </dev/null &
APT_PID=$!
want_stamp="$(sha256sum pyproject.toml | cut -d' ' -f1) $ROOT"
if [[ ! -x .venv/bin/python ]]; then
    python3 -m venv .venv
fi
if [[ "$(cat .venv/.cutover-installed 2>/dev/null || true)" != "$want_stamp" ]]; then
    echo "pip install -e '.[test]'"
    .venv/bin/python -m pip install --progress-bar off -q --disable-pip-version-check \
        -e '.[test]' </dev/null
    echo "$want_stamp" >.venv/.cutover-installed
else
    echo ".venv is up to date with pyproject.toml"
fi
.venv/bin/python --version
apt_rc=0
wait "$APT_PID" || apt_rc=$?
APT_PID=""
section "set-up: apt packages (ran beside pip)"
cat "$APT_LOG"
rm -f "$APT_LOG"
((apt_rc == 0)) || die "installing apt packages failed (exit $apt_rc; output above)"
PY=.venv/bin/python
export PATH="$ROOT/.venv/bin:$PATH"
# Bytecode is cached in __pycache__ (ignored by git) even where the environment says not to
# (PYTHONDONTWRITEBYTECODE, as container images often set): otherwise every one of the
# suite's Python processes compiles the bot and the test helpers again, and pytest rewrites
# the asserts of all ~290 test modules in each worker (collection 7.7 s of CPU, 3.1 s
# cached). The cache is warmed here, beside the rest of the set-up, by one collection.
unset PYTHONDONTWRITEBYTECODE
"$PY" -m pytest --collect-only -q -p no:cacheprovider >/dev/null 2>&1 </dev/null &
WARM_PID=$!

section "set-up: PostgreSQL"
if [[ -n "${CUTOVER_TEST_PG_URL:-}" ]]; then
    echo "CUTOVER_TEST_PG_URL is set; using that server as it is"
else
    command -v pg_isready >/dev/null && command -v pg_ctlcluster >/dev/null ||
        die "PostgreSQL is not installed (no pg_isready / pg_ctlcluster)"
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        cluster="$(pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 { print $1, $2; exit }')"
        [[ -n "$cluster" ]] || cluster="$(ls /etc/postgresql | sort -V | tail -n 1) main"
        echo "starting PostgreSQL cluster $cluster"
        # shellcheck disable=SC2086 # "VERSION NAME": two words on purpose
        pg_ctlcluster --skip-systemctl-redirect $cluster start
        for _ in $(seq 30); do
            pg_isready -q -h 127.0.0.1 -p 5432 && break
            sleep 1
        done
    fi
    pg_isready -h 127.0.0.1 -p 5432 || die "PostgreSQL does not answer on 127.0.0.1:5432"
    export CUTOVER_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/postgres
fi

section "set-up: this checkout's Docker engine ($(scripts/docker-engine.sh dir))"
if ! scripts/docker-engine.sh status >/dev/null 2>&1; then
    ENGINE_STARTED=1 # ours: stopped at exit
fi
engine_env="$(scripts/docker-engine.sh start)"
eval "$engine_env"
echo "$engine_env"

section "set-up: Docker Compose (tests/test_deploy.py checks deploy/docker-compose.yml)"
if docker compose version >/dev/null 2>&1; then
    docker compose version
else
    docker-compose version --short
fi

section "set-up: Prometheus (tests/test_check_prometheus.py runs a real one on loopback)"
prometheus --version 2>&1 | head -n 1

section "set-up: chromium (tests/test_run_page_browser.py opens the run page in it)"
chromium --version 2>/dev/null || true
mkdir -p .ci/artifacts # the run page's screenshot, kept by CI

wait "$WARM_PID" || true # a collection error is reported by the pytest step itself
WARM_PID=""

export CI=true

failed=()
run() {
    local name="$1" rc=0
    shift
    section "$name: $*"
    "$@" || rc=$?
    if ((rc == 0)); then
        echo "----- $name: ok"
    elif [[ "$name" == pytest-serial && $rc == 5 ]]; then
        echo "----- $name: ok (no test of this selection is marked serial)"
    elif [[ "$name" == pytest && $rc == 5 ]]; then
        echo "----- $name: FAILED (exit 5: no tests were collected)"
        failed+=("$name")
    else
        echo "----- $name: FAILED (exit $rc)"
        failed+=("$name")
    fi
}

# The lints run in the background, one after another, beside pytest's workers (about
# 20 s of one core); each keeps its output, its exit code and
# its time for lint_report, after pytest.
LINTS_DIR="$(mktemp -d)"
LINTS=()
lint() {
    local name="$1" rc=0 began=$SECONDS
    shift
    printf '%s\n' "$*" >"$LINTS_DIR/$name.cmd"
    "$@" >"$LINTS_DIR/$name.out" 2>&1 </dev/null || rc=$?
    echo "$rc $((SECONDS - began))" >"$LINTS_DIR/$name.rc"
}
lint_report() {
    local name="$1" rc took
    section "$name (ran beside pytest): $(cat "$LINTS_DIR/$name.cmd")"
    cat "$LINTS_DIR/$name.out"
    read -r rc took <"$LINTS_DIR/$name.rc" || rc=1
    if ((rc == 0)); then
        echo "----- $name: ok (${took} s)"
    else
        echo "----- $name: FAILED (exit $rc)"
        failed+=("$name")
    fi
}
LINTS=(ruff mypy import-linter deptry deptry-tests)
(
    lint ruff "$PY" -m ruff check .
    lint mypy "$PY" -m mypy bot commands phases
    lint import-linter "$(dirname "$PY")/lint-imports"
    lint deptry "$(dirname "$PY")/deptry" --no-ansi .
    lint deptry-tests "$(dirname "$PY")/deptry" --no-ansi tests --exclude '\.venv' --ignore DEP002,DEP004
) &
LINTS_PID=$!
run pytest "$PY" -m pytest -q -n 6 --dist worksteal --durations=20 -m "not serial" "$@"
wait "$LINTS_PID" || true
LINTS_PID=""
for name in "${LINTS[@]}"; do
    if [[ -f "$LINTS_DIR/$name.rc" ]]; then
        lint_report "$name"
    else
        section "$name"
        echo "----- $name: FAILED (did not run)"
        failed+=("$name")
    fi
done
# Tests of bounds in wall time (marker `serial`) run alone, not beside four busy workers.
# Without PYTEST_ARGS only the files that mark a test serial are collected (collecting the
# whole suite again took 8 of this step's 20 s); -m serial still selects within them.
serial_args=("$@")
if ((${#serial_args[@]} == 0)); then
    mapfile -t serial_args < <(grep -l 'mark\.serial' tests/test_*.py || true)
fi
run pytest-serial "$PY" -m pytest -q -n 0 --durations=5 -m serial "${serial_args[@]}"

echo
if ((${#failed[@]})); then
    echo "===== FAILED: ${failed[*]} ====="
    exit 1
fi
echo "===== all checks passed ====="
