"""The steering value of a reading: a scalar, or a 2-D detector frame reduced by ``reduce``; with several
steering fields (channels), one such value per field."""

from __future__ import annotations

import numpy as np

__all__ = ["REDUCERS", "reduce_reading", "reduce_rows", "steering_value", "steering_rows", "is_measured",
           "measured_rows"]

REDUCERS = {"sum": np.sum, "mean": np.mean, "max": np.max}


def reduce_reading(value, reduce: str = "sum") -> float:
    """One reading as the scalar the sampler steers on (NaN for an empty array)."""
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0:
        return float(a)
    if a.size == 0:
        return float("nan")
    return float(REDUCERS[reduce](a))


def reduce_rows(values, reduce: str = "sum") -> np.ndarray:
    """One steering value per event from a column of readings (scalars, or a frame per event)."""
    a = np.asarray(values, dtype=np.float64)
    if a.ndim <= 1:
        return a.reshape(-1)
    return REDUCERS[reduce](a.reshape(len(a), -1), axis=1)


def steering_value(stored: dict, field: str | tuple[str, ...], reduce: str = "sum"):
    """The steering value of one reading (``stored``: field -> value): ``field`` reduced, a float; with a
    tuple of fields (several channels), a (C,) array of them."""
    if isinstance(field, str):
        return reduce_reading(stored[field], reduce)
    return np.array([reduce_reading(stored[f], reduce) for f in field])


def steering_rows(column, field: str | tuple[str, ...], reduce: str = "sum") -> np.ndarray:
    """`reduce_rows` of a run's steering field(s): (n,) for one field, (n, C) for several.
    ``column(name)`` returns a field's readings, one per event."""
    if isinstance(field, str):
        return reduce_rows(column(field), reduce)
    return np.stack([reduce_rows(column(f), reduce) for f in field], axis=1)


def measured_rows(values: np.ndarray) -> np.ndarray:
    """`is_measured` of each row of a batch's values ((k,), or (k, C) with several channels)."""
    finite = np.isfinite(np.asarray(values, dtype=np.float64))
    return finite if finite.ndim == 1 else finite.any(axis=1)


def is_measured(value) -> bool:
    """Whether a steering value counts as measured: finite, or with several channels finite in at least one
    (a channel a reading did not give is filled in by the sampler)."""
    return bool(np.isfinite(value).any())
