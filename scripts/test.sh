#!/usr/bin/env bash
# Set up (if needed) and run every check CI runs: lint, the engine/GUI boundary, the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
