"""The steering value of a reading: a scalar, or a 2-D detector frame reduced by ``reduce``."""

from __future__ import annotations

import numpy as np

__all__ = ["REDUCERS", "reduce_reading", "reduce_rows"]

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
