"""Stopping criteria: when is a smart scan good enough?"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

__all__ = ["StopCriteria", "DATA_RULES", "RISING_RULES", "LIMITS", "estimate_ssim", "estimate_ssim_at_probes",
           "error_decay", "local_variance"]

#: Rules that watch a signal of the scan and fire when it reaches their threshold.
DATA_RULES = ("erd_ratio", "prediction_error", "recon_change", "ssim_estimate")
#: Data rules whose signal rises as the image improves (the others fall).
RISING_RULES = frozenset({"ssim_estimate"})
#: Hard limits: each ends the scan on its own, whatever ``combine`` says.
LIMITS = ("max_fraction", "max_points", "max_wall_time", "max_beam_time")
_C2 = 0.03**2  # SSIM's contrast constant on data range 1


def _reached(rule: str, value: float, threshold: float) -> bool:
    return value >= threshold if rule in RISING_RULES else value <= threshold


def estimate_ssim(reconstruction: np.ndarray, measured: np.ndarray, erd: np.ndarray, *, error2: float,
                  pick_erd: float, value_range: float, window: int = 7, max_pixels: int = 256 * 256) -> float:
    """The SSIM a reconstruction is estimated to have against the full scan, without the full scan.

    Measured pixels are exact; at an unmeasured pixel the squared error is taken as the running mean
    squared prediction error ``error2`` (measured at the newest points just before they were told)
    scaled by the pixel's ERD relative to the mean ERD the newest points had when picked
    (``pick_erd``): the ERD is an expected reduction of squared error, which measuring a pixel
    removes first of all at the pixel itself, and the sampler picks where it is largest, so the raw
    running error overstates the error elsewhere. Per window (as SSIM computes it, on the image
    scaled to ``value_range`` = 1), with the full scan = reconstruction + error, the structure term
    is ``(2 var + C2) / (2 var + mse + C2)``; the estimate is its mean. Grids above ``max_pixels``
    are strided first, to keep this cheap. With random probes, `estimate_ssim_at_probes` does better.
    """
    if not (value_range > 0 and error2 >= 0 and pick_erd > 0):
        return float("nan")
    stride = max(1, int(math.ceil(math.sqrt(reconstruction.size / max_pixels))))
    recon = reconstruction[::stride, ::stride] / value_range
    unmeasured = ~measured[::stride, ::stride]
    mse_map = np.where(unmeasured, erd[::stride, ::stride].astype(np.float64), 0.0)
    mse_map *= error2 / (pick_erd * value_range**2)
    mean = uniform_filter(recon, window)
    var = np.clip(uniform_filter(recon * recon, window) - mean * mean, 0.0, None)
    mse = uniform_filter(mse_map, window)
    return float(np.mean((2 * var + _C2) / (2 * var + mse + _C2)))


def estimate_ssim_at_probes(error2, local_var, n_at, *, n_now: int, fraction: float, value_range: float,
                            decay: float = 0.0) -> float:
    """The SSIM estimated from prediction errors at uniformly random probes (``probe_fraction``).

    Each probe stands for its own SSIM window: its squared prediction error ``error2`` (measured
    just before it was told) as the window's mean squared error, less the share ``fraction`` of
    the window already measured, and ``local_var``, the variance of the reconstruction in the
    7x7 window around it at that time. The estimate is the mean over probes of the structure term
    ``(2 var + C2) / (2 var + mse + C2)`` on the image scaled to ``value_range`` = 1. Keeping the
    error where it was found, rather than spreading a fitted error over the image, matters: the
    error of an interpolation sits at a few edges, where the variance is high and it costs SSIM
    little, and spreading it out would put it into flat windows where it costs most.

    Errors shrink as points are added, so a probe measured at ``n_at`` points counts with its
    squared error scaled by ``(n_now / n_at) ** -decay`` (`error_decay`).

    Parameters
    ----------
    error2, local_var, n_at : 1-D arrays, one entry per probe
    n_now : int
        Points measured now.
    fraction : float
        Fraction of the grid measured now.
    value_range : float
        Spread of the measured values (the image's scale).
    decay : float
        Exponent of the power law the squared errors fall by.
    """
    error2 = np.asarray(error2, dtype=np.float64)
    local_var = np.asarray(local_var, dtype=np.float64)
    n_at = np.asarray(n_at, dtype=np.float64)
    if len(error2) == 0 or not value_range > 0 or not (len(local_var) == len(n_at) == len(error2)):
        return float("nan")
    mse = (1.0 - fraction) * error2 * (n_now / np.maximum(n_at, 1.0)) ** (-decay) / value_range**2
    var2 = 2.0 * local_var / value_range**2
    return float(np.mean((var2 + _C2) / (var2 + mse + _C2)))


def error_decay(n_measured, mean_error2, *, max_decay: float = 3.0) -> float:
    """Exponent ``g`` of ``mean_error2 ~ n_measured ** -g``, fitted in log-log over recent batches.

    ``n_measured`` and ``mean_error2`` hold, per batch, the points measured before it and the mean
    squared prediction error of its points. Returns 0 with fewer than 5 usable batches; the fit is
    clipped to ``[0, max_decay]``: the error of a scan that is filling in never grows.
    """
    n = np.asarray(n_measured, dtype=np.float64)
    e2 = np.asarray(mean_error2, dtype=np.float64)
    ok = (n > 0) & np.isfinite(e2) & (e2 > 0)
    if ok.sum() < 5 or np.ptp(np.log(n[ok])) == 0:
        return 0.0
    slope = np.polyfit(np.log(n[ok]), np.log(e2[ok]), 1)[0]
    return float(np.clip(-slope, 0.0, max_decay))


def local_variance(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, window: int = 7) -> np.ndarray:
    """Variance of ``image`` in the ``window`` x ``window`` square around each (row, col), cut at the edges."""
    half = window // 2
    out = np.empty(len(rows))
    for i, (r, c) in enumerate(zip(rows, cols, strict=True)):
        patch = image[max(r - half, 0): r + half + 1, max(c - half, 0): c + half + 1]
        out[i] = patch.var()
    return out


@dataclass(frozen=True)
class StopCriteria:
    """Rules that end a scan.

    Hard limits (``max_fraction``, ``max_points``, ``max_wall_time``, ``max_beam_time``, and full
    coverage) end the scan as soon as one is reached. The data-driven rules (``erd_ratio``,
    ``prediction_error``, ``recon_change`` fall as the image improves, ``ssim_estimate`` rises) each
    fire when their signal reaches their threshold;
    with ``combine="any"`` one of them suffices, with ``"all"`` every rule set must hold at the same
    batch. None fires below ``min_fraction``. ``python -m steering.tune`` finds thresholds for a
    target quality on past scans.

    Parameters
    ----------
    max_fraction : float or None
        Stop once this fraction of the grid, in (0, 1], is measured. Default 0.25 (FAST reached
        raster quality below 25%); ``None`` disables the cap (the scan then ends at full coverage
        unless another rule fires).
    max_points : int or None
        Stop once this many points are measured.
    max_wall_time : float or None
        Stop once this many seconds have passed since the sampler's first `ask` (wall clock, pauses
        included).
    max_beam_time : float or None
        Stop once the beam time reported to `Sampler.tell` (seconds spent moving and measuring;
        `smart_scan` reports it) reaches this.
    erd_ratio : float or None
        Stop when the predicted total ERD of the unmeasured pixels falls to this fraction of its
        value right after the initial pattern (e.g. 0.05).
    prediction_error : float or None
        Stop when the running mean of ``|predicted - measured|`` at the newest points, in units of
        the intensity scale (the spread of the initial measurements), falls to this value.
    recon_change : float or None
        Stop when the reconstruction has settled: the mean change of the whole image per newly
        measured point (sum of ``|change|`` over all pixels, in units of the intensity scale, per
        point; averaged over the newest ``error_window`` points) falls to this value.
    ssim_estimate : float or None
        Stop when the SSIM the reconstruction is estimated to have against the full scan rises to
        this value (see `estimate_ssim`; no ground truth needed).
    combine : {"any", "all"}
        Whether one data-driven rule suffices or all of those set must hold together.
    error_window : int
        How many of the newest points the running signals (prediction error, reconstruction
        change) average over.
    min_fraction : float
        The data-driven rules never fire below this fraction.
    probe_fraction : float
        Share of each batch, in [0, 0.5], measured at uniformly random unmeasured pixels instead of
        where the ERD is largest. ``ssim_estimate`` is then read off their prediction errors
        (`estimate_ssim_at_probes`): the reconstruction's error where the sampler has not looked,
        each in its own window. It comes close to the real SSIM (tuned for SSIM 0.90 on the shared
        images, its threshold came out at 0.912), at the cost of those points' information (about
        0.2 dB of PSNR at 0.1). Default 0: no probes.
    """

    max_fraction: float | None = 0.25
    max_points: int | None = None
    max_wall_time: float | None = None
    max_beam_time: float | None = None
    erd_ratio: float | None = None
    prediction_error: float | None = None
    recon_change: float | None = None
    ssim_estimate: float | None = None
    combine: str = "any"
    error_window: int = 200
    min_fraction: float = 0.02
    probe_fraction: float = 0.0

    def __post_init__(self):
        if self.max_fraction is not None and not (0.0 < float(self.max_fraction) <= 1.0):
            raise ValueError(f"max_fraction must be in (0, 1], got {self.max_fraction}")
        if self.max_points is not None and (int(self.max_points) != self.max_points or self.max_points < 1):
            raise ValueError(f"max_points must be an integer >= 1, got {self.max_points}")
        if self.erd_ratio is not None and not (0.0 < float(self.erd_ratio) < 1.0):
            raise ValueError(f"erd_ratio must be in (0, 1), got {self.erd_ratio}")
        for rule in ("prediction_error", "recon_change", "max_wall_time", "max_beam_time"):
            value = getattr(self, rule)
            if value is not None and not (float(value) > 0.0 and math.isfinite(float(value))):
                raise ValueError(f"{rule} must be a finite number > 0, got {value}")
        if self.ssim_estimate is not None and not (0.0 < float(self.ssim_estimate) < 1.0):
            raise ValueError(f"ssim_estimate must be in (0, 1), got {self.ssim_estimate}")
        if self.combine not in ("any", "all"):
            raise ValueError(f"combine must be 'any' or 'all', got {self.combine!r}")
        if int(self.error_window) != self.error_window or self.error_window < 1:
            raise ValueError(f"error_window must be an integer >= 1, got {self.error_window}")
        if not (0.0 <= float(self.probe_fraction) <= 0.5):
            raise ValueError(f"probe_fraction must be in [0, 0.5], got {self.probe_fraction}")
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

    @property
    def rules(self) -> dict[str, float]:
        """The data-driven rules that are set, with their thresholds."""
        return {rule: float(getattr(self, rule)) for rule in DATA_RULES if getattr(self, rule) is not None}

    def check(self, signals: dict) -> str | None:
        """Return a short reason if the criteria end the scan at these signals, else None.

        ``signals`` holds ``n_measured``, ``n_pixels``, ``fraction`` and, where known, ``wall_time``,
        ``beam_time``, ``erd_ratio``, ``prediction_error`` and ``recon_change``.
        """
        n, total, frac = signals["n_measured"], signals["n_pixels"], signals["fraction"]
        if n >= total:
            return f"all {total} pixels measured"
        if self.max_points is not None and n >= self.max_points:
            return f"max_points reached: {n} points measured (limit {self.max_points})"
        if self.max_fraction is not None and n >= self.point_budget(total):
            return f"max_fraction reached: {frac:.4f} of the grid measured (limit {self.max_fraction})"
        for limit, signal in (("max_wall_time", "wall_time"), ("max_beam_time", "beam_time")):
            value, cap = signals.get(signal), getattr(self, limit)
            if cap is not None and value is not None and value >= cap:
                return f"{limit} reached: {value:.1f} s (limit {cap} s) at fraction {frac:.4f}"
        if frac < self.min_fraction or not self.rules:
            return None
        met = {}
        for rule, threshold in self.rules.items():
            value = signals.get(rule)
            if value is not None and math.isfinite(value) and _reached(rule, value, threshold):
                met[rule] = (value, threshold)
        if not met or (self.combine == "all" and len(met) < len(self.rules)):
            return None
        said = " and ".join(f"{rule} {'rose' if rule in RISING_RULES else 'fell'} to {v:.4g} (threshold {t:g})"
                            for rule, (v, t) in met.items())
        return f"{said} at fraction {frac:.4f}"

    def status(self, signals: dict) -> dict[str, dict]:
        """Every rule and limit that is set: its current value, its threshold and whether it is met."""
        out = {}
        sources = {"max_fraction": "fraction", "max_points": "n_measured", "max_wall_time": "wall_time",
                   "max_beam_time": "beam_time", **{rule: rule for rule in DATA_RULES}}
        for name, source in sources.items():
            threshold = getattr(self, name)
            if threshold is None:
                continue
            value = signals.get(source)
            known = value is not None and math.isfinite(value)
            met = known and (_reached(name, value, threshold) if name in DATA_RULES else value >= threshold)
            out[name] = {"value": value if known else None, "threshold": threshold, "met": bool(met)}
        return out

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

    @classmethod
    def from_json(cls, source: str | Path) -> StopCriteria:
        """Build from a JSON file (path) or JSON text; errors name the file and what was wrong."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            path = Path(source)
            try:
                text = path.read_text()
            except OSError as exc:
                raise ValueError(f"cannot read stop criteria file {str(path)!r}: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"stop criteria {str(source)[:80]!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"stop criteria must be a JSON object, got {type(data).__name__}")
        return cls.from_dict(data)
