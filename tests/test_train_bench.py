"""Smoke runs of the training and benchmark commands on tiny settings."""

import json

import numpy as np

from steering import Sampler, StopCriteria, load_model
from steering.bench import grid_points, run_learner2d, run_sampler
from steering.metrics import psnr
from steering.train import main as train_main


def test_train_writes_weights_and_card(tmp_path):
    out = tmp_path / "tiny.safetensors"
    rc = train_main(
        ["--out", str(out), "--synthetic", "5", "--size", "40", "--epochs", "1", "--pixels-per-state", "200",
         "--hidden", "8", "--max-skimage", "3"]
    )  # fmt: skip
    assert rc == 0
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
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "steering.train", "--out", str(out),
           "--synthetic", "4", "--size", "32", "--epochs", "1", "--pixels-per-state", "100", "--hidden", "8",
           "--max-skimage", "2"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["training"]["world_size"] == 2
    load_model(out)
