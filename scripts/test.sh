#!/usr/bin/env bash
# The project's checks: lint, types, tests. Uses .venv/bin when present.
# Runs all three and fails (exit 1) if any failed; extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -x .venv/bin/python ]]; then
    PY=.venv/bin/python
else
    PY="$(command -v python3 || command -v python)"
fi

failed=()
run() {
    local name="$1"
    shift
    echo
    echo "===== $name: $* ====="
    if "$@"; then
        echo "----- $name: ok"
    else
        echo "----- $name: FAILED (exit $?)"
        failed+=("$name")
    fi
}

run ruff "$PY" -m ruff check .
run mypy "$PY" -m mypy bot commands phases
run pytest "$PY" -m pytest -q "$@"

echo
if ((${#failed[@]})); then
    echo "===== FAILED: ${failed[*]} ====="
    exit 1
fi
echo "===== all checks passed ====="
