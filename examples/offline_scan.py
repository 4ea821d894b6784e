"""Offline smart scan: drive the steering `Sampler` on a known image and score it.

    python examples/offline_scan.py [IMAGE] [--fraction 0.2] [--seed 0]

IMAGE defaults to an SEM test image from ../shared/data, else scikit-image's ``camera``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from steering import Sampler, StopCriteria, run
from steering.images import load_image
from steering.metrics import quality
from steering.reconstruction import reconstruct_linear
from steering.tools.bench import default_data_dir, grid_points


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image", nargs="?", default=None)
    ap.add_argument("--fraction", type=float, default=0.2, help="stop at this measured fraction")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.image:
        path = Path(args.image)
        truth = load_image(path)
    elif (default_data_dir() / "sem" / "sem_set3.tif").is_file():
        path = default_data_dir() / "sem" / "sem_set3.tif"
        truth = load_image(path)
    else:
        import skimage.data

        path, truth = Path("skimage:camera"), skimage.data.camera().astype(float)
    print(f"sample: {path} ({truth.shape[0]}x{truth.shape[1]} pixels)")
    s = Sampler(truth.shape, stop=StopCriteria(max_fraction=args.fraction), seed=args.seed)
    t0 = time.perf_counter()
    batches = 0

    def progress(s: Sampler, points, values) -> None:
        nonlocal batches
        batches += 1
        if batches % 25 == 0:
            print(f"  batch {batches:4d}: {s.n_measured} points, fraction {s.fraction:.3f}")

    run(s, lambda p: truth[p[:, 0], p[:, 1]], on_batch=progress)
    wall = time.perf_counter() - t0
    q = quality(truth, s.reconstruction)
    g = grid_points(truth.shape, s.fraction)
    qg = quality(truth, reconstruct_linear(truth.shape, g, truth[g[:, 0], g[:, 1]]))
    print(f"measured {s.n_measured} of {truth.size} points (fraction {s.fraction:.3f}) in {batches} batches")
    print(f"stop reason: {s.stop_reason}")
    print(f"quality vs full raster: PSNR {q['psnr']:.2f} dB, SSIM {q['ssim']:.4f}, NRMSE {q['nrmse']:.4f}")
    print(f"regular grid, same fraction: PSNR {qg['psnr']:.2f} dB, SSIM {qg['ssim']:.4f}, NRMSE {qg['nrmse']:.4f}")
    print(
        f"decision time per batch: ask median {1e3 * np.median(s.ask_times_[1:]):.1f} ms, "
        f"tell median {1e3 * np.median(s.tell_times_[1:]):.1f} ms; total {wall:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
