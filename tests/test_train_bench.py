"""Smoke runs of the training and benchmark commands on tiny settings."""

import hashlib
import json

import numpy as np
import pytest

from steering import Sampler, StopCriteria, load_model
from steering.erd import default_model_path
from steering.metrics import psnr
from steering.tools.bench import grid_points, run_learner2d, run_sampler
from steering.tools.train import main as train_main


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_train_writes_weights_and_card_into_the_working_folder_never_into_the_package(tmp_path, monkeypatch,
                                                                                        capsys):
    shipped = default_model_path()
    before = _sha256(shipped)
    monkeypatch.chdir(tmp_path)
    rc = train_main(
        ["--synthetic", "4", "--size", "32", "--epochs", "1", "--pixels-per-state", "100", "--hidden", "8",
         "--max-skimage", "2"]
    )  # fmt: skip
    assert rc == 0
    out = tmp_path / "erd_model.safetensors"
    assert _sha256(shipped) == before  # without --out it wrote erd_model.* here, not over the shipped model
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["label"]["kind"].startswith("realised") and card["label"]["c"] is None
    assert card["training"]["rows_train"] > 0
    assert np.isfinite(card["validation"]["spearman_rho"])
    m = load_model(out)
    s = Sampler((32, 32), model=m, seed=0, stop=StopCriteria(max_fraction=0.1))
    while not s.done:
        p = s.ask()
        s.tell(p, np.ones(len(p)))
    assert s.n_measured == round(0.1 * 32 * 32)
    with pytest.raises(SystemExit):
        train_main(["--out", str(shipped)])  # refused before any training
    assert "would overwrite the model shipped in the package" in capsys.readouterr().err
    assert _sha256(shipped) == before


def test_the_label_of_the_api_is_the_label_of_the_command(blobs):
    """Both default to the realised reduction (the API's default was SLADS' Gaussian window)."""
    from steering import ERDNet
    from steering.tools.train import state_samples

    def rows(**label):
        return state_samples(blobs, c=2.0, n_pixels=100, seed=0, model=ERDNet(hidden=(4,)), visited=False, **label)

    default, realised, gaussian = rows(), rows(label="realised"), rows(label="gaussian")
    np.testing.assert_array_equal(default[1], realised[1])
    assert not np.array_equal(default[1], gaussian[1])


def test_train_with_the_gaussian_label(tmp_path):
    """SLADS' approximate-RD label stays available, with its c in the card."""
    out = tmp_path / "gauss.safetensors"
    rc = train_main(
        ["--out", str(out), "--synthetic", "4", "--size", "32", "--epochs", "1", "--pixels-per-state", "100",
         "--hidden", "8", "--max-skimage", "2", "--label", "gaussian"]
    )  # fmt: skip
    assert rc == 0
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["label"]["c"] == 2.0
    load_model(out)


def test_bench_pieces(blobs):
    res = run_sampler(blobs, (0.05, 0.1), seed=0)
    assert set(res["recon"]) == {0.05, 0.1}
    l2d = run_learner2d(blobs, (0.1,))
    g = grid_points(blobs.shape, 0.1)
    assert abs(len(g) - 0.1 * blobs.size) < 0.02 * blobs.size
    # the trained sampler beats a random pattern on a structured image
    assert psnr(blobs, res["recon"][0.1]) > psnr(blobs, l2d["recon"][0.1]) - 3.0


def test_train_runs_under_torchrun(tmp_path):
    """The same script under torchrun with two CPU processes (gloo DDP)."""
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or shutil.which("torchrun")
    assert torchrun, "torchrun not found beside the interpreter"
    out = tmp_path / "ddp.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "steering.tools.train", "--out", str(out),
           "--synthetic", "4", "--size", "32", "--epochs", "1", "--pixels-per-state", "100", "--hidden", "8",
           "--max-skimage", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["world_size"] == 2
    load_model(out)
