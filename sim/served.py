"""What the simulated IOC served (its ``--served-log``) against what a fly scan stored.

A fly scan's stored pixel should hold a bin the IOC's MCS served on that pixel's row, within half the
flight's pixel step of the pixel's centre, with the value served, and no bin should be stored twice.
The tests and ``examples/soak_fly.py`` check stored runs this way.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from steering.timing import flown_runs

__all__ = ["read_served_log", "match_stored_bins"]


def read_served_log(path: str | Path, detector: str, *, start: int = 0) -> list[dict]:
    """The lines of a served log (``detector``, ``y``, ``x``, ``value``) of one detector, from the ``start``-th line on.

    Parameters
    ----------
    path : path
        The IOC's ``--served-log`` file.
    detector : str
        Which readings: a PV name (``"sim:mcs:mca2"`` for the MCS's signal bins).
    start : int
        Lines (of any detector, header excluded) to skip: the count before a scan, to read only its own.
    """
    with open(path) as f:
        rows = list(csv.DictReader(f))[start:]
    return [row for row in rows if row["detector"] == detector]


def match_stored_bins(points: np.ndarray, values: np.ndarray, batches: np.ndarray, bins: list[dict]) -> tuple[int, int]:
    """Match a fly scan's stored pixels to the bins the IOC served; return ``(matched, unmatched)``.

    Each stored pixel is matched to an unused served bin on its row with the same value, within half
    its flight's pixel step of its centre (the nearest, if several); a bin is used at most once. The
    flights are the `steering.timing.flown_runs` of each batch's pixels in stored order.

    Parameters
    ----------
    points, values, batches : arrays
        The scan as stored (`plans.read_scan`: ``points``, ``values``, ``batches``).
    bins : list of dict
        `read_served_log` lines of the MCS's signal channel.
    """
    rows: dict[int, list] = {}
    for b in bins:
        rows.setdefault(round(float(b["y"])), []).append([float(b["x"]), float(b["value"]), False])
    matched = unmatched = 0
    for batch in np.unique(batches):
        pts, vals = points[batches == batch], values[batches == batch]
        for a, b in flown_runs(pts):
            half = abs(pts[a + 1, 1] - pts[a, 1]) / 2 if b - a > 1 else 0.5
            for (r, c), value in zip(pts[a:b].tolist(), vals[a:b], strict=True):
                same = [x for x in rows.get(r, []) if not x[2] and x[1] == value and abs(x[0] - c) <= half + 1e-9]
                if same:
                    min(same, key=lambda x: abs(x[0] - c))[2] = True
                    matched += 1
                else:
                    unmatched += 1
    return matched, unmatched
