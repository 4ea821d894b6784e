"""The ask/tell loop, written once: `run` drives a sampler to its end; `replay` tells it an earlier scan."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .sampler import Sampler
from .signals import DECAY_BATCHES, PROBE_WINDOW

__all__ = ["run", "replay"]


def run(sampler: Sampler, measure: Callable[[np.ndarray], np.ndarray], *, start=None,
        n: Callable[[Sampler], int | None] | None = None,
        on_batch: Callable[[Sampler, np.ndarray, np.ndarray], bool | None] | None = None) -> Sampler:
    """Ask, measure and tell until the sampler is done.

    Parameters
    ----------
    sampler : Sampler
    measure : callable
        ``measure(points)`` returns the (k,) values at the (k, 2) pixels ``points`` (row, col), in
        their order; a non-finite value marks a failed measurement (told as failed, so the pixel
        can be asked for again).
    start : (row, col), optional
        Where the stage is at first; after each batch the next route starts where the last ended.
    n : callable, optional
        ``n(sampler)`` gives the size of the next batch (None: the sampler's own).
    on_batch : callable, optional
        ``on_batch(sampler, points, values)`` after each tell; a true return value ends the loop.

    Returns
    -------
    Sampler
        The same sampler, done or stopped by ``on_batch``.
    """
    position = start
    while not sampler.done:
        points = sampler.ask(None if n is None else n(sampler), start=position)
        if len(points) == 0:
            break
        values = np.asarray(measure(points), dtype=np.float64)
        failed = ~np.isfinite(values)
        sampler.tell(points, values, failed=failed if failed.any() else None)
        position = tuple(points[-1])
        if on_batch is not None and on_batch(sampler, points, values):
            break
    return sampler


def replay(sampler: Sampler, points: np.ndarray, values: np.ndarray, batches: np.ndarray | None = None,
           probes: np.ndarray | None = None) -> int:
    """Tell a fresh sampler the measurements of an earlier scan, so that it continues that scan.

    The maps depend only on which points were measured, but the stop signals depend on the order:
    ``erd_ratio`` is relative to the ERD after the initial pattern, and the running signals average
    over the newest points as they were told. So the first batch is told alone, then everything up
    to the newest batches at once, then the newest batches one by one (enough of them to fill every
    running window), and the sampler's signals go on from where the earlier scan's were.

    Parameters
    ----------
    sampler : Sampler
        A sampler that has been told nothing.
    points : (n, 2) int array
        Pixels measured, in the order measured.
    values : (n,) float array, or (n, C) for a sampler of C channels
        Their values; non-finite ones (failed measurements; with channels, non-finite in all) are left out.
    batches : (n,) int array, optional
        Batch number of each point (0: the initial pattern). None: all in one tell.
    probes : (n,) bool array, optional
        Which points were random probes.

    Returns
    -------
    int
        The number of points told.
    """
    points = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    values = np.asarray(values, dtype=np.float64).reshape((-1,) if sampler.channels == 1 else (-1, sampler.channels))
    ok = np.isfinite(values) if values.ndim == 1 else np.isfinite(values).any(axis=1)  # channels: a number in one
    batches = np.zeros(len(values), np.int64) if batches is None else np.asarray(batches, dtype=np.int64)
    probes = np.zeros(len(values), bool) if probes is None else np.asarray(probes, dtype=bool)
    flat = points[:, 0] * sampler.shape[1] + points[:, 1]
    # a point that failed and was measured again later: keep its last value
    _, last = np.unique(flat[ok][::-1], return_index=True)
    keep = np.flatnonzero(ok)[np.sort(np.count_nonzero(ok) - 1 - last)]
    points, values, batches, probes = points[keep], values[keep], batches[keep], probes[keep]
    numbers, index = np.unique(batches, return_inverse=True)
    # points and probes in the batches from each one to the newest
    points_after = np.cumsum(np.bincount(index, minlength=len(numbers))[::-1])[::-1]
    probe_counts = np.bincount(index, weights=probes, minlength=len(numbers))
    probes_after = np.cumsum(probe_counts[::-1])[::-1]
    fills = ((len(numbers) - np.arange(len(numbers)) >= DECAY_BATCHES)
             & (points_after >= sampler.stop_.error_window)
             & (probes_after >= min(PROBE_WINDOW, probe_counts[1:].sum())))
    fills[:1] = False  # the initial pattern is told alone in any case
    tail = int(np.flatnonzero(fills).max()) if fills.any() else 1  # from here on, batch by batch
    # tell 0: the first batch; 1: the batches before the tail; then each batch of the tail
    tell = np.where(index == 0, 0, np.where(index < tail, 1, index - tail + 2))
    for k in np.unique(tell):
        sel = tell == k
        sampler.tell(points[sel], values[sel], probes=probes[sel])
    return len(values)
