"""Reading a stored `smart_scan` run back as pixels and values, for offline reconstruction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plans.smart_scan import grid_index
from steering.reconstruction import reconstruct_linear

__all__ = ["ScanData", "read_scan"]


@dataclass
class ScanData:
    """One smart scan as stored: where it measured and what it saw.

    Attributes
    ----------
    shape : (H, W)
        The scan grid (slow axis first).
    extents : ((y_start, y_stop), (x_start, x_stop))
        Stage positions of the first and last grid points.
    points : (n, 2) int array
        Grid pixels (row, col) measured, in the order measured.
    positions : (n, 2) float array
        Stage readbacks (y, x) at each point.
    values : (n,) float array
        The steering value at each point (NaN where the measurement failed).
    stop_reason : str or None
        Why the scan ended (from the run's stop document).
    """

    shape: tuple[int, int]
    extents: tuple[tuple[float, float], tuple[float, float]]
    points: np.ndarray
    positions: np.ndarray
    values: np.ndarray
    stop_reason: str | None

    def reconstruct(self) -> np.ndarray:
        """The image on the full grid, linearly interpolated from the measured points."""
        ok = np.isfinite(self.values)
        return reconstruct_linear(self.shape, self.points[ok], self.values[ok])


def read_scan(run) -> ScanData:
    """Read a `smart_scan` run from a tiled catalog (``catalog.client[uid]``).

    The steering value is the start document's ``value_field`` (a 2-D reading is summed).
    """
    start = run.metadata["start"]
    if start.get("plan_name") != "smart_scan":
        raise ValueError(f"run {start.get('uid')} is a {start.get('plan_name')!r}, not a smart_scan")
    shape = tuple(int(n) for n in start["shape"])
    (y0, y1), (x0, x1) = start["extents"]
    (y_field,), _ = start["hints"]["dimensions"][0]
    (x_field,), _ = start["hints"]["dimensions"][1]
    table = run["primary"].read()
    ys = np.asarray(table[y_field], dtype=np.float64)
    xs = np.asarray(table[x_field], dtype=np.float64)
    raw = np.asarray(table[start["value_field"]], dtype=np.float64)
    values = raw.reshape(len(raw), -1).sum(axis=1) if raw.ndim > 1 else raw
    points = np.stack([grid_index(ys, y0, y1, shape[0]), grid_index(xs, x0, x1, shape[1])], axis=1)
    stop = run.metadata.get("stop") or {}
    return ScanData(shape, ((y0, y1), (x0, x1)), points, np.stack([ys, xs], axis=1), values, stop.get("reason"))
