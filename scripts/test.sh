#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, then pytest. Extra arguments go to pytest.
# Tests run inside a private network namespace (only loopback), so no test traffic can leave the
# machine; where namespaces are not allowed they run without one and the browser and relay tests skip.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff check .
.venv/bin/ruff format --check .

run_pytest=(.venv/bin/python -m pytest "$@")
if unshare -rn true 2>/dev/null; then
    exec unshare -rn bash -c 'ip link set lo up && exec "$@"' bash "${run_pytest[@]}"
fi
echo "test: cannot create a network namespace here; browser and relay tests will skip" >&2
exec "${run_pytest[@]}"
