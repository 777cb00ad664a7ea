#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run every check: ruff, mypy, then the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/eventlog -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy"
.venv/bin/mypy
echo "== pytest"
.venv/bin/pytest "$@"
