"""`smart_scan`: an adaptive 2-D scan steered by `steering.Sampler`, shaped like `bluesky.plans.grid_scan`."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.protocols import Movable, Readable
from bluesky.utils import Msg, MsgGenerator, NoReplayAllowed, RunEngineControlException
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.utils import LimitError

from steering import Sampler, StopCriteria

__all__ = ["smart_scan", "make_sampler", "STEERING_STREAM", "MAPS_STREAM"]

STEERING_STREAM = "steering"
"""Stream with one event per sampler batch: progress, stop signals and decision times."""
MAPS_STREAM = "steering_maps"
logger = logging.getLogger(__name__)
"""Stream with the reconstruction and ERD maps, every few batches and at the end."""

_REDUCERS = {"sum": np.sum, "mean": np.mean, "max": np.max}
_SAMPLER_KEYS = {
    "model", "initial_fraction", "initial_pattern", "batch_size", "stop", "seed", "suppression", "distance_discount",
}


class _SteeringReport(Device):
    """Soft signals the plan fills once per batch and reads into the `steering` stream."""

    batch = Cpt(Signal, value=0, kind="hinted")
    n_measured = Cpt(Signal, value=0, kind="hinted")
    fraction = Cpt(Signal, value=0.0, kind="hinted")
    erd_ratio = Cpt(Signal, value=np.nan, kind="normal")
    prediction_error = Cpt(Signal, value=np.nan, kind="normal")
    recon_change = Cpt(Signal, value=np.nan, kind="normal")
    ssim_estimate = Cpt(Signal, value=np.nan, kind="normal")
    wall_time = Cpt(Signal, value=0.0, kind="normal")
    beam_time = Cpt(Signal, value=0.0, kind="normal")
    batch_points = Cpt(Signal, value=0, kind="normal")
    failed_points = Cpt(Signal, value=0, kind="normal")
    ask_time = Cpt(Signal, value=0.0, kind="normal")
    tell_time = Cpt(Signal, value=0.0, kind="normal")
    decision_time = Cpt(Signal, value=0.0, kind="normal")
    stop_reason = Cpt(Signal, value="", kind="normal")


class _SteeringMaps(Device):
    """The sampler's current maps, read into the `steering_maps` stream."""

    n_measured = Cpt(Signal, value=0, kind="normal")
    reconstruction = Cpt(Signal, value=np.zeros((1, 1)), kind="normal")
    erd = Cpt(Signal, value=np.zeros((1, 1)), kind="normal")


def make_sampler(sampler: Sampler | dict | None, shape: tuple[int, int]) -> Sampler:
    """The `Sampler` a scan of ``shape`` uses, from an instance, a dict of its settings, or None.

    In a dict, ``model`` is a model file path (None: the shipped model) and ``stop`` a dict of
    `StopCriteria` fields or the path of a JSON file holding one.
    """
    if isinstance(sampler, Sampler):
        if tuple(sampler.shape) != tuple(shape):
            raise ValueError(f"sampler is for a {sampler.shape} grid but the scan is {tuple(shape)}")
        if sampler.n_measured or sampler.ask_times_:
            raise ValueError("sampler has been used already; pass a fresh Sampler")
        return sampler
    if sampler is None:
        return Sampler(shape)
    if not isinstance(sampler, dict):
        raise TypeError(f"sampler must be a Sampler, a dict of its settings or None, got {type(sampler).__name__}")
    unknown = set(sampler) - _SAMPLER_KEYS
    if unknown:
        raise ValueError(f"unknown sampler settings {sorted(unknown)}; known: {sorted(_SAMPLER_KEYS)}")
    kwargs = dict(sampler)
    stop = kwargs.get("stop")
    if isinstance(stop, (str, Path)):
        kwargs["stop"] = StopCriteria.from_json(stop)
    elif isinstance(stop, dict):
        kwargs["stop"] = StopCriteria.from_dict(stop)
    return Sampler(shape, **kwargs)


def _resume(steer: Sampler, resume_from: Any, shape: tuple[int, int], extents) -> tuple[str | None, int]:
    """Tell ``steer`` what an earlier run of the same grid measured; return (its uid, points told)."""
    from plans.readback import ScanData, read_scan, read_scan_journal

    uid = None
    if isinstance(resume_from, ScanData):
        data = resume_from
    elif isinstance(resume_from, (str, Path)):
        if not Path(resume_from).is_file():
            raise ValueError(f"resume_from: no journal file {str(resume_from)!r}")
        data = read_scan_journal(resume_from)
        uid = Path(resume_from).stem
    else:
        try:
            uid = resume_from.metadata["start"]["uid"]
            data = read_scan(resume_from)
        except (AttributeError, KeyError, TypeError) as exc:
            raise ValueError(f"resume_from must be a stored smart_scan run, its journal file or ScanData, "
                             f"got {resume_from!r}") from exc
    if tuple(data.shape) != tuple(shape) or not np.allclose(data.extents, extents):
        raise ValueError(f"resume_from is a {tuple(data.shape)} scan over {data.extents}; this scan is "
                         f"{tuple(shape)} over {extents}: resume on the same grid")
    flat = data.points[:, 0] * shape[1] + data.points[:, 1]
    # a point that failed and was measured again later: keep its last value
    _, last = np.unique(flat[::-1], return_index=True)
    keep = np.sort(len(flat) - 1 - last)
    points, values = data.points[keep], data.values[keep]
    ok = np.isfinite(values)
    if ok.any():
        steer.tell(points[ok], values[ok])
    return uid, int(ok.sum())


def _staged(devices, plan):
    """Stage ``devices``, run ``plan``, unstage them; a device that cannot be unstaged (its IOC is
    gone, say) is logged, so the error the user sees is what ended the scan, not the clean-up."""

    def unstage_all():
        for obj in reversed(devices):
            try:
                yield from bps.unstage(obj)
            except Exception as exc:
                logger.warning("smart_scan: could not unstage %s: %s", getattr(obj, "name", obj), exc)

    def inner():
        for obj in devices:
            yield from bps.stage(obj)
        return (yield from plan)

    return (yield from bpp.finalize_wrapper(inner(), unstage_all()))


def _trigger_and_read(devices, timeout: float | None):
    """`bps.trigger_and_read` into ``primary``, with a time limit on the triggers."""
    group = f"smart_scan-trigger-{uuid4()}"
    triggered = False
    for obj in devices:
        if hasattr(obj, "trigger"):
            triggered = True
            yield from bps.trigger(obj, group=group)
    if triggered:
        yield from bps.wait(group=group, timeout=timeout)
    yield from bps.create("primary")
    reading = {}
    try:
        for obj in devices:
            reading.update((yield from bps.read(obj)) or {})
    except BaseException:
        yield from bps.drop()
        raise
    yield from bps.save()
    return reading


class _ReplayGuard:
    """Keeps a pause or suspension from replaying a point that is already saved.

    On resume the RunEngine replays the messages since the last checkpoint. The plan yields a
    checkpoint right after each event, but a suspension can land between the ``save`` and that
    checkpoint; the replay would then measure the point again and emit it twice. This object
    listens to the run's events and, asked to ``pause`` by the RunEngine while an event is saved
    and not yet followed by a checkpoint, raises `NoReplayAllowed`: the RunEngine then drops its
    replay cache and continues after the save.
    """

    name = "smart_scan_replay_guard"

    def __init__(self) -> None:
        self.saved = False

    def __call__(self, name: str, doc: dict) -> None:
        if name == "event":
            self.saved = True

    def checkpoint(self):
        """`bps.checkpoint`, after which nothing saved is left to replay."""
        yield from bps.checkpoint()
        self.saved = False

    def pause(self) -> None:
        if self.saved:
            raise NoReplayAllowed()

    def resume(self) -> None:
        pass


def _sampler_md(sampler: Sampler) -> dict:
    model = sampler.model_
    return {
        "initial_fraction": sampler.initial_fraction,
        "initial_pattern": sampler.initial_pattern,
        "batch_size": sampler.batch_size_,
        "seed": sampler.seed,
        "suppression": sampler.suppression,
        "distance_discount": sampler.distance_discount,
        "stop": sampler.stop_.to_dict(),
        "model": {
            **model.source,
            "name": model.card.get("name"),
            "created": model.card.get("created"),
            "hidden": list(model.hidden),
        },
    }


def grid_index(position, start: float, stop: float, num: int):
    """Index of the nearest of ``num`` grid points from ``start`` to ``stop`` (clipped to the grid)."""
    step = (stop - start) / (num - 1) or 1.0
    return np.clip(np.rint((np.asarray(position, dtype=np.float64) - start) / step), 0, num - 1).astype(np.int64)


def _scalar(value: Any, reduce: str) -> float:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return float(a)
    if a.size == 0:
        return float("nan")
    return float(_REDUCERS[reduce](a))


_worker: ThreadPoolExecutor | None = None
_worker_lock = threading.Lock()


def _sampler_worker() -> ThreadPoolExecutor:
    """The one thread the sampler runs in, for every scan of the session.

    One thread for the session, not one per scan: each new thread gets a fresh malloc arena, and
    the resident memory of a session then grew by a few MiB per scan (measured in the soak test).
    """
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smart_scan-sampler")
        return _worker


def _off_loop(futures: list, fn):
    """Run ``fn`` in the sampler's thread; the RunEngine's loop (pause, Ctrl-C) stays responsive meanwhile.

    The future is made once, so a replay after a pause waits on the same result instead of
    calling ``fn`` again. It is added to ``futures`` so that the scan can cancel what it left queued.
    """
    future = _sampler_worker().submit(fn)
    futures.append(future)
    yield from bps.wait_for([lambda: asyncio.wrap_future(future)])
    return future.result()


def _hinted_field(device) -> str:
    fields = getattr(device, "hints", {}).get("fields", [])
    if not fields:
        raise ValueError(f"{getattr(device, 'name', device)!r} has no hinted field; name value_field explicitly")
    return fields[0]


def _motor_limits(motor) -> tuple[float, float] | None:
    """A motor's (low, high) limits, or None where it has none (ophyd's (0, 0) means none)."""
    try:
        low, high = (float(v) for v in getattr(motor, "limits", None))
    except (TypeError, ValueError):
        return None
    return (low, high) if low < high else None


def smart_scan(
    detectors: Sequence[Readable],
    y_motor: Movable,
    y_start: float,
    y_stop: float,
    y_num: int,
    x_motor: Movable,
    x_start: float,
    x_stop: float,
    x_num: int,
    *,
    sampler: dict | None = None,
    value_field: str | None = None,
    reduce: str = "sum",
    maps_every: int = 5,
    beam_clock: Callable[[], float] | None = None,
    retries: int = 2,
    on_failure: str = "skip",
    timeout: float | None = 60.0,
    resume_from: Any = None,
    md: dict | None = None,
) -> MsgGenerator[str]:
    """Scan a 2-D region adaptively: measure where the ERD network expects to learn most.

    Shaped like `bluesky.plans.grid_scan` (slow axis first). The grid is
    ``np.linspace(y_start, y_stop, y_num)`` x ``np.linspace(x_start, x_stop, x_num)``; the sampler
    picks which of its points to measure, batch by batch, until its stop criteria fire. Each point
    is one event in ``primary`` (detectors and motors); each batch is one event in the
    ``steering`` stream; the reconstruction and ERD maps go to ``steering_maps`` every
    ``maps_every`` batches and at the end.

    Parameters
    ----------
    detectors : list of readable devices
        Read at every point.
    y_motor, x_motor : movable devices
        Slow and fast stage axes.
    y_start, y_stop, y_num, x_start, x_stop, x_num : float, float, int
        Grid of the scan (first and last positions and number of points per axis).
    sampler : dict, Sampler or None
        Sampler settings (``model`` file path, ``stop`` criteria as a dict or JSON path,
        ``batch_size``, ``initial_fraction``, ``seed``, ...), or a fresh `steering.Sampler` for this
        grid. None: the defaults (shipped model, stop at 25% of the grid).
    value_field : str, optional
        The reading that steers the scan. Default: the first hinted field of the first detector.
    reduce : {"sum", "mean", "max"}
        How a non-scalar (e.g. 2-D) reading becomes the steering value.
    maps_every : int
        Batches between snapshots of the maps in ``steering_maps``.
    beam_clock : callable, optional
        Returns the beam time spent so far in seconds (e.g. a simulated instrument's clock). Default:
        the wall time the plan spends moving and reading, which excludes pauses and waiting for the
        sampler. Reported every batch and checked against ``stop.max_beam_time``.
    retries : int
        How many times a point is tried again after its move fails, its detector raises or times out,
        or its steering value is NaN/inf. A target outside a motor's limits (``LimitError``, e.g.
        limits tightened mid-scan) is not retried, and the sampler is not asked to go there, nor
        anywhere else beyond the limits, again.
    on_failure : {"skip", "stop"}
        After the retries: ``"skip"`` records the point as failed (a NaN, never a made-up value; the
        sampler may ask for it again once) and goes on; ``"stop"`` ends the run (exit status
        ``fail``, the reason naming the point and the fault). Everything read before stays stored.
    timeout : float or None
        Seconds a move, and a trigger, may take before it counts as failed (None: wait forever).
    resume_from : run, path or ScanData, optional
        An earlier `smart_scan` of the same grid (``catalog.client[uid]``, its journal file
        ``{journal directory}/{uid}.jsonl`` after a crash, or what `read_scan` returned): its
        measured points are told to the sampler first, so this run continues it,
        measuring none of them again; the start document records ``resumed_from`` (its uid) and
        ``resumed_points``. The stop criteria count the earlier points too.
    md : dict, optional
        Metadata added to the start document.

    Yields
    ------
    msg : Msg
        Messages for the RunEngine.

    Returns
    -------
    uid : str
        The run's uid.
    """
    detectors = list(detectors)
    if not detectors:
        raise ValueError("smart_scan needs at least one detector")
    for label, num in (("y_num", y_num), ("x_num", x_num)):
        if int(num) != num or num < 2:
            raise ValueError(f"{label} must be an integer >= 2, got {num}")
    for label, v in (("y_start", y_start), ("y_stop", y_stop), ("x_start", x_start), ("x_stop", x_stop)):
        if not np.isfinite(float(v)):
            raise ValueError(f"{label} must be finite, got {v}")
    for axis, lo, hi in (("y", y_start, y_stop), ("x", x_start, x_stop)):
        if float(lo) == float(hi):
            raise ValueError(f"{axis}_start and {axis}_stop must differ (a range of zero width), both are {lo}")
    if reduce not in _REDUCERS:
        raise ValueError(f"reduce must be one of {sorted(_REDUCERS)}, got {reduce!r}")
    if int(maps_every) != maps_every or maps_every < 1:
        raise ValueError(f"maps_every must be an integer >= 1, got {maps_every}")
    if int(retries) != retries or retries < 0:
        raise ValueError(f"retries must be an integer >= 0, got {retries}")
    if on_failure not in ("skip", "stop"):
        raise ValueError(f"on_failure must be 'skip' or 'stop', got {on_failure!r}")
    if timeout is not None and not (float(timeout) > 0 and np.isfinite(float(timeout))):
        raise ValueError(f"timeout must be a finite number of seconds > 0 or None, got {timeout}")
    for label, motor, lo, hi in (("y", y_motor, y_start, y_stop), ("x", x_motor, x_start, x_stop)):
        limits = _motor_limits(motor)
        if limits is None:
            continue
        low, high = limits
        if not (low <= min(lo, hi) and max(lo, hi) <= high):
            raise ValueError(f"{label}_start..{label}_stop ({lo}..{hi}) is outside the limits of "
                             f"{getattr(motor, 'name', motor)}: [{low}, {high}]")
    if beam_clock is not None and not callable(beam_clock):
        raise ValueError(f"beam_clock must be a callable returning seconds, got {beam_clock!r}")
    y_num, x_num = int(y_num), int(x_num)
    shape = (y_num, x_num)
    steer = make_sampler(sampler, shape)
    resumed = None
    if resume_from is not None:
        resumed = _resume(steer, resume_from, shape, ((float(y_start), float(y_stop)), (float(x_start), float(x_stop))))
    field = value_field or _hinted_field(detectors[0])
    ys = np.linspace(float(y_start), float(y_stop), y_num)
    xs = np.linspace(float(x_start), float(x_stop), x_num)
    motors = [y_motor, x_motor]
    readables = detectors + [m for m in motors if m not in detectors]

    _md = {
        "plan_name": "smart_scan",
        "plan_args": {
            "detectors": list(map(repr, detectors)),
            "y_motor": repr(y_motor), "y_start": float(y_start), "y_stop": float(y_stop), "y_num": y_num,
            "x_motor": repr(x_motor), "x_start": float(x_start), "x_stop": float(x_stop), "x_num": x_num,
            "sampler": sampler if isinstance(sampler, dict) or sampler is None else repr(sampler),
            "value_field": value_field, "reduce": reduce, "maps_every": int(maps_every),
            "beam_clock": None if beam_clock is None else repr(beam_clock),
            "retries": int(retries), "on_failure": on_failure, "timeout": timeout,
        },
        "plan_pattern": "adaptive",
        "detectors": [d.name for d in detectors],
        "motors": [m.name for m in motors],
        "shape": [y_num, x_num],
        "extents": [[float(y_start), float(y_stop)], [float(x_start), float(x_stop)]],
        "num_points": steer.stop_.point_budget(y_num * x_num),
        "value_field": field,
        "sampler": _sampler_md(steer),
        "hints": {"dimensions": [([_hinted_field(y_motor)], "primary"), ([_hinted_field(x_motor)], "primary")]},
    }
    if resumed is not None:
        _md["resumed_from"], _md["resumed_points"] = resumed
    _md.update(md or {})

    report = _SteeringReport(name="steering")
    maps = _SteeringMaps(name="steering_maps")
    state = {"reason": None}

    def to_pixel(y: float, x: float) -> tuple[int, int]:
        return int(grid_index(y, ys[0], ys[-1], y_num)), int(grid_index(x, xs[0], xs[-1], x_num))

    beam = {"spent": 0.0, "origin": None}

    def beam_time() -> float:
        if beam_clock is None:
            return beam["spent"]
        now = float(beam_clock())
        if beam["origin"] is None:
            beam["origin"] = now
        return now - beam["origin"]

    def out_of_reach() -> np.ndarray:
        """(row, col) of the grid pixels that the motors' limits, as they are now, forbid."""
        outside = np.zeros(shape, bool)
        for axis, motor, grid in ((0, y_motor, ys), (1, x_motor, xs)):
            limits = _motor_limits(motor)
            if limits is None:
                continue
            bad = (grid < limits[0]) | (grid > limits[1])
            if axis == 0:
                outside[bad, :] = True
            else:
                outside[:, bad] = True
        return np.argwhere(outside)

    def decide(points, values, failed, start, spent):
        t0 = time.perf_counter()
        if points is not None:
            steer.tell(points, values, failed=failed, beam_time=spent)
            given_up = [p for p, count in failures.items() if count >= 2]
            if given_up:
                steer.exclude(given_up)  # failed in two batches: the sampler stops asking for them
            if state.pop("limits_hit", False):
                # limits tightened mid-scan: nothing beyond them is worth asking for, not only the
                # points that met them (the ERD is highest right there, where nothing is measured)
                beyond = out_of_reach()
                if len(beyond):
                    steer.exclude(beyond)
        t1 = time.perf_counter()
        nxt = steer.ask(start=start)
        t2 = time.perf_counter()
        return nxt, t1 - t0, t2 - t1

    def emit_maps():
        maps.n_measured.put(steer.n_measured)
        maps.reconstruction.put(np.nan_to_num(steer.reconstruction, nan=0.0).astype(np.float32))
        maps.erd.put(steer.erd.astype(np.float32))
        yield from bps.trigger_and_read([maps], name=MAPS_STREAM)

    failures: dict[tuple[int, int], int] = {}

    def measure(i: int, j: int):
        """Move to pixel (i, j) and read; retried on faults. Returns (value, what went wrong, whether the
        point is out of reach: a limit, not a fault of the instrument)."""
        problems = []
        tries = 1 if failures.get((i, j), 0) else int(retries) + 1  # a point that failed before gets one try
        for _ in range(tries):
            try:
                group = f"smart_scan-move-{uuid4()}"
                yield from bps.abs_set(y_motor, ys[i], group=group)
                yield from bps.abs_set(x_motor, xs[j], group=group)
                yield from bps.wait(group=group, timeout=timeout)
                reading = yield from _trigger_and_read(readables, timeout)
            except RunEngineControlException:
                raise
            except LimitError as exc:  # the stage may not go there: trying again cannot help
                problems.append(f"{type(exc).__name__}: {exc}")
                failures[(i, j)] = failures.get((i, j), 0) + 2  # not asked for again
                state["limits_hit"] = True
                return float("nan"), problems, True
            except Exception as exc:  # a fault of the instrument at this point: retry, then give up
                problems.append(f"{type(exc).__name__}: {exc}")
                continue
            if field not in reading:
                raise ValueError(f"value_field {field!r} is not among the fields read: {sorted(reading)}")
            value = _scalar(reading[field]["value"], reduce)
            if np.isfinite(value):
                return value, problems, False
            problems.append(f"{field} read {value}")
        failures[(i, j)] = failures.get((i, j), 0) + 1
        return float("nan"), problems, False

    guard = _ReplayGuard()

    def body():
        futures: list = []
        try:
            yield from bps.subscribe("event", guard)
            yield Msg("null", guard)  # the RunEngine asks the objects of a plan's messages to pause
            y0 = yield from bps.rd(y_motor)
            x0 = yield from bps.rd(x_motor)
            start = to_pixel(float(y0), float(x0)) if y0 is not None and x0 is not None else None
            beam_time()  # the clock's origin: the start of the scan
            points, _, ask_time = yield from _off_loop(futures, lambda: decide(None, None, None, start, None))
            batch = idle = streak = 0
            while len(points):
                values = np.full(len(points), np.nan)
                for k, (i, j) in enumerate(points):
                    yield from guard.checkpoint()
                    t_point = time.perf_counter()
                    values[k], problems, out_of_reach = yield from measure(int(i), int(j))
                    # A pause or suspension rewinds to the last checkpoint and replays what followed:
                    # one right after each point keeps a saved point from being measured again.
                    yield from guard.checkpoint()
                    beam["spent"] += time.perf_counter() - t_point
                    # points beyond a limit are not a sign that the instrument is down
                    streak = 0 if np.isfinite(values[k]) else streak + (not out_of_reach)
                    if streak >= 10:
                        raise RuntimeError(f"10 points in a row could not be measured (the instrument looks down); "
                                           f"last fault: {problems[-1] if problems else 'none'}")
                    if not np.isfinite(values[k]):
                        where = (f"point ({i}, {j}) at {_hinted_field(y_motor)}={ys[i]:g}, "
                                 f"{_hinted_field(x_motor)}={xs[j]:g}")
                        if on_failure == "stop":
                            raise RuntimeError(f"{where} failed {len(problems)} times; last: {problems[-1]}")
                        logger.warning("smart_scan: %s recorded as failed: %s", where, "; ".join(problems))
                failed = ~np.isfinite(values)
                idle = idle + 1 if failed.all() else 0
                if idle >= 3:
                    raise RuntimeError(f"no point of the last 3 batches could be measured; "
                                       f"last fault: {problems[-1] if problems else 'none'}")
                start = tuple(points[-1])
                spent = beam_time()
                nxt, tell_time, next_ask_time = yield from _off_loop(
                    futures, lambda p=points, v=values, f=failed, s=start, b=spent: decide(p, v, f, s, b)
                )
                signals = steer.history_[-1] if steer.history_ else steer.signals  # as the stop check saw them
                batch += 1
                state["reason"] = steer.stop_reason
                report.batch.put(batch)
                report.n_measured.put(steer.n_measured)
                report.fraction.put(steer.fraction)
                report.erd_ratio.put(float(signals.get("erd_ratio", np.nan)))
                report.prediction_error.put(float(signals.get("prediction_error", np.nan)))
                report.recon_change.put(float(signals.get("recon_change", np.nan)))
                report.ssim_estimate.put(float(signals.get("ssim_estimate", np.nan)))
                report.wall_time.put(float(signals.get("wall_time", np.nan)))
                report.beam_time.put(spent)
                report.batch_points.put(len(points))
                report.failed_points.put(int(failed.sum()))
                report.ask_time.put(ask_time)
                report.tell_time.put(tell_time)
                report.decision_time.put(ask_time + tell_time)
                report.stop_reason.put(state["reason"] or "")
                yield from bps.trigger_and_read([report], name=STEERING_STREAM)
                yield from guard.checkpoint()
                if batch % maps_every == 0 or not len(nxt):
                    yield from emit_maps()
                    yield from guard.checkpoint()
                points, ask_time = nxt, next_ask_time
            if state["reason"] is None:
                state["reason"] = steer.stop_reason or "sampler had no more points to measure"
        finally:
            for future in futures:
                future.cancel()  # only what has not started: a running ask finishes in the background

    def except_plan(e):
        if isinstance(e, RunEngineControlException):
            yield from bps.close_run(exit_status=e.exit_status, reason=str(e) or e.exit_status)
        else:
            yield from bps.close_run(exit_status="fail", reason=f"{type(e).__name__}: {e}")

    def else_plan():
        yield from bps.close_run(exit_status="success", reason=state["reason"])

    def run():
        uid = yield from bps.open_run(_md)
        yield from bpp.contingency_wrapper(body(), except_plan=except_plan, else_plan=else_plan)
        return uid

    return (yield from _staged(readables, run()))
