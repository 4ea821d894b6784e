"""`smart_scan`: an adaptive 2-D scan steered by `steering.Sampler`, shaped like `bluesky.plans.grid_scan`."""

# No `from __future__ import annotations` here: a queue server reads smart_scan's annotations as
# objects (Readable, Movable, Flyable) to know which arguments name devices.
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.protocols import Flyable, Movable, Readable
from bluesky.utils import Msg, MsgGenerator, RequestStop, RunEngineControlException

from plans.arguments import check_devices, check_scan_options, check_steering_field, described_fields
from plans.beam_clock import BeamClock
from plans.failures import FailurePolicy
from plans.flying import fly_batch
from plans.grid import ScanGrid, hinted_field, steering_field
from plans.replay_guard import ReplayGuard
from plans.resume import resume
from plans.sampler_settings import make_sampler, sampler_metadata
from plans.stubs import (
    FailureRecord,
    PointResult,
    PointTags,
    SteeringMaps,
    SteeringReport,
    describe_fault,
    measure_point,
    record_batch,
    record_failure,
    record_maps,
    staged,
)
from plans.values import is_measured, measured_rows
from plans.worker import in_sampler_thread, result_of, start_in_sampler_thread
from steering import Sampler

__all__ = ["smart_scan"]


def smart_scan(
    detectors: Sequence[Readable], y_motor: Movable, y_start: float, y_stop: float, y_num: int,
    x_motor: Movable, x_start: float, x_stop: float, x_num: int, *, sampler: dict | str | None = None,
    value_field: str | Sequence[str] | None = None, channel_weights: Sequence[float] | None = None,
    reduce: str = "sum", maps_every: int = 5,
    beam_clock: Callable[[], float] | Readable | None = None, retries: int = 2, on_failure: str = "skip",
    timeout: float | None = 60.0, resume_from: Any = None, flyer: Flyable | None = None, pipeline: bool | None = None,
    md: dict | None = None,
) -> MsgGenerator[str]:
    """Scan a 2-D region adaptively: measure where the ERD network expects to learn most.

    Shaped like `bluesky.plans.grid_scan` (slow axis first): the grid is ``linspace(y_start,
    y_stop, y_num)`` x ``linspace(x_start, x_stop, x_num)``, and the sampler picks which of its
    points to measure, batch by batch, until its stop criteria fire. Each reading is one event in
    ``primary`` (detectors, motors, ``sampler_batch`` and ``sampler_probe``); each batch one event
    in ``steering``; each point that could not be measured one event in ``steering_failures``; the
    reconstruction and ERD maps go to ``steering_maps`` every ``maps_every`` batches and at the end.

    Parameters
    ----------
    detectors : list of readable devices
        Read at every point.
    y_motor, x_motor : movable devices
        Slow and fast stage axes.
    y_start, y_stop, y_num, x_start, x_stop, x_num : float, float, int
        The grid: first and last positions and number of points per axis.
    sampler : dict, str, Sampler or None
        `Sampler` settings (``model`` file, ``stop`` criteria as a dict or JSON file, ``batch_size``,
        ``seed``, ``probe_fraction``, ...), a JSON file of them, or a fresh `steering.Sampler` for
        this grid. None: the defaults (shipped model, stop at 25% of the grid).
    value_field : str or list of str, optional
        The reading that steers the scan. Default: the first hinted field of the first detector. A
        list of fields (element maps of a fluorescence detector, say) steers on all of them at once:
        the sampler gets one channel per field (`steering.Sampler` ``channels``), ranks points by
        their ERDs combined by ``channel_weights``, each in units of its own field's spread, and a
        point counts as measured when at least one of them is a number.
    channel_weights : list of float, optional
        With a list of fields, the weight of each (default equal); recorded in the start document.
    reduce : {"sum", "mean", "max"}
        How a non-scalar (e.g. 2-D) reading becomes the steering value; recorded in the start
        document, so that reading the run back reduces the same way.
    maps_every : int
        Batches between snapshots of the maps in ``steering_maps``.
    beam_clock : callable or signal, optional
        The beam time spent so far in seconds: a callable returning it, or a signal whose ``get()``
        does (``sim.beam_time``, a facility's PV; by name through a queue server). Default: the wall
        time the plan spends moving and reading. Reported every batch; ``stop.max_beam_time``.
    retries, on_failure : int, {"skip", "stop"}
        What a point that fails does (`plans.failures.FailurePolicy`): tried ``retries`` more times,
        then recorded as failed (``skip``: the scan goes on; ``stop``: the run ends, exit ``fail``).
    timeout : float or None
        Seconds a move, and a trigger, may take before it counts as failed (None: wait forever).
    resume_from : run, uid, path or ScanData, optional
        An earlier `smart_scan` of the same grid (``catalog.client[uid]``, its uid alone, found in the
        catalogs this session opened, its journal file, or what `read_scan` returned): it and the runs
        it continues are told to the sampler first, batch by batch, so this run continues them (stop
        signals included) and measures none of their points again; the start document records
        ``resumed_from`` (its uid) and ``resumed_points``.
    flyer : flyer device, optional
        Fly the scan: the sampler runs in fly mode (``scan_mode="fly"``, the flyer's timing model
        unless ``sampler`` gives ``timing``) and each batch is flown line by line (`plans.flying`).
    pipeline : bool or None
        Ask for the next batch while the current one is measured, so that deciding costs no beam
        time (the batch being measured counts as pending). None: for fly scans only.
    md : dict, optional
        Metadata added to the start document.

    Returns
    -------
    uid : str
        The run's uid.
    """
    detectors = check_devices(detectors, {"y_motor": y_motor, "x_motor": x_motor})
    grid = ScanGrid((y_num, x_num), ((y_start, y_stop), (x_start, x_stop)), motors=(y_motor, x_motor))
    maps_every, timeout = check_scan_options(value_field, reduce, maps_every, timeout, md)
    policy = FailurePolicy(retries, on_failure)
    grid.check_limits()
    clock = BeamClock(beam_clock)
    field = steering_field(value_field, detectors)
    steer = make_sampler(sampler, grid.shape, flyer=flyer, channels=field, channel_weights=channel_weights)
    resumed = resume(steer, resume_from, grid) if resume_from is not None else None
    clock.before = resumed.beam_time if resumed else 0.0
    check_steering_field(field, (yield from described_fields(detectors)))
    tags = PointTags(name="sampler")
    readables = detectors + [m for m in grid.motors if m not in detectors] + [tags]
    _md = {
        "plan_name": "smart_scan",
        "plan_args": {"detectors": list(map(repr, detectors)), "y_motor": repr(y_motor),
                      "y_start": grid.extents[0][0], "y_stop": grid.extents[0][1], "y_num": grid.shape[0],
                      "x_motor": repr(x_motor), "x_start": grid.extents[1][0], "x_stop": grid.extents[1][1],
                      "x_num": grid.shape[1],
                      "sampler": sampler if isinstance(sampler, (dict, str)) or sampler is None else repr(sampler),
                      "value_field": value_field, "channel_weights": channel_weights, "reduce": reduce,
                      "maps_every": maps_every,
                      "beam_clock": None if beam_clock is None else repr(beam_clock), "retries": retries,
                      "on_failure": on_failure, "timeout": timeout, "flyer": None if flyer is None else repr(flyer)},
        "plan_pattern": "adaptive", "detectors": [d.name for d in detectors], "motors": [m.name for m in grid.motors],
        "shape": list(grid.shape), "extents": [list(e) for e in grid.extents],
        "num_points": steer.stop_.point_budget(grid.shape[0] * grid.shape[1]),
        "value_field": field if isinstance(field, str) else list(field), "reduce": reduce,
        "sampler": sampler_metadata(steer),
        "hints": {"dimensions": [([hinted_field(m)], "primary") for m in grid.motors]},
        **({"resumed_from": resumed.uid, "resumed_points": resumed.points} if resumed else {}),
        **(md or {}),
    }
    batches = _steer(steer, grid, readables, tags, field, reduce=reduce, timeout=timeout, policy=policy,
                     clock=clock, maps_every=int(maps_every), first_batch=resumed.next_batch if resumed else 1,
                     flyer=flyer, pipeline=flyer is not None if pipeline is None else bool(pipeline))

    def close(e=None):
        if e is None:
            reason = steer.stop_reason or "the sampler had no more points to measure"
            yield from bps.close_run(exit_status="success", reason=reason)
        elif isinstance(e, RequestStop):
            yield from bps.close_run(exit_status="success", reason="stopped with RE.stop(), before the sampler's "
                                     "stop criteria fired")
        elif not isinstance(e, RunEngineControlException):
            yield from bps.close_run(exit_status="fail", reason=describe_fault(e))  # a failed status: its error
        # an abort or halt: the RunEngine closes the run with its exit status and the reason given to it

    def run():
        uid = yield from bps.open_run(_md)
        yield from bpp.contingency_wrapper(batches, except_plan=close, else_plan=close)
        return uid

    return (yield from staged(readables, run()))


def _decide(sampler: Sampler, policy: FailurePolicy, grid: ScanGrid, points, values, start, beam_time, *,
            ask: bool = True):
    """In the sampler's thread: tell a batch, exclude what the policy gave up on, ask the next; with timings."""
    t0 = time.perf_counter()
    if points is not None:
        failed = ~measured_rows(values)  # no number (in any channel)
        sampler.tell(points, values, failed=failed, beam_time=beam_time)
        given_up = policy.to_exclude(grid.beyond_limits)
        if given_up:
            sampler.exclude(given_up)
    t1 = time.perf_counter()
    nxt = sampler.ask(start=start) if ask else np.zeros((0, 2), np.int64)
    return nxt, sampler.probes_among(nxt), t1 - t0, time.perf_counter() - t1


def _ask_ahead(sampler: Sampler, start):
    """In the sampler's thread, while a batch is measured: the next batch, the one being measured pending."""
    t0 = time.perf_counter()
    nxt = sampler.ask(start=start)
    return nxt, sampler.probes_among(nxt), time.perf_counter() - t0


def _next_batch(sampler: Sampler, policy: FailurePolicy, grid: ScanGrid, futures, ahead, points, values, start,
                spent):
    """The next batch once a batch is measured: tell it; with ``ahead`` (a future of `_ask_ahead`), the batch
    asked for while it was measured, released if the tell ended the scan; else ask now."""
    if ahead is None:
        return (yield from in_sampler_thread(futures, partial(_decide, sampler, policy, grid, points, values, start,
                                                         spent)))
    nxt, probes, next_ask = yield from result_of(ahead)
    _, _, tell_time, _ = yield from in_sampler_thread(futures, partial(_decide, sampler, policy, grid, points, values,
                                                                  start, spent, ask=False))
    if sampler.done and len(nxt):
        sampler.release(nxt)
        nxt, probes = nxt[:0], probes[:0]
    elif not len(nxt) and not sampler.done:  # nothing could be asked ahead (the maps were not built yet)
        nxt, probes, _, next_ask = yield from in_sampler_thread(futures, partial(_decide, sampler, policy, grid, None,
                                                                            None, start, spent))
    return nxt, probes, tell_time, next_ask


def _step_batch(grid: ScanGrid, points, probes, readables, tags: PointTags, field: str, *, batch: int, reduce: str,
                timeout: float | None, policy: FailurePolicy, clock: BeamClock, guard: ReplayGuard, failures):
    """Measure a batch point by point (move, settle, read); return each point's steering value (NaN: failed;
    (k, C) with several fields)."""
    values = np.full((len(points),) if isinstance(field, str) else (len(points), len(field)), np.nan)
    tags.batch.put(batch)
    for k, pixel in enumerate(map(tuple, points.tolist())):
        tags.probe.put(bool(probes[k]))
        yield from guard.checkpoint()
        t_point, tries = time.perf_counter(), policy.tries(pixel)
        result = yield from measure_point(grid, pixel, readables, field, reduce=reduce, tries=tries,
                                          timeout=timeout, saved_data=guard.saved_data)
        # A pause or suspension rewinds to the last checkpoint and replays what followed:
        # one right after each point keeps a saved point from being measured again.
        yield from guard.checkpoint()
        clock.add(time.perf_counter() - t_point)
        values[k], label = result.value, ""
        if not is_measured(result.value):
            yield from record_failure(failures, grid, pixel, result, len(result.problems))
            yield from guard.checkpoint()
            label = grid.label(*pixel)
        policy.point_done(pixel, result.value, result.problems, beyond_limits=result.beyond_limits, label=label)
    return values


def _flown_failures(grid: ScanGrid, points, values, field: str, policy: FailurePolicy, failures, guard: ReplayGuard):
    """Account for the pixels of a flown batch as the step mode does: an event in ``steering_failures`` for each
    one whose value is not finite (its reading is stored in ``primary`` as it came), and the policy's rules."""
    for pixel, value in zip(map(tuple, points.tolist()), values, strict=True):
        result = PointResult(value=value, problems=[] if is_measured(value) else [f"{field} read {value}"])
        if not is_measured(value):
            yield from record_failure(failures, grid, pixel, result, 1)
            yield from guard.checkpoint()
        policy.point_done(pixel, value, result.problems, label=grid.label(*pixel) if result.problems else "")


def _steer(sampler: Sampler, grid: ScanGrid, readables, tags: PointTags, field: str, *, reduce: str,
           timeout: float | None, policy: FailurePolicy, clock: BeamClock, maps_every: int, first_batch: int,
           flyer=None, pipeline: bool = False):
    """The batches of a scan: ask, measure every point, tell, record; until the sampler has nothing to ask."""
    guard, futures = ReplayGuard(), []
    report, maps = SteeringReport(name="steering"), SteeringMaps(name="steering_maps")
    failures = FailureRecord(name="steering_failures")
    decide = partial(_decide, sampler, policy, grid)
    try:
        yield from bps.subscribe("all", guard)
        yield Msg("null", guard)  # the RunEngine asks the objects of a plan's messages to pause
        y, x = (yield from bps.rd(grid.motors[0])), (yield from bps.rd(grid.motors[1]))
        start = tuple(grid.pixels(y, x)[0].tolist()) if y is not None and x is not None else None
        clock.start()
        points, probes, _, ask_time = yield from in_sampler_thread(futures, lambda: decide(None, None, start, None))
        batch = first_batch
        while len(points):
            ahead = start_in_sampler_thread(futures, partial(_ask_ahead, sampler, tuple(points[-1].tolist()))) \
                if pipeline else None
            if flyer is not None:
                t_batch = time.perf_counter()
                values = yield from fly_batch(grid, flyer, points, batch=batch, field=field, reduce=reduce,
                                              guard=guard, timeout=timeout)
                clock.add(time.perf_counter() - t_batch)
                yield from _flown_failures(grid, points, values, field, policy, failures, guard)
            else:
                values = yield from _step_batch(grid, points, probes, readables, tags, field, batch=batch,
                                                reduce=reduce, timeout=timeout, policy=policy, clock=clock,
                                                guard=guard, failures=failures)
            policy.batch_done(values)
            start, spent = tuple(points[-1].tolist()), clock.now()
            nxt, probes, tell_time, next_ask = yield from _next_batch(sampler, policy, grid, futures, ahead, points,
                                                                      values, start, spent)
            yield from record_batch(report, sampler, batch=batch, points=len(points),
                                    failed=int((~measured_rows(values)).sum()),
                                    beam_time=spent, ask_time=ask_time,
                                    tell_time=tell_time)
            yield from guard.checkpoint()
            if batch % maps_every == 0 or not len(nxt):
                yield from record_maps(maps, sampler)
                yield from guard.checkpoint()
            points, ask_time, batch = nxt, next_ask, batch + 1
    finally:
        for future in futures:
            future.cancel()  # only what has not started: a running ask finishes in the background
