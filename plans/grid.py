"""The grid of a 2-D scan: pixels (row, col) to stage positions (y, x) and back, and the motors' limits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plans.arguments import real_number, whole_number

__all__ = ["ScanGrid", "grid_index", "motor_limits", "hinted_field", "steering_field"]


def grid_index(position, start: float, stop: float, num: int):
    """Index of the nearest of ``num`` grid points from ``start`` to ``stop`` (clipped to the grid)."""
    step = (stop - start) / (num - 1) or 1.0
    return np.clip(np.rint((np.asarray(position, dtype=np.float64) - start) / step), 0, num - 1).astype(np.int64)


def motor_limits(motor) -> tuple[float, float] | None:
    """A motor's (low, high) limits, or None where it has none (ophyd's (0, 0) means none)."""
    try:
        low, high = (float(v) for v in getattr(motor, "limits", None))
    except (TypeError, ValueError):
        return None
    return (low, high) if low < high else None


def hinted_field(device) -> str:
    """The first hinted field of a device (what it reads as its main value)."""
    fields = getattr(device, "hints", {}).get("fields", [])
    if not fields:
        raise ValueError(f"{getattr(device, 'name', device)!r} has no hinted field; name value_field explicitly")
    return fields[0]


class ScanGrid:
    """``linspace(y_start, y_stop, y_num)`` x ``linspace(x_start, x_stop, x_num)``, slow axis first.

    Parameters
    ----------
    shape : (y_num, x_num)
        Points per axis, each an integer >= 2.
    extents : ((y_start, y_stop), (x_start, x_stop))
        Stage positions of the first and last grid points; finite, each range of non-zero width.
    motors : (y_motor, x_motor), optional
        The stage axes: their limits are checked, and their names label points in messages.

    Raises
    ------
    TypeError, ValueError
        Naming the argument (``y_num``, ``x_stop``, ...) that is wrong.
    """

    def __init__(self, shape: Sequence[int], extents, motors: Sequence | None = None):
        nums = [whole_number(label, num, 2) for label, num in zip(("y_num", "x_num"), shape, strict=True)]
        (y0, y1), (x0, x1) = extents
        y0, y1, x0, x1 = (real_number(label, v) for label, v in zip(("y_start", "y_stop", "x_start", "x_stop"),
                                                                     (y0, y1, x0, x1), strict=True))
        for axis, lo, hi in (("y", y0, y1), ("x", x0, x1)):
            if lo == hi:
                raise ValueError(f"{axis}_start and {axis}_stop must differ (a range of zero width), both are {lo}")
        self.shape = (nums[0], nums[1])
        self.extents = ((y0, y1), (x0, x1))
        self.motors = tuple(motors) if motors is not None else None
        self.ys = np.linspace(*self.extents[0], self.shape[0])
        self.xs = np.linspace(*self.extents[1], self.shape[1])

    def position(self, row: int, col: int) -> tuple[float, float]:
        """Stage position (y, x) of pixel (row, col)."""
        return float(self.ys[row]), float(self.xs[col])

    def pixels(self, y, x) -> np.ndarray:
        """(n, 2) pixels nearest stage positions ``y``, ``x`` (arrays; clipped to the grid)."""
        (y0, y1), (x0, x1) = self.extents
        return np.stack([grid_index(np.ravel(y), y0, y1, self.shape[0]),
                         grid_index(np.ravel(x), x0, x1, self.shape[1])], axis=1)

    def label(self, row: int, col: int) -> str:
        """``point (row, col) at y_field=..., x_field=...``, for messages."""
        y, x = self.position(row, col)
        names = [hinted_field(m) for m in self.motors] if self.motors else ["y", "x"]
        return f"point ({row}, {col}) at {names[0]}={y:g}, {names[1]}={x:g}"

    def check_limits(self) -> None:
        """Raise ValueError if a scan range lies outside its motor's limits (before anything moves)."""
        for label, motor, (lo, hi) in zip("yx", self.motors or (), self.extents, strict=False):
            limits = motor_limits(motor)
            if limits is not None and not (limits[0] <= min(lo, hi) and max(lo, hi) <= limits[1]):
                raise ValueError(f"{label}_start..{label}_stop ({lo:g}..{hi:g}) is outside the limits of "
                                 f"{getattr(motor, 'name', motor)}: [{limits[0]}, {limits[1]}]")

    def beyond_limits(self) -> np.ndarray:
        """(n, 2) pixels that the motors' limits, as they are now, forbid."""
        outside = np.zeros(self.shape, bool)
        for axis, motor, grid in zip((0, 1), self.motors or (), (self.ys, self.xs), strict=False):
            limits = motor_limits(motor)
            if limits is None:
                continue
            bad = (grid < limits[0]) | (grid > limits[1])
            if axis == 0:
                outside[bad, :] = True
            else:
                outside[:, bad] = True
        return np.argwhere(outside)


def steering_field(value_field: str | list[str] | tuple[str, ...] | None, detectors) -> str | tuple[str, ...]:
    """The field a scan steers on: ``value_field``, a tuple of them for a list (several channels), or by default
    the first hinted field of the first detector."""
    if isinstance(value_field, (list, tuple)):
        return tuple(value_field)
    return value_field or hinted_field(detectors[0])

