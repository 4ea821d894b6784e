#!/usr/bin/env bash
# The README's test command: installs what it needs into .venv, then runs the test suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" test
ruff check .
python -m pytest -q "$@"
