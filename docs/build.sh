#!/usr/bin/env bash
# Build the documentation site into docs/_build/html, warnings as errors, then check the API reference.
# Installs Sphinx and numpydoc into .venv (the "docs" extra); needs PyPI, nothing else on the network.
#   bash docs/build.sh            # then open docs/_build/html/index.html
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../.ci/venv.sh" docs   # cd to the repository, activate .venv
rm -rf docs/_build/html docs/_build/doctrees
# -W: a warning fails the build; --keep-going: report them all first; -n: every reference must resolve.
python -m sphinx -W --keep-going -n -q -b html docs docs/_build/html
python docs/check_api.py docs/_build/html/objects.inv
echo "docs: $(pwd)/docs/_build/html/index.html"
