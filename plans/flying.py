"""Plan stub of a fly scan: fly the rows of a batch and store one event per pixel in ``primary``."""

from __future__ import annotations

from uuid import uuid4

import numpy as np
from bluesky import Msg
from bluesky.protocols import EventPageCollectable

from plans.values import reduce_reading
from steering.timing import flown_runs

__all__ = ["fly_batch"]


def fly_batch(grid, flyer, points: np.ndarray, *, batch: int, field: str | tuple[str, ...], reduce: str, guard,
              timeout: float | None):
    """Fly a batch, line by line, and return the steering value of each of its points.

    The batch is cut into the lines a fly scan flies (`steering.timing.flown_runs`: consecutive
    pixels of one row at one column step; a lone pixel is a line of one). For each: move the stage
    to its first pixel, ``prepare`` the flyer with the row and the pixels' positions, ``kickoff``,
    ``complete`` and ``collect`` one event per pixel into ``primary`` (a flyer may give them as
    events, ``collect``, or as event pages, ``collect_pages``). A checkpoint precedes each
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
    field : str or tuple of str
        The steering value's field in the flyer's events; with several (channels), the values are (k, C).
    reduce : str
        How a non-scalar value becomes the steering value.
    guard : ReplayGuard
        Places the checkpoints.
    timeout : float or None
        Seconds a move may take.
    """
    fields = (field,) if isinstance(field, str) else tuple(field)
    values = np.full((len(points), len(fields)), np.nan)
    for a, b in flown_runs(points):
        line = points[a:b]
        y, x0 = grid.position(*line[0])
        xs = [float(grid.position(*p)[1]) for p in line]
        yield from guard.checkpoint()
        # Msgs, not plan stubs: a stub formats the call stack each time it is called (bluesky's warning
        # for a plan never iterated), about 0.3 ms at this depth, and a line took nine.
        group = f"smart_scan-fly-{uuid4()}"
        yield Msg("set", grid.motors[0], y, group=group)
        yield Msg("set", grid.motors[1], x0, group=group)
        yield Msg("wait", None, group=group, error_on_timeout=True, timeout=timeout)
        flight = {"y": float(y), "x": xs, "tags": {"sampler_batch": int(batch), "sampler_probe": False}}
        for command, args in (("prepare", (flight,)), ("kickoff", ()), ("complete", ())):
            yield Msg(command, flyer, *args, group=group)
            yield Msg("wait", None, group=group)
        payload = yield Msg("collect", flyer, stream=False, return_payload=True, name=None)
        pages = isinstance(flyer, EventPageCollectable)
        yield from guard.checkpoint()
        for c, name in enumerate(fields):
            readings = _collected_readings(payload, name, pages=pages)
            if len(readings) != len(line):
                raise RuntimeError(f"{flyer.name} returned {len(readings)} readings for a line of {len(line)} pixels")
            values[a:b, c] = [reduce_reading(reading, reduce) for reading in readings]
    return values[:, 0] if isinstance(field, str) else values


def _collected_readings(payload: list[dict], field: str, *, pages: bool) -> list:
    """The readings of ``field``, pixel by pixel, in what a collect returned (events, or event pages)."""
    if pages:
        return [reading for page in payload for reading in page["data"][field]]
    return [event["data"][field] for event in payload]
