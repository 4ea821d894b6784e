"""Building the package prints no warning of the project's own making (issue: clean installs)."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent


@pytest.fixture
def source(tmp_path):
    """A copy of the repository's sources: setuptools builds in the tree it is given (``build/``, egg-info)."""
    copy = tmp_path / "source"
    shutil.copytree(REPOSITORY, copy, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "bench_results", "runs"))
    return copy


def test_building_the_wheel_prints_no_warning(source, tmp_path):
    # the venv's own setuptools (no build isolation): no download, the same rules as pip's build
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                           str(tmp_path), str(source)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    output = "\n".join(line for line in (done.stdout + done.stderr).splitlines()
                       if not line.startswith("WARNING: Location"))  # pip's note on this machine's index
    for word in ("Warning", "deprecated", "!!"):
        assert word not in output, output[-3000:]
    wheel = next(tmp_path.glob("smart_scan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "steering/models/default.safetensors" in names and "steering/models/default.json" in names
    assert not any(name.startswith(("tests/", "examples/")) for name in names)


def test_an_editable_build_prints_no_warning(source, tmp_path):
    # what `pip install -e .` (the README's commands) asks of setuptools, with every warning shown
    done = subprocess.run([sys.executable, "-W", "always", "-c", "import sys, setuptools.build_meta as b; "
                           "print(b.build_editable(sys.argv[1]))", str(tmp_path)],
                          capture_output=True, text=True, cwd=source)
    assert done.returncode == 0, done.stderr[-3000:]
    for word in ("Warning", "deprecated", "!!"):
        assert word not in done.stderr, done.stderr[-3000:]
    assert next(tmp_path.glob("smart_scan-*.whl"))
