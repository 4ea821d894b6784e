"""Plan stub of a fly scan: fly the rows of a batch and store one event per pixel in ``primary``."""

from __future__ import annotations

from uuid import uuid4

import bluesky.plan_stubs as bps
import numpy as np

from plans.values import reduce_reading
from steering.timing import flown_runs

__all__ = ["fly_batch"]


def fly_batch(grid, flyer, points: np.ndarray, *, batch: int, field: str, reduce: str, guard,
              timeout: float | None):
    """Fly a batch, line by line, and return the steering value of each of its points.

    The batch is cut into the lines a fly scan flies (`steering.timing.flown_runs`: consecutive
    pixels of one row at one column step; a lone pixel is a line of one). For each: move the stage
    to its first pixel, ``prepare`` the flyer with the row and the pixels' positions, ``kickoff``,
    ``complete`` and ``collect`` one event per pixel into ``primary``. A checkpoint precedes each
    line and follows its events: a pause or suspension during a flight flies that line again on
    resume and stores it once; a line already stored is never flown again.

    Parameters
    ----------
    grid : ScanGrid
    flyer : flyer device
        Takes ``prepare({"y": y, "x": [x, ...], "tags": {...}})`` (e.g. `sim.flyer.SimulatedFlyer`).
    points : (k, 2) int array
        The batch, in flying order.
    batch : int
        Stored with each pixel as ``sampler_batch``.
    field : str
        The steering value's field in the flyer's events.
    reduce : str
        How a non-scalar value becomes the steering value.
    guard : ReplayGuard
        Places the checkpoints.
    timeout : float or None
        Seconds a move may take.
    """
    values = np.full(len(points), np.nan)
    for a, b in flown_runs(points):
        line = points[a:b]
        y, x0 = grid.position(*line[0])
        xs = [float(grid.position(*p)[1]) for p in line]
        yield from guard.checkpoint()
        group = f"smart_scan-fly-{uuid4()}"
        yield from bps.abs_set(grid.motors[0], y, group=group)
        yield from bps.abs_set(grid.motors[1], x0, group=group)
        yield from bps.wait(group=group, timeout=timeout)
        flight = {"y": float(y), "x": xs, "tags": {"sampler_batch": int(batch), "sampler_probe": False}}
        yield from bps.prepare(flyer, flight, wait=True)
        yield from bps.kickoff(flyer, wait=True)
        yield from bps.complete(flyer, wait=True)
        events = yield from bps.collect(flyer)
        yield from guard.checkpoint()
        if len(events) != len(line):
            raise RuntimeError(f"{flyer.name} returned {len(events)} readings for a line of {len(line)} pixels")
        values[a:b] = [reduce_reading(event["data"][field], reduce) for event in events]
    return values
