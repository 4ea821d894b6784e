#!/usr/bin/env bash
# The README's main command: install into .venv, then RE(smart_scan(...)) on the simulated microscope
# into the embedded catalog (./smart_scan_data), read the run back and score it against the sample.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" ""  # no extras; the script's own arguments are not for venv.sh
python examples/dry_run.py "$@"
