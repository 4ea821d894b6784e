#!/usr/bin/env bash
# The README's main command: install into .venv, then run an offline smart-scan simulation.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" bench
python examples/offline_scan.py "$@"
