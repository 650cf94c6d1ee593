#!/usr/bin/env bash
# Installs Vigil with its test tools into ./.venv and runs the whole test suite, lint and types.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --test
.venv/bin/ruff check src tests bench
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
