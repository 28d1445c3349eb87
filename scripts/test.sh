#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite: notebooks (nbdev-test and nbval), pytest, ruff, docs source.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
B=.venv/bin
echo "== nbdev-test";          $B/nbdev-test --n-workers 2
echo "== pytest tests/";       $B/python -m pytest -q tests/
echo "== pytest --nbval-lax";  $B/python -m pytest -q -p no:cacheprovider --nbval-lax nbs/ --ignore=nbs/_proc
echo "== ruff";                $B/ruff check .
echo "== nbdev-proc-nbs";      $B/nbdev-proc-nbs >/dev/null
echo "all test gates passed"
