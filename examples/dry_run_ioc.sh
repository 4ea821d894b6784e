#!/usr/bin/env bash
# The README's second dry run: the beamline code path (devices/ -> ophyd -> pyepics -> Channel Access)
# against the simulated IOC (python -m sim.ioc) on loopback, into the embedded catalog.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" ""  # no extras; the script's own arguments are not for venv.sh
python examples/dry_run_ioc.py "$@"
