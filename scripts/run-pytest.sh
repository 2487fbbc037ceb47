#!/usr/bin/env bash
# Run pytest and fail when it collected no tests (pytest exit code 5), which
# would otherwise let an empty or broken suite pass CI.
set -uo pipefail
PY=${1:?usage: run-pytest.sh VENV_PYTHON [pytest args...]}
shift
"$PY" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
    echo "run-pytest: no tests were collected; that is a failure" >&2
    exit 1
fi
exit "$rc"
