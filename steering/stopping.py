"""Stopping criteria: when is a smart scan good enough?"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from .checks import number_in, real_number, whole_number

__all__ = ["StopCriteria", "DATA_RULES", "RISING_RULES", "LIMITS", "CHANNEL_MODES", "channel_values"]

#: Rules that watch a signal of the scan and fire when it reaches their threshold.
DATA_RULES = ("erd_ratio", "prediction_error", "recon_change", "ssim_estimate")
#: Data rules whose signal rises as the image improves (the others fall).
RISING_RULES = frozenset({"ssim_estimate"})
#: Hard limits: each ends the scan on its own, whatever ``combine`` says.
LIMITS = ("max_fraction", "max_points", "max_wall_time", "max_beam_time")
#: What a data rule reads in a scan of several channels: their weighted whole, or every channel.
CHANNEL_MODES = ("combined", "every")


def _reached(rule: str, value: float, threshold: float) -> bool:
    return value >= threshold if rule in RISING_RULES else value <= threshold


def channel_values(signals: dict, rule: str) -> list[float]:
    """The per-channel values of a data rule's signal (``{rule}_0``, ``{rule}_1``, ...) in ``signals``.

    Empty for the signals of a scan of one channel.
    """
    out, c = [], 0
    while f"{rule}_{c}" in signals:
        out.append(signals[f"{rule}_{c}"])
        c += 1
    return out


@dataclass(frozen=True)
class StopCriteria:
    """Rules that end a scan.

    Hard limits (``max_fraction``, ``max_points``, ``max_wall_time``, ``max_beam_time``, and full
    coverage) end the scan as soon as one is reached. The data-driven rules (``erd_ratio``,
    ``prediction_error``, ``recon_change`` fall as the image improves, ``ssim_estimate`` rises) each
    fire when their signal reaches their threshold;
    with ``combine="any"`` one of them suffices, with ``"all"`` every rule set must hold at the same
    batch. None fires below ``min_fraction``. The criteria only say *when* a scan ends, never *where*
    it measures (random probes for an unbiased SSIM estimate are a `Sampler` setting,
    ``probe_fraction``). ``smart-scan-tune`` finds thresholds for a target quality on past scans.

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
        this value (no ground truth needed; see `steering.signals.estimate_ssim`, and
        `steering.signals.estimate_ssim_at_probes` for a sampler with ``probe_fraction`` > 0).
    combine : {"any", "all"}
        Whether one data-driven rule suffices or all of those set must hold together.
    error_window : int
        How many of the newest points the running signals (prediction error, reconstruction
        change) average over.
    min_fraction : float
        The data-driven rules never fire below this fraction.
    channels : {"combined", "every"}
        In a scan of several channels (`Sampler` ``channels`` > 1): whether a data rule reads the
        channels' signals combined by the channel weights, or must hold for every channel (it then
        reads the worst channel's). No effect on a scan of one channel.
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
    channels: str = "combined"

    def __post_init__(self):
        if self.max_fraction is not None:
            number_in("max_fraction", self.max_fraction, 0.0, 1.0, closed="high")
        if self.max_points is not None:
            whole_number("max_points", self.max_points, 1)
        for rule in ("erd_ratio", "ssim_estimate"):
            if getattr(self, rule) is not None:
                number_in(rule, getattr(self, rule), 0.0, 1.0, closed="neither")
        for rule in ("prediction_error", "recon_change", "max_wall_time", "max_beam_time"):
            value = getattr(self, rule)
            if value is None:
                continue
            number = real_number(rule, value, finite=False)
            if not (number > 0.0 and math.isfinite(number)):
                raise ValueError(f"{rule} must be a finite number > 0, got {value}")
        if not isinstance(self.combine, str) or self.combine not in ("any", "all"):
            raise ValueError(f"combine must be 'any' or 'all', got {self.combine!r}")
        whole_number("error_window", self.error_window, 1)
        number_in("min_fraction", self.min_fraction, 0.0, 1.0)
        if not isinstance(self.channels, str) or self.channels not in CHANNEL_MODES:
            raise ValueError(f"channels must be one of {CHANNEL_MODES}, got {self.channels!r}")

    def __repr__(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if getattr(self, f.name) != f.default]
        return f"StopCriteria({', '.join(changed)})"

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
            value = self.signal(signals, rule)
            if value is not None and math.isfinite(value) and _reached(rule, value, threshold):
                met[rule] = (value, threshold)
        if not met or (self.combine == "all" and len(met) < len(self.rules)):
            return None
        said = " and ".join(f"{rule} {'rose' if rule in RISING_RULES else 'fell'} to {v:.4g} (threshold {t:g})"
                            for rule, (v, t) in met.items())
        if self.channels == "every" and any(channel_values(signals, rule) for rule in met):
            said += " in every channel"
        return f"{said} at fraction {frac:.4f}"

    def signal(self, signals: dict, rule: str) -> float | None:
        """The value a data rule reads: the signal, or with ``channels="every"`` and per-channel
        signals present, the worst channel's (the lowest of a rising signal, the highest of a falling one)."""
        per_channel = channel_values(signals, rule) if self.channels == "every" else []
        if not per_channel:
            return signals.get(rule)
        if any(v is None or not math.isfinite(v) for v in per_channel):
            return None
        return min(per_channel) if rule in RISING_RULES else max(per_channel)

    def status(self, signals: dict) -> dict[str, dict]:
        """Every rule and limit that is set: its current value, its threshold and whether it is met."""
        out = {}
        sources = {"max_fraction": "fraction", "max_points": "n_measured", "max_wall_time": "wall_time",
                   "max_beam_time": "beam_time", **{rule: rule for rule in DATA_RULES}}
        for name, source in sources.items():
            threshold = getattr(self, name)
            if threshold is None:
                continue
            value = self.signal(signals, source) if name in DATA_RULES else signals.get(source)
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
        if "probe_fraction" in d:
            raise ValueError("probe_fraction is a Sampler setting now, not a stop criterion (it changes where a scan "
                             "measures): pass it beside stop, e.g. sampler={'probe_fraction': 0.1, 'stop': {...}}")
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
        where = f"stop criteria {text[:80]!r}"
        if not text.lstrip().startswith("{"):
            path = Path(source)
            where = f"stop criteria file {str(path)!r}"
            try:
                text = path.read_text()
            except OSError as exc:
                raise ValueError(f"cannot read {where}: {exc}") from None
            except UnicodeDecodeError:
                raise ValueError(f"{where} is not a text file (JSON of StopCriteria fields expected)") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{where} must hold a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
