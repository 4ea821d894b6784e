"""Plan stubs of a smart scan: measure one point, record a batch, a failure or the maps.

Each is a small generator in the style of `bluesky.plan_stubs`; `plans.scan.smart_scan` strings them
together. The soft devices here carry what the plan records besides the detectors' readings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from uuid import uuid4

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky.utils import FailedStatus, RunEngineControlException
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.utils import LimitError

from plans.streams import FAILURES_STREAM, MAPS_STREAM, STEERING_STREAM
from plans.values import is_measured, steering_value

__all__ = ["PointTags", "SteeringReport", "SteeringMaps", "FailureRecord", "PointResult", "describe_fault", "staged",
           "trigger_and_read", "measure_point", "record_batch", "record_maps", "record_failure"]

logger = logging.getLogger("plans.smart_scan")


class PointTags(Device):
    """Read with every point into ``primary``: the sampler batch it belongs to, and whether it was a random probe."""

    batch = Cpt(Signal, value=0, kind="normal")
    probe = Cpt(Signal, value=False, kind="normal")


class SteeringReport(Device):
    """Soft signals filled once per batch and read into the ``steering`` stream."""

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


class SteeringMaps(Device):
    """The sampler's current maps, read into the ``steering_maps`` stream."""

    n_measured = Cpt(Signal, value=0, kind="normal")
    reconstruction = Cpt(Signal, value=np.zeros((1, 1)), kind="normal")
    erd = Cpt(Signal, value=np.zeros((1, 1)), kind="normal")


class FailureRecord(Device):
    """One point that could not be measured, read into the ``steering_failures`` stream."""

    row = Cpt(Signal, value=0, kind="hinted")
    col = Cpt(Signal, value=0, kind="hinted")
    y = Cpt(Signal, value=0.0, kind="normal")
    x = Cpt(Signal, value=0.0, kind="normal")
    tries = Cpt(Signal, value=0, kind="normal")
    fault = Cpt(Signal, value="", kind="normal")


def describe_fault(exc: BaseException) -> str:
    """``Type: message`` of a fault; for a failed status, of the error the device gave it (a following error, say)."""
    status = exc.args[0] if isinstance(exc, FailedStatus) and exc.args else None
    cause = status.exception() if callable(getattr(status, "exception", None)) else None
    exc = cause if isinstance(cause, BaseException) else exc
    return f"{type(exc).__name__}: {exc}"


@dataclass
class PointResult:
    """How measuring one point went: its steering value (NaN: failed; a (C,) array with several channels), the
    faults met, whether a limit refused it."""

    value: float | np.ndarray = float("nan")
    problems: list[str] = field(default_factory=list)
    beyond_limits: bool = False


def staged(devices, plan):
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


def trigger_and_read(devices, timeout: float | None, name: str = "primary"):
    """`bps.trigger_and_read`, with a time limit on the triggers and nothing saved if a read fails."""
    group = f"smart_scan-trigger-{uuid4()}"
    triggered = False
    for obj in devices:
        if hasattr(obj, "trigger"):
            triggered = True
            yield from bps.trigger(obj, group=group)
    if triggered:
        yield from bps.wait(group=group, timeout=timeout)
    yield from bps.create(name)
    reading = {}
    try:
        for obj in devices:
            reading.update((yield from bps.read(obj)) or {})
    except BaseException:
        yield from bps.drop()
        raise
    yield from bps.save()
    return reading


def measure_point(grid, pixel: tuple[int, int], readables, field: str | tuple[str, ...], *, reduce: str = "sum",
                  tries: int = 1,
                  timeout: float | None = None, saved_data=None):
    """Move to ``pixel`` of ``grid`` and read ``readables`` into ``primary``, up to ``tries`` times.

    A try fails when a move fails or times out, a detector raises or times out, or the steering
    value (``field`` of the reading, reduced by ``reduce``; with a tuple of fields, one value per field)
    is not finite (in any field); a target beyond a motor's
    limits ends the tries at once. With ``saved_data`` (a callable returning the data of the event
    just saved, `ReplayGuard.saved_data`), the value is taken from what was stored, which differs
    from the first reading when a pause before the save made the RunEngine read again. Returns a
    `PointResult`.
    """
    result = PointResult()
    target = grid.position(*pixel)
    for _ in range(tries):
        try:
            group = f"smart_scan-move-{uuid4()}"
            for motor, position in zip(grid.motors, target, strict=True):
                yield from bps.abs_set(motor, position, group=group)
            yield from bps.wait(group=group, timeout=timeout)
            reading = yield from trigger_and_read(readables, timeout)
        except RunEngineControlException:
            raise
        except LimitError as exc:  # the stage may not go there: trying again cannot help
            result.problems.append(describe_fault(exc))
            result.beyond_limits = True
            return result
        except Exception as exc:  # a fault of the instrument at this point
            result.problems.append(describe_fault(exc))
            continue
        stored = saved_data() if saved_data is not None else {key: r["value"] for key, r in reading.items()}
        absent = [f for f in ((field,) if isinstance(field, str) else field) if f not in stored]
        if absent:
            raise ValueError(f"value_field {absent[0]!r} is not among the fields read: {sorted(stored)}")
        value = steering_value(stored, field, reduce)
        if is_measured(value):
            result.value = value
            return result
        result.problems.append(f"{field} read {value}")
    return result


def record_failure(recorder: FailureRecord, grid, pixel: tuple[int, int], result: PointResult, tries: int):
    """One event in ``steering_failures`` for a point that could not be measured."""
    y, x = grid.position(*pixel)
    for signal, value in ((recorder.row, int(pixel[0])), (recorder.col, int(pixel[1])), (recorder.y, y),
                          (recorder.x, x), (recorder.tries, tries),
                          (recorder.fault, result.problems[-1] if result.problems else "")):
        signal.put(value)
    yield from bps.trigger_and_read([recorder], name=FAILURES_STREAM)


def record_batch(report: SteeringReport, sampler, *, batch: int, points: int, failed: int, beam_time: float,
                 ask_time: float, tell_time: float):
    """One event in ``steering``: progress, the stop signals as the stop check saw them, decision times."""
    signals = sampler.history_[-1] if sampler.history_ else sampler.signals
    values = {"batch": batch, "n_measured": sampler.n_measured, "fraction": sampler.fraction,
              "beam_time": beam_time, "batch_points": points, "failed_points": failed, "ask_time": ask_time,
              "tell_time": tell_time, "decision_time": ask_time + tell_time, "stop_reason": sampler.stop_reason or "",
              **{key: float(signals.get(key, np.nan))
                 for key in ("erd_ratio", "prediction_error", "recon_change", "ssim_estimate", "wall_time")}}
    for key, value in values.items():
        getattr(report, key).put(value)
    yield from bps.trigger_and_read([report], name=STEERING_STREAM)


def record_maps(maps: SteeringMaps, sampler):
    """One event in ``steering_maps``: the reconstruction and the ERD as they are now."""
    maps.n_measured.put(sampler.n_measured)
    maps.reconstruction.put(np.nan_to_num(sampler.reconstruction, nan=0.0).astype(np.float32))
    maps.erd.put(sampler.erd.astype(np.float32))
    yield from bps.trigger_and_read([maps], name=MAPS_STREAM)
