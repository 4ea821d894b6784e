"""Stopping criteria: when is a smart scan good enough?"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields

__all__ = ["StopCriteria"]


@dataclass(frozen=True)
class StopCriteria:
    """Rules that end a scan; the first one that fires stops it.

    Parameters
    ----------
    max_fraction : float or None
        Stop once this fraction of the grid, in (0, 1], is measured. Default 0.25 (FAST reached
        raster quality below 25%); ``None`` disables the cap (the scan then ends at full coverage
        unless another rule fires).
    max_points : int or None
        Stop once this many points are measured.
    erd_ratio : float or None
        Stop when the predicted total ERD of the unmeasured pixels falls to this fraction of its
        value right after the initial pattern (e.g. 0.05).
    prediction_error : float or None
        Stop when the running mean of ``|predicted - measured|`` at the newest points, in units of
        the intensity scale (the spread of the initial measurements), falls to this value.
    error_window : int
        How many of the newest points the running prediction error averages over.
    min_fraction : float
        The data-driven rules (``erd_ratio``, ``prediction_error``) never fire below this fraction.
    """

    max_fraction: float | None = 0.25
    max_points: int | None = None
    erd_ratio: float | None = None
    prediction_error: float | None = None
    error_window: int = 200
    min_fraction: float = 0.02

    def __post_init__(self):
        if self.max_fraction is not None and not (0.0 < float(self.max_fraction) <= 1.0):
            raise ValueError(f"max_fraction must be in (0, 1], got {self.max_fraction}")
        if self.max_points is not None and (int(self.max_points) != self.max_points or self.max_points < 1):
            raise ValueError(f"max_points must be an integer >= 1, got {self.max_points}")
        if self.erd_ratio is not None and not (0.0 < float(self.erd_ratio) < 1.0):
            raise ValueError(f"erd_ratio must be in (0, 1), got {self.erd_ratio}")
        if self.prediction_error is not None and not float(self.prediction_error) > 0.0:
            raise ValueError(f"prediction_error must be > 0, got {self.prediction_error}")
        if int(self.error_window) != self.error_window or self.error_window < 1:
            raise ValueError(f"error_window must be an integer >= 1, got {self.error_window}")
        if not (0.0 <= float(self.min_fraction) <= 1.0):
            raise ValueError(f"min_fraction must be in [0, 1], got {self.min_fraction}")

    def point_budget(self, n_pixels: int) -> int:
        """Largest number of measured points the caps allow on a grid of ``n_pixels``."""
        cap = n_pixels
        if self.max_fraction is not None:
            cap = min(cap, max(1, int(round(self.max_fraction * n_pixels))))
        if self.max_points is not None:
            cap = min(cap, int(self.max_points))
        return cap

    def check(self, signals: dict) -> str | None:
        """Return a short reason if a rule fires for these signals, else None.

        ``signals`` holds ``n_measured``, ``n_pixels``, ``fraction`` and, where known,
        ``erd_ratio`` and ``prediction_error``.
        """
        n, total, frac = signals["n_measured"], signals["n_pixels"], signals["fraction"]
        if n >= total:
            return f"all {total} pixels measured"
        if self.max_points is not None and n >= self.max_points:
            return f"max_points reached: {n} points measured (limit {self.max_points})"
        if self.max_fraction is not None and n >= self.point_budget(total):
            return f"max_fraction reached: {frac:.4f} of the grid measured (limit {self.max_fraction})"
        if frac < self.min_fraction:
            return None
        ratio = signals.get("erd_ratio")
        if self.erd_ratio is not None and ratio is not None and ratio <= self.erd_ratio:
            return f"erd_ratio fell to {ratio:.4g} (threshold {self.erd_ratio}) at fraction {frac:.4f}"
        err = signals.get("prediction_error")
        if self.prediction_error is not None and err is not None and err <= self.prediction_error:
            return f"prediction_error fell to {err:.4g} (threshold {self.prediction_error}) at fraction {frac:.4f}"
        return None

    def to_dict(self) -> dict:
        """Plain-dict form (JSON-friendly)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> StopCriteria:
        """Build from a dict; unknown keys raise ValueError naming them."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown StopCriteria fields: {sorted(unknown)} (known: {sorted(known)})")
        return cls(**d)

    def to_json(self) -> str:
        """JSON text of `to_dict`."""
        return json.dumps(self.to_dict(), indent=2)
