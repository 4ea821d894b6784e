"""Validation of fly mode's raster share on fresh synthetic images (not the benchmark's data).

    python examples/fly_raster_share.py [--shares 0.5 0.75 0.9 1.0] [--seed 20261207]

Ten synthetic 128x128 images, two of each kind the ERD network is trained on, drawn with a seed of
their own; the benchmark's fast stage; budgets of 5%, 10% and 25% of a full fly raster's beam time.
For each share of the budget spent on the initial raster it prints fly mode's PSNR minus that of
the finest every-k-th coarse fly raster of the same beam time (mean and worst image).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from steering import Sampler, StopCriteria, run
from steering.fly import FlyPlanner, fly_budget, full_raster_time
from steering.metrics import psnr
from steering.reconstruction import reconstruct_linear
from steering.synthetic import KINDS, synthetic_image
from steering.tools.bench_beam_time import SCENARIOS, finest_raster


def _psnr(truth, points) -> float:
    return psnr(truth, reconstruct_linear(truth.shape, points, truth[points[:, 0], points[:, 1]]))


def fly_points(truth, timing, seconds, share, seed=0):
    s = Sampler(truth.shape, seed=seed, timing=timing, scan_mode="fly",
                stop=StopCriteria(max_fraction=None, max_beam_time=seconds))
    s.fly_ = FlyPlanner(truth.shape, timing, fly_budget(truth.shape, timing, s.stop_), raster_share=share)
    run(s, lambda p: truth[p[:, 0], p[:, 1]])
    return s.measured_points


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.75, 0.9, 1.0])
    ap.add_argument("--seed", type=int, default=20261207)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    images = [synthetic_image(kind, 128, rng=rng) for kind in KINDS for _ in range(2)]
    timing = SCENARIOS["fast"]
    for share in args.shares:
        for budget in (0.05, 0.10, 0.25):
            gains = []
            for truth in images:
                seconds = budget * full_raster_time(truth.shape, timing)
                _, raster, _ = finest_raster(truth.shape, timing, seconds)
                gains.append(_psnr(truth, fly_points(truth, timing, seconds, share)) - _psnr(truth, raster))
            print(f"raster share {share:.2f}, budget {budget:.0%}: fly - raster PSNR mean {np.mean(gains):+.2f} dB, "
                  f"worst image {np.min(gains):+.2f} dB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
