#!/usr/bin/env bash
# Set up (if needed) and run the server on its embedded defaults: http://127.0.0.1:8080
# Extra arguments go to `babelcall serve` (e.g. --port 9000 or --config babelcall.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/babelcall serve "$@"
