#!/usr/bin/env bash
# The README's Bluesky session: install into .venv (IPython included), then start IPython with a profile.
#   bash examples/session.sh            the simulated microscope (examples/ipython_profile)
#   bash examples/session.sh beamline   EPICS devices (examples/beamline_profile; edit its PV names)
# Further arguments go to IPython (e.g. -c "print(db[-1].start)").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" session
PROFILE=examples/ipython_profile
if [ "${1:-}" = "beamline" ]; then
  PROFILE=examples/beamline_profile
  shift
fi
exec ipython --profile-dir="$PROFILE" "$@"
