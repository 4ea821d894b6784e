"""What a route over the scan grid costs in beam time: a model of the stage and the detector.

A step scan moves to each point, waits for the stage to settle and counts for one dwell. A fly scan
moves continuously along a row while the detector records one pixel per dwell; each flown line pays
a fixed overhead (ramping up to speed, settling, arming the detector). `StageTiming` holds the
numbers and prices a step, a flown line and a whole route; `flown_runs` cuts a route into the lines
a fly scan would fly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .checks import real_number

__all__ = ["StageTiming", "flown_runs"]


@dataclass(frozen=True)
class StageTiming:
    """Beam-time model of a scanning stage and its detector.

    Lengths are in one unit of your choice (``pixel_size``, ``velocity`` per second and
    ``acceleration`` per second squared in that same unit); times are in seconds.

    Parameters
    ----------
    pixel_size : float
        Distance between neighbouring grid points (the same along both axes).
    dwell : float
        Counting time per pixel.
    velocity : float
        Largest stage speed.
    acceleration : float
        Stage acceleration (and deceleration) of a step move.
    settle : float
        Wait after a step move before counting.
    line_overhead : float
        Fixed cost of each flown line: ramp up and down, settle, arm the detector.

    Examples
    --------
    The stage the fly-scan benchmark uses (50 nm pixels, lengths in mm):

    >>> t = StageTiming(pixel_size=50e-6, dwell=0.01, velocity=0.2, acceleration=2.0, settle=0.02,
    ...                 line_overhead=0.3)
    >>> round(t.flight_time(128), 3)  # one flown row of 128 pixels
    1.58
    """

    pixel_size: float
    dwell: float
    velocity: float
    acceleration: float
    settle: float = 0.0
    line_overhead: float = 0.0

    def __post_init__(self):
        for name in ("pixel_size", "dwell", "velocity", "acceleration"):
            if not real_number(name, getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("settle", "line_overhead"):
            if not real_number(name, getattr(self, name)) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")

    def move_time(self, pixels: float) -> float:
        """Seconds one axis needs to travel ``pixels`` grid steps from rest to rest (no settle).

        A triangular speed profile for short moves, a trapezoidal one (capped at ``velocity``)
        for long ones.
        """
        return self.travel_over(abs(float(pixels)) * self.pixel_size)

    def travel_over(self, distance):
        """`move_time` of a ``distance`` (a number or an array) in the model's length unit (what a
        simulated stage books)."""
        d = np.abs(np.asarray(distance, dtype=np.float64))
        a, v = self.acceleration, self.velocity
        t = np.where(d <= v * v / a, 2.0 * np.sqrt(d / a), d / v + v / a)
        return float(t) if t.ndim == 0 else t

    def travel_time(self, start, stop) -> float:
        """Seconds to travel between two pixels (row, col); the axes move at the same time."""
        return max(self.move_time(stop[0] - start[0]), self.move_time(stop[1] - start[1]))

    def step_time(self, start, stop) -> float:
        """Seconds of a step-scan point: travel from ``start`` to ``stop``, settle, count one dwell."""
        return self.travel_time(start, stop) + self.settle + self.dwell

    def pixel_time(self, column_step: int = 1) -> float:
        """Seconds per pixel of a flown line that records every ``column_step``-th pixel.

        One dwell, unless the stage cannot cover ``column_step`` pixels in a dwell: then the speed
        limit sets it.
        """
        return self.pixel_time_over(abs(column_step) * self.pixel_size)

    def pixel_time_over(self, step: float) -> float:
        """`pixel_time` for pixels ``step`` apart in the model's length unit (what a simulated flyer spends)."""
        return max(self.dwell, abs(float(step)) / self.velocity)

    def flight_time(self, n_pixels: int, column_step: int = 1) -> float:
        """Seconds of one flown line recording ``n_pixels`` pixels ``column_step`` apart, overhead included."""
        return self.line_overhead + n_pixels * self.pixel_time(column_step)

    def route_time(self, points, *, mode: str = "point", start=None) -> float:
        """Seconds a route over the grid costs.

        Parameters
        ----------
        points : (k, 2) int array
            Pixels (row, col) in measuring order.
        mode : {"point", "fly"}
            ``"point"``: every pixel is a step (travel, settle, dwell). ``"fly"``: each of
            `flown_runs` is one flown line and the travel between them is a move without a settle
            (the line's overhead holds it); a run of a single pixel is a step.
        start : (row, col), optional
            Where the stage is before the route; default its first pixel.
        """
        pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
        if len(pts) == 0:
            return 0.0
        here = pts[0] if start is None else np.asarray(start)
        if mode == "point":
            return float(self.step_times(pts, start=here).sum())
        if mode != "fly":
            raise ValueError(f"mode must be 'point' or 'fly', got {mode!r}")
        total = 0.0
        for a, b in flown_runs(pts):
            if b - a == 1:
                total += self.step_time(here, pts[a])
            else:
                total += self.travel_time(here, pts[a]) + self.flight_time(b - a, int(pts[a + 1, 1] - pts[a, 1]))
            here = pts[b - 1]
        return total

    def move_times(self, pixels) -> np.ndarray:
        """`move_time` of each element of an array of distances in pixels."""
        return np.asarray(self.travel_over(np.asarray(pixels, dtype=np.float64) * self.pixel_size))

    def step_times(self, points, *, start=None) -> np.ndarray:
        """(k,) seconds of each pixel of a step scan through ``points`` (travel from the one before, or
        from ``start``, default the first pixel; settle; dwell)."""
        pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
        here = pts[:1] if start is None else np.asarray(start).reshape(1, 2)
        steps = np.abs(np.diff(np.vstack([here, pts]), axis=0))
        return np.maximum(self.move_times(steps[:, 0]), self.move_times(steps[:, 1])) + self.settle + self.dwell


def flown_runs(points) -> list[tuple[int, int]]:
    """Cut a route into the lines a fly scan flies: ``[(start, stop), ...]`` index ranges of ``points``.

    A run is a maximal stretch of consecutive points in one row whose column changes by the same
    non-zero step each time (so in one direction), taken greedily from the start of the route; a
    point that starts no such stretch is a run of one.
    """
    pts = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    k = len(pts)
    if k < 2:
        return [(0, k)] if k else []
    d = np.diff(pts, axis=0)
    valid = (d[:, 0] == 0) & (d[:, 1] != 0)
    # groups of consecutive valid links with one step: links l0..l1-1 join points l0..l1
    new = np.ones(k - 1, bool)
    new[1:] = ~(valid[1:] & valid[:-1] & (d[1:, 1] == d[:-1, 1]))
    starts = np.flatnonzero(new & valid)
    breaks = np.append(np.flatnonzero(new | ~valid), k - 1)
    ends = breaks[np.searchsorted(breaks, starts, side="right")]
    runs: list[tuple[int, int]] = []
    a = 0  # the first point not yet in a run
    for l0, l1 in zip(starts.tolist(), ends.tolist(), strict=True):
        first = max(l0, a)
        if first >= l1:  # the group's only link starts at a point the last run took
            continue
        runs.extend((p, p + 1) for p in range(a, first))
        runs.append((first, l1 + 1))
        a = l1 + 1
    runs.extend((p, p + 1) for p in range(a, k))
    return runs
