#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the service on its embedded default with a simulated
# estate (`estate demo`): broker, log, detectors, projections, webhooks and a scenario
# whose alerts fire within a minute. Ctrl-C stops it. Arguments go to `estate demo`,
# e.g. `bash scripts/run.sh --duration 60`. For your own devices: `.venv/bin/estate up`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/estate demo "$@"
