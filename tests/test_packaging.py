"""Building the package prints no warning of the project's own making (issue: clean installs)."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent


def test_building_the_wheel_prints_no_warning(tmp_path):
    # the venv's own setuptools (no build isolation): no download, the same rules as pip's build
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path), str(REPOSITORY)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    output = "\n".join(line for line in (done.stdout + done.stderr).splitlines()
                       if not line.startswith("WARNING: Location"))  # pip's note on this machine's index
    for word in ("Warning", "deprecated", "!!"):
        assert word not in output, output[-3000:]
    wheel = next(tmp_path.glob("smart_scan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "steering/models/default.safetensors" in names and "steering/models/default.json" in names
    assert not any(name.startswith(("tests/", "examples/")) for name in names)


def test_an_editable_build_prints_no_warning(tmp_path):
    # what `pip install -e .` (the README's commands) asks of setuptools, with every warning shown
    done = subprocess.run([sys.executable, "-W", "always", "-c", "import sys, setuptools.build_meta as b; "
                           "print(b.build_editable(sys.argv[1]))", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPOSITORY)
    assert done.returncode == 0, done.stderr[-3000:]
    for word in ("Warning", "deprecated", "!!"):
        assert word not in done.stderr, done.stderr[-3000:]
    assert next(tmp_path.glob("smart_scan-*.whl"))
