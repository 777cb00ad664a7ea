#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the service on its embedded default. Ctrl-C stops it.
# Arguments go to `estate up`, e.g. `bash scripts/run.sh --duration 30`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/estate up "$@"
