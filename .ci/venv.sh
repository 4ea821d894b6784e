# Sourced by the README's commands: create .venv if needed and install the package, with the extras "$1" if given.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
quiet() { { grep -v "^WARNING: Location" || true; }; }  # a failed install still fails (pipefail)
# torch==2.13.0 resolves to the CPU build on this project's machines; the package itself accepts a range.
python -m pip install -q "torch==2.13.0" 2>&1 | quiet
python -m pip install -q -e ".${1:+[$1]}" 2>&1 | quiet
python -c "import steering, torch; print('steering', steering.__version__, '| torch', torch.__version__)"
