"""Continuing a scan: tell a fresh sampler what earlier runs of the same grid measured."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from plans.grid import ScanGrid
from plans.readback import ScanData, read_scan, read_scan_journal
from plans.storage import find_run
from steering import Sampler
from steering.loop import replay

__all__ = ["Resumed", "resume"]


@dataclass
class Resumed:
    """What a resumed scan continues from.

    Attributes
    ----------
    uid : str or None
        The run it continues (the last of a chain of resumed runs).
    points : int
        Points told to the sampler (every one measured in the chain of runs).
    next_batch : int
        Number of the next batch (the batches go on counting).
    beam_time : float
        Beam time the earlier runs spent (0 where they did not record it).
    """

    uid: str | None
    points: int
    next_batch: int
    beam_time: float


def _looks_like_uid(text: str) -> bool:
    """A run uid (as bluesky makes them), not a file name."""
    return len(text) >= 8 and all(c in "0123456789abcdef-" for c in text.lower())


def _stored_scan(resume_from: Any) -> ScanData:
    if isinstance(resume_from, ScanData):
        return resume_from
    if isinstance(resume_from, str) and not Path(resume_from).is_file() and _looks_like_uid(resume_from):
        resume_from = find_run(resume_from)
    elif isinstance(resume_from, (str, Path)):
        if not Path(resume_from).is_file():
            raise ValueError(f"resume_from: no journal file {str(resume_from)!r}")
        try:
            return read_scan_journal(resume_from)
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise ValueError(f"resume_from: {str(resume_from)!r} is not the journal of a smart_scan run "
                             f"({type(exc).__name__}: {exc})") from None
    try:
        return read_scan(resume_from)
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError(f"resume_from must be a stored smart_scan run, its journal file or ScanData, "
                         f"got {resume_from!r}") from exc


def resume(sampler: Sampler, resume_from: Any, grid: ScanGrid) -> Resumed:
    """Tell ``sampler`` every point of ``resume_from`` (and of the runs it continues) on ``grid``.

    The points are told batch by batch as they were measured (`steering.loop.replay`), so the stop
    signals go on from where the earlier run left them.

    Parameters
    ----------
    sampler : Sampler
        A fresh sampler for the grid.
    resume_from : run, uid, path or ScanData
        A stored `smart_scan` run (``catalog.client[uid]``), its uid (looked up in the catalogs this
        process opened, `plans.storage.find_run`), its journal file, or `ScanData`.
    grid : ScanGrid
        The grid of the new scan; it must be the earlier one's.
    """
    data = _stored_scan(resume_from)
    if data.incomplete:
        raise ValueError(
            f"resume_from: {'; '.join(data.incomplete)}. Resuming now would measure its missing points again. "
            "Run catalog.recover() first (it writes such a run whole from its journal and closes it), or pass "
            "the run's journal file, which holds every point (resume_from='<catalog>/journal/<uid>.jsonl').")
    if tuple(data.shape) != tuple(grid.shape) or not np.allclose(data.extents, grid.extents):
        raise ValueError(f"resume_from is a {tuple(data.shape)} scan over {data.extents}; this scan is "
                         f"{tuple(grid.shape)} over {grid.extents}: resume on the same grid")
    channels = 1 if data.values.ndim == 1 else data.values.shape[1]
    if channels != sampler.channels:
        raise ValueError(f"resume_from steered on {list(data.fields)} ({channels} channel(s)); this scan steers on "
                         f"{sampler.channels}: resume with the same value_field")
    told = replay(sampler, data.points, data.values, data.batches, data.probes)
    if data.beam_time:  # what the earlier runs spent counts against max_beam_time and a fly scan's budget
        nothing = np.zeros((0,) if sampler.channels == 1 else (0, sampler.channels))
        sampler.tell(np.zeros((0, 2), np.int64), nothing, beam_time=data.beam_time)
    last = int(data.batches.max()) if data.batches is not None and len(data.batches) else 0
    return Resumed(data.runs[-1] if data.runs else None, told, last + 1, data.beam_time or 0.0)
