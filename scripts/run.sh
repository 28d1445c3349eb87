#!/usr/bin/env bash
# Set up (if needed) and run the main job on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE
# Train the tiny preset on the embedded corpus with safety, save provenance, verify, print a summary.
exec .venv/bin/ml-provenance train "$@"
