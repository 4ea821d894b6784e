"""The stop signals of a scan: what the stopping rules read, computed from what the sampler has seen.

`StopSignals` keeps the running records (prediction errors at newly measured points, the change of
the image per point, random probes) and turns them into the signal values `StopCriteria.check`
reads. The functions below are the estimators it uses.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
from scipy.ndimage import uniform_filter

__all__ = ["StopSignals", "ScanSignals", "estimate_ssim", "estimate_ssim_at_probes", "error_decay", "local_variance",
           "combine_channel_signals", "CHANNEL_SIGNALS", "PROBE_WINDOW", "MIN_PROBES", "DECAY_BATCHES"]

#: How many of the newest random probes ``ssim_estimate`` averages over, and how many it waits for.
PROBE_WINDOW = 160
MIN_PROBES = 40
#: How many of the newest batches the decay of the prediction error (`error_decay`) is fitted on.
DECAY_BATCHES = 30
_C2 = 0.03**2  # SSIM's contrast constant on data range 1
#: The signals a scan of several channels has per channel (``{name}_{c}``) and combined (``{name}``).
CHANNEL_SIGNALS = ("erd_total", "erd_ratio", "prediction_error", "recon_change", "ssim_estimate")


def combine_channel_signals(per_channel: list[dict], weights) -> dict:
    """One signals dict from those of each channel of a scan (`StopSignals.values` of each).

    The scan's own signals (``n_measured``, ``fraction``, ``wall_time``, ``beam_time``...) are the
    first channel's; each of `CHANNEL_SIGNALS` is kept per channel as ``{name}_{c}`` and, once every
    channel has it, combined as ``{name}``: the mean weighted by ``weights`` (which sum to 1). Each
    channel's values are in units of its own intensity scale, so no channel counts more for being brighter.
    """
    out = {k: v for k, v in per_channel[0].items() if k not in CHANNEL_SIGNALS}
    for name in CHANNEL_SIGNALS:
        values = [s.get(name) for s in per_channel]
        for c, v in enumerate(values):
            if v is not None:
                out[f"{name}_{c}"] = v
        if all(v is not None for v in values):
            out[name] = float(np.dot(weights, values))
    return out


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


class StopSignals:
    """Running records of one scan and the stop signals computed from them.

    Parameters
    ----------
    error_window : int
        How many of the newest points the running signals (prediction error, reconstruction
        change, the SSIM estimate without probes) average over.
    probes : bool
        Whether the scan measures random probes; ``ssim_estimate`` is then read off them
        (`estimate_ssim_at_probes`), else off the sampler's own picks (`estimate_ssim`).
    ssim_pixels : int
        Pixels `estimate_ssim` looks at, at most (larger grids are strided).

    Attributes
    ----------
    erd_reference : float or None
        The predicted total ERD right after the initial pattern: ``erd_ratio`` is relative to it.
    beam_time : float or None
        Beam time last reported (s).
    """

    def __init__(self, error_window: int, *, probes: bool = False, ssim_pixels: int = 256 * 256):
        self.error_window = int(error_window)
        self.probes = bool(probes)
        self.ssim_pixels = int(ssim_pixels)
        self.erd_reference: float | None = None
        self.beam_time: float | None = None
        self._started: float | None = None
        self._errors: deque = deque(maxlen=self.error_window)  # |predicted - measured| / scale
        self._errors2: deque = deque(maxlen=self.error_window)  # (predicted - measured)^2
        self._pick_erd: deque = deque(maxlen=self.error_window)  # ERD of each point when it was picked
        self._changes: deque = deque(maxlen=self.error_window)  # image change per point, / scale
        self._probe_errors2: deque = deque(maxlen=PROBE_WINDOW)
        self._probe_var: deque = deque(maxlen=PROBE_WINDOW)  # reconstruction's local variance there
        self._probe_n: deque = deque(maxlen=PROBE_WINDOW)  # points measured before the probe was told
        self._batch_errors2: deque = deque(maxlen=DECAY_BATCHES)  # (points measured before, mean error2)

    def start_clock(self) -> None:
        """Start the wall clock (at the sampler's first decision), unless it runs already."""
        if self._started is None:
            self._started = time.perf_counter()

    def record_errors(self, predicted: np.ndarray, values: np.ndarray, pick_erd: np.ndarray, *, scale: float,
                      n_before: int, probe_var: np.ndarray | None = None, probed: np.ndarray | None = None) -> float:
        """Record the prediction errors of a batch, measured just before it is told; return their sum / scale.

        ``probe_var`` is the reconstruction's local variance at the points ``probed`` (a mask).
        """
        surprise = np.abs(predicted - values) / scale
        self._errors.extend(surprise.tolist())
        self._errors2.extend(((predicted - values) ** 2).tolist())
        self._pick_erd.extend(pick_erd.astype(np.float64).tolist())
        self._batch_errors2.append((n_before, float(np.mean((predicted - values) ** 2))))
        if probed is not None and probed.any():
            self._probe_errors2.extend(((predicted[probed] - values[probed]) ** 2).tolist())
            self._probe_var.extend(probe_var.tolist())
            self._probe_n.extend([n_before] * int(probed.sum()))
        return float(surprise.sum())

    def record_change(self, change: float, n_points: int) -> None:
        """Record how much the whole image moved (sum of ``|change|`` / scale) for ``n_points`` new points."""
        self._changes.extend([change / n_points] * n_points)

    def set_reference(self, erd_total: float) -> None:
        """The total ERD after the initial pattern (kept from the first call on; 0 is no reference)."""
        if self.erd_reference is None:
            self.erd_reference = float(erd_total) or None

    def values(self, maps, n_pixels: int) -> dict:
        """The signals now, from the records and the sampler's maps (`steering.maps.SamplingMaps`).

        ``n_measured``, ``n_pixels``, ``fraction``; once defined: ``wall_time`` (s since the first
        decision), ``beam_time`` (as last told), ``erd_total`` and ``erd_ratio`` (to `erd_reference`),
        ``prediction_error`` and ``recon_change`` (running means over the newest ``error_window``
        points, in units of the intensity scale), ``ssim_estimate``.
        """
        s = {"n_measured": maps.n_measured, "n_pixels": n_pixels, "fraction": maps.n_measured / n_pixels}
        if self._started is not None:
            s["wall_time"] = time.perf_counter() - self._started
        if self.beam_time is not None:
            s["beam_time"] = self.beam_time
        if maps.ready and self.erd_reference:
            s["erd_total"] = float(maps.erd.sum(dtype=np.float64))
            s["erd_ratio"] = s["erd_total"] / self.erd_reference
        if len(self._errors) == self.error_window:
            s["prediction_error"] = float(np.mean(self._errors))
        if len(self._changes) == self.error_window:
            s["recon_change"] = float(np.mean(self._changes))
        if len(self._probe_errors2) >= MIN_PROBES if self.probes else len(self._errors2) == self.error_window:
            value_range = maps.value_range  # of the measured values
            if self.probes:
                n_before, batch_errors2 = np.asarray(self._batch_errors2).T
                s["ssim_estimate"] = estimate_ssim_at_probes(
                    self._probe_errors2, self._probe_var, self._probe_n, n_now=maps.n_measured,
                    fraction=s["fraction"], value_range=value_range, decay=error_decay(n_before, batch_errors2))
            else:
                s["ssim_estimate"] = estimate_ssim(
                    maps.recon, maps.measured, maps.erd, error2=float(np.mean(self._errors2)),
                    pick_erd=float(np.mean(self._pick_erd)), value_range=value_range, max_pixels=self.ssim_pixels)
        return s


class ScanSignals:
    """The stop signals of a scan of one or more channels: a `StopSignals` per channel, combined.

    Parameters
    ----------
    error_window : int
    probes : bool
        See `StopSignals`.
    weights : (C,) array
        The channels' weights (summing to 1); one entry for a scan of one channel.

    Attributes
    ----------
    per_channel : list of StopSignals
        The first also keeps the scan's clock and the beam time last reported.
    """

    def __init__(self, error_window: int, *, probes: bool = False, weights=(1.0,)):
        self.weights = np.asarray(weights, dtype=np.float64)
        # the SSIM estimates of all channels together look at as many pixels as one channel's would
        self.per_channel = [StopSignals(error_window, probes=probes, ssim_pixels=256 * 256 // len(self.weights))
                            for _ in self.weights]

    @property
    def beam_time(self) -> float | None:
        """Beam time last reported (s)."""
        return self.per_channel[0].beam_time

    @beam_time.setter
    def beam_time(self, seconds: float) -> None:
        self.per_channel[0].beam_time = float(seconds)

    def start_clock(self) -> None:
        """Start the wall clock (see `StopSignals.start_clock`)."""
        self.per_channel[0].start_clock()

    def record_batch(self, maps, points: np.ndarray, values: np.ndarray, probed: np.ndarray,
                     n_before: int) -> np.ndarray:
        """Record each channel's prediction errors at newly measured ``points`` (flat indices) before the
        maps are told them; ``values`` is (k, C), NaN where a channel was not measured (not judged).
        Returns each channel's surprise (see `StopSignals.record_errors`)."""
        surprises = np.zeros(len(self.weights))
        W = maps.shape[1]
        for c, signals in enumerate(self.per_channel):
            view = maps.channel(c)
            known = np.isfinite(values[:, c])
            at, probes = points[known], probed[known]
            if not len(at):
                continue
            rows, cols = np.divmod(at[probes], W)
            surprises[c] = signals.record_errors(
                view.recon.ravel()[at], values[known, c], view.erd.ravel()[at], scale=view.scale,
                n_before=n_before, probe_var=local_variance(view.recon, rows, cols), probed=probes)
        return surprises

    def record_change(self, surprises: np.ndarray, change, n_points: int) -> None:
        """Record each channel's surprise plus the change of its image (`SamplingMaps.add`) for ``n_points`` points."""
        change = np.atleast_1d(change)
        for c, signals in enumerate(self.per_channel):
            signals.record_change(surprises[c] + change[c], n_points)

    def set_reference(self, maps) -> None:
        """Each channel's total ERD after the initial pattern (see `StopSignals.set_reference`)."""
        for c, signals in enumerate(self.per_channel):
            signals.set_reference(float(maps.channel_erd[c].sum(dtype=np.float64)))

    def values(self, maps, n_pixels: int) -> dict:
        """The signals now: one channel's (`StopSignals.values`), or every channel's combined
        (`combine_channel_signals`)."""
        if len(self.per_channel) == 1:
            return self.per_channel[0].values(maps, n_pixels)
        return combine_channel_signals([signals.values(maps.channel(c), n_pixels)
                                        for c, signals in enumerate(self.per_channel)], self.weights)
