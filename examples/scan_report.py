"""What both dry runs do once a scan ends: read it back from the catalog and print a summary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steering.metrics import quality


def read_back(catalog, uid: str):
    """The run ``uid`` from ``catalog`` as (`plans.ScanData`, its steering stream); reports writer errors."""
    from plans import read_scan

    run = catalog.client[uid]
    if catalog.writer.errors_:
        print(f"catalog errors: {catalog.writer.errors_}")
    return read_scan(run), run["steering"].read()


def print_scan_report(uid: str, data, steering, truth: np.ndarray, catalog: str, timing: str, figure) -> None:
    """Print points, stop reason, ``timing`` (a line of the caller's), quality against ``truth``,
    decision times, the figure and how to read the run back."""
    q = quality(truth, data.reconstruct())
    n, (h, w) = len(data.points), truth.shape
    decision = np.asarray(steering["steering_decision_time"])[1:]
    print()
    print(f"run {uid} read back from the catalog")
    print(f"points measured: {n} of {h * w} (fraction {n / (h * w):.3f})")
    print(f"stop reason: {data.stop_reason}")
    print(timing)
    print(f"quality vs the known sample: PSNR {q['psnr']:.2f} dB, SSIM {q['ssim']:.4f}, NRMSE {q['nrmse']:.4f}")
    if len(decision):
        print(f"decision time per batch: median {1e3 * np.median(decision):.0f} ms, max {1e3 * decision.max():.0f} ms")
    print(f"figure: {figure or 'none'}")
    print(f"read it back: Catalog({str(Path(catalog))!r}).client[{uid!r}]")
