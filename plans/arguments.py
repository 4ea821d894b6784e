"""Checks of a plan's arguments, made before the plan yields its first message.

A plan that finds a bad argument only once the stages have moved has moved them for nothing (and
may have exposed the sample); each check here raises an error that names the argument and says what
it must be, so `smart_scan` refuses bad input with no move, no trigger and no document.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

import bluesky.plan_stubs as bps

from steering.checks import real_number, whole_number

__all__ = ["real_number", "whole_number", "check_devices", "check_scan_options", "described_fields"]


def _is_readable(obj: Any) -> bool:
    return callable(getattr(obj, "read", None)) and callable(getattr(obj, "describe", None))


def _kind(obj: Any) -> str:
    name = getattr(obj, "name", None)
    return f"{name if isinstance(name, str) else repr(obj)} ({type(obj).__name__})"


def check_devices(detectors: Any, motors: dict[str, Any]) -> list:
    """The detectors as a list, after checking that each is readable and each motor movable and readable.

    Parameters
    ----------
    detectors : sequence of readable devices
        A list or tuple (a single device, or a name, is refused with a hint).
    motors : dict
        Argument name (``"y_motor"``) -> the device passed.

    Raises
    ------
    TypeError, ValueError
        Naming the argument that is wrong.
    """
    if isinstance(detectors, (str, bytes)) or not isinstance(detectors, Sequence):
        hint = " (a single device: write [det])" if _is_readable(detectors) else ""
        raise TypeError(f"detectors must be a list of readable devices{hint}, got {_kind(detectors)}")
    detectors = list(detectors)
    if not detectors:
        raise ValueError("detectors must hold at least one detector, got an empty list")
    for k, det in enumerate(detectors):
        if not _is_readable(det):
            raise TypeError(f"detectors[{k}] must be a readable device (with read and describe), got {_kind(det)}")
    for name, motor in motors.items():
        if isinstance(motor, str):
            raise TypeError(f"{name} must be a motor device, not its name {motor!r}: pass the device itself")
        if not callable(getattr(motor, "set", None)) or not _is_readable(motor):
            raise TypeError(f"{name} must be a movable, readable device (with set, read and describe), "
                            f"got {_kind(motor)}")
    (y_name, y_motor), (x_name, x_motor) = motors.items()
    if y_motor is x_motor:
        raise ValueError(f"{y_name} and {x_name} are the same device {_kind(y_motor)}: a 2-D scan needs two axes")
    for name, motor in motors.items():
        if any(motor is det for det in detectors):
            raise ValueError(f"{name} {_kind(motor)} is also among the detectors")
    return detectors


def described_fields(devices: Sequence[Any]):
    """Plan: the names of every field ``devices`` read (their ``describe()``), without reading them.

    An ophyd device describes itself at once; an ophyd-async one is awaited in the RunEngine's
    loop. Nothing moves and nothing is triggered.
    """
    fields: set[str] = set()
    for device in devices:
        try:
            description = device.describe()
        except Exception as exc:
            raise ValueError(f"detector {_kind(device)} cannot describe its readings: {exc}") from exc
        if inspect.isawaitable(description):
            awaited: dict = {}

            async def describe(pending=description, into=awaited):
                into.update(await pending)

            yield from bps.wait_for([describe])
            description = awaited
        fields.update(description)
    return fields


def check_scan_options(value_field: Any, reduce: Any, maps_every: Any, timeout: Any,
                       md: Any) -> tuple[int, float | None]:
    """Check `smart_scan`'s options that are neither devices, grid, sampler nor clock; return ``maps_every`` and
    ``timeout``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument that is wrong.
    """
    from plans.values import REDUCERS

    if value_field is not None and not isinstance(value_field, str) and not (
            isinstance(value_field, (list, tuple)) and value_field and all(isinstance(f, str) for f in value_field)):
        raise TypeError(f"value_field must be the name of a field (a str), a list of them (one per channel) or None, "
                        f"got {value_field!r}")
    if isinstance(value_field, (list, tuple)) and len(set(value_field)) != len(value_field):
        raise ValueError(f"value_field names a field twice: {list(value_field)}")
    if not isinstance(reduce, str) or reduce not in REDUCERS:
        raise ValueError(f"reduce must be one of {sorted(REDUCERS)}, got {reduce!r}")
    maps_every = whole_number("maps_every", maps_every, 1)
    if timeout is not None:
        timeout = real_number("timeout", timeout, finite=False)
        if not (0 < timeout < math.inf):
            raise ValueError(f"timeout must be a finite number of seconds > 0 or None, got {timeout!r}")
    if md is not None and not isinstance(md, dict):
        raise TypeError(f"md must be a dict or None, got {type(md).__name__}")
    return maps_every, timeout


def check_steering_field(field: str | tuple[str, ...], described: dict) -> None:
    """Refuse a steering field the detectors do not read (``described``: `described_fields`), naming those they do."""
    for name in (field,) if isinstance(field, str) else field:
        if name not in described:
            raise ValueError(f"value_field {name!r} is not among the fields the detectors read: {sorted(described)}")
