#!/usr/bin/env bash
# Create .venv in the checkout and install ml_provenance with its dev extras. Idempotent: a stamp keyed
# on pyproject.toml skips the pip step when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# pip, quiet, without its "Location ... is ignored" warnings about some machines' local indexes; pip's exit code is kept.
pipq() { .venv/bin/pip install -q "$@" 2>&1 | { grep -v "^WARNING: Location" || true; }; }
stamp=.venv/.ml_provenance-setup
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import ml_provenance" 2>/dev/null; then
  # torch first and pinned: on CPU machines an unpinned torch pulls a multi-GB CUDA build.
  .venv/bin/python -c "import torch" 2>/dev/null || pipq "torch==2.13.0"
  pipq -e ".[dev,app]"
  echo "$want" > "$stamp"
fi
