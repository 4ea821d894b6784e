"""The sampling state of one scan: ask where to measure next, tell what was measured.

`Sampler` decides which pixels to ask for (the initial pattern, then the highest predicted ERD,
spread and routed, plus random probes if asked for) and keeps track of what is pending, measured,
failed or excluded. What is known of the image lives in `steering.maps.SamplingMaps`; the stop
signals in `steering.signals.StopSignals`; when they end the scan, `StopCriteria` says.
"""

from __future__ import annotations

import inspect
import time

import numpy as np

from .checks import file_path, number_in, real_number, whole_number
from .erd import ERDNet, load_model
from .fly import FlyPlanner, fly_budget
from .maps import SamplingMaps
from .patterns import PATTERNS, initial_pattern
from .routing import order_route
from .selection import select_by_erd
from .signals import ScanSignals
from .stopping import StopCriteria
from .timing import StageTiming

__all__ = ["Sampler", "as_points"]


def as_points(points, shape: tuple[int, int], what: str = "points") -> np.ndarray:
    """Validate (k, 2) integer pixel coordinates inside a grid of ``shape``; return them as int64."""
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"{what} must have shape (k, 2) as (row, col), got shape {p.shape}")
    if p.size and not np.issubdtype(p.dtype, np.integer):
        if not np.issubdtype(p.dtype, np.number) or not np.all(np.isfinite(p)):
            raise ValueError(f"{what} must be finite integer pixel indices")
        if not np.all(p == np.round(p)):
            raise ValueError(f"{what} must be integer pixel indices, got non-integer values")
    p = p.astype(np.int64)
    H, W = shape
    bad = (p[:, 0] < 0) | (p[:, 0] >= H) | (p[:, 1] < 0) | (p[:, 1] >= W)
    if bad.any():
        raise ValueError(f"{what} outside the {H}x{W} grid: {p[bad][:5].tolist()} (rows 0..{H - 1}, cols 0..{W - 1})")
    return p


def _check_settings(shape, model, initial_fraction, initial_pattern, batch_size, stop, seed, suppression,
                    distance_discount, probe_fraction) -> tuple[int, int]:
    """Refuse bad `Sampler` settings with an error naming the setting; return the grid shape."""
    try:
        H, W = (int(s) for s in shape)
        if (H, W) != tuple(shape) or any(isinstance(s, (bool, str)) for s in shape):
            raise TypeError
    except (TypeError, ValueError):
        raise ValueError(f"shape must be two integers (H, W), got {shape!r}") from None
    if H < 1 or W < 1:
        raise ValueError(f"shape must be at least 1x1, got {H}x{W}")
    if model is not None and not isinstance(model, ERDNet):
        file_path("model (an ERDNet, a model file's path or None)", model)
    number_in("initial_fraction", initial_fraction, 0.0, 1.0, closed="high")
    if initial_pattern not in PATTERNS:
        raise ValueError(f"initial_pattern must be one of {PATTERNS}, got {initial_pattern!r}")
    if batch_size is not None:
        whole_number("batch_size", batch_size, 1)
    if stop is not None and not isinstance(stop, StopCriteria):
        raise ValueError(f"stop must be a StopCriteria, got {type(stop).__name__}")
    if seed is not None:
        whole_number("seed", seed, 0)
    if not real_number("suppression", suppression, finite=False) >= 0:
        raise ValueError(f"suppression must be >= 0, got {suppression}")
    real_number("distance_discount", distance_discount)
    number_in("probe_fraction", probe_fraction, 0.0, 0.5)
    return H, W


def _check_channels(channels, channel_weights) -> np.ndarray:
    """Refuse a bad channel count or weights; return the weights normalised to sum 1."""
    whole_number("channels", channels, 1)
    if channel_weights is None:
        return np.full(int(channels), 1.0 / int(channels))
    try:
        w = np.asarray(channel_weights, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"channel_weights must be {channels} numbers, got {channel_weights!r}") from None
    if w.shape != (int(channels),):
        raise ValueError(f"channel_weights must be {channels} numbers (one per channel), got {channel_weights!r}")
    if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"channel_weights must be finite, >= 0 and not all 0, got {channel_weights!r}")
    return w / w.sum()


def _check_mode(timing, scan_mode, probe_fraction) -> tuple[StageTiming | None, str]:
    """Refuse a scan mode the other settings cannot serve; return ``(timing, scan_mode)``."""
    if scan_mode not in ("point", "fly"):
        raise ValueError(f"scan_mode must be 'point' or 'fly', got {scan_mode!r}")
    if timing is not None and not isinstance(timing, StageTiming):
        raise TypeError(f"timing must be a steering.timing.StageTiming, got {type(timing).__name__}")
    if scan_mode == "fly" and timing is None:
        raise ValueError("scan_mode='fly' needs timing=StageTiming(...): segments are chosen per second of beam time")
    if scan_mode == "fly" and probe_fraction > 0:
        raise ValueError("probe_fraction > 0 is for scan_mode='point': a fly scan flies segments, not random points")
    return timing, scan_mode


def _checked_ask(n, start) -> np.ndarray | None:
    """Refuse a bad `Sampler.ask` ``n`` or ``start``; return ``start`` as a float array (or None)."""
    if n is not None and (int(n) != n or n < 1):
        raise ValueError(f"n must be an integer >= 1, got {n}")
    if start is None:
        return None
    start = np.asarray(start, dtype=np.float64)
    if start.shape != (2,) or not np.all(np.isfinite(start)):
        raise ValueError(f"start must be a finite (row, col) pair, got {start!r}")
    return start


def _draw_probes(rng: np.random.Generator, credit: float, share: float, n: int, candidates: np.ndarray):
    """Random probes for a batch of ``n``: whole probes, the fractions carried over in ``credit`` so that
    small batches probe too. Returns ``(flat indices, credit left)``."""
    credit += share * n
    k = min(int(credit), n, int(candidates.sum()))
    if k <= 0:
        return np.zeros(0, np.int64), credit
    return rng.choice(np.flatnonzero(candidates), k, replace=False), credit - k


def _checked_report(points, values, failed, beam_time, probes, measured: np.ndarray, channels: int = 1):
    """What `Sampler.tell` was told, checked: ``(flat indices, values, failed)``; errors say what is wrong.

    With several channels a value may be NaN in some channels of a point (the measurement did not
    give them), not in all of them unless the point is marked failed.
    """
    pts = as_points(points, measured.shape)
    k = len(pts)
    vals = np.asarray(values, dtype=np.float64)
    want = (k,) if channels == 1 else (k, channels)
    if vals.shape != want:
        per = "" if channels == 1 else f": one value per channel ({channels})"
        raise ValueError(f"values must have shape {want} to match points{per}, got {vals.shape}")
    fail = np.zeros(k, bool) if failed is None else np.asarray(failed, dtype=bool)
    if fail.shape != (k,):
        raise ValueError(f"failed must have shape ({k},) to match points, got {fail.shape}")
    if beam_time is not None and not (np.isfinite(beam_time) and beam_time >= 0):
        raise ValueError(f"beam_time must be a finite number >= 0, got {beam_time}")
    bad = ~(np.isfinite(vals) if channels == 1 else np.isfinite(vals).any(axis=1)) & ~fail
    if bad.any():
        what = "values" if channels == 1 else "values in every channel"
        raise ValueError(f"non-finite {what} at points {pts[bad][:5].tolist()}: mark failed measurements "
                         "with failed=...")
    flat = pts[:, 0] * measured.shape[1] + pts[:, 1]
    if len(np.unique(flat)) != k:
        raise ValueError("points contains duplicates")
    again = measured.ravel()[flat]
    if again.any():
        raise ValueError(f"points already measured: {pts[again][:5].tolist()}")
    if probes is not None and np.shape(probes) != (k,):
        raise ValueError(f"probes must have shape ({k},) to match points, got {np.shape(probes)}")
    return flat, vals, fail


class Sampler:
    """Adaptive sampling of an H x W grid driven by a learned ERD (ask/tell).

    Parameters
    ----------
    shape : (H, W)
        Grid shape (rows = slow axis, cols = fast axis).
    model : ERDNet, str, path or None
        The ERD network, or the path of a safetensors model file. None: the pretrained model shipped
        inside the package.
    initial_fraction : float
        Fraction of the grid in the initial pattern, in (0, 1] (at least one point).
    initial_pattern : {"halton", "random"}
        How the initial pattern is drawn.
    batch_size : int or None
        Points per `ask` once the initial pattern is measured. None: 1% of the grid, at most 50.
    stop : StopCriteria or None
        When to stop. None: ``StopCriteria()`` (25% of the grid).
    seed : int or None
        Seed of the initial pattern and the probes; the same seed and the same measurements give
        the same points.
    suppression : float
        Batch spreading: a pick suppresses candidates within this multiple of its distance to the
        nearest measurement.
    distance_discount : float
        Points are ranked by ``erd / distance ** distance_discount``. The default, 0, ranks by the
        ERD alone, which already weighs how much of the image a measurement changes (0.5 lost
        0.3-0.4 dB on our benchmark).
    probe_fraction : float
        Share of each batch, in [0, 0.5], measured at uniformly random unmeasured pixels instead of
        where the ERD is largest. ``ssim_estimate`` is then read off their prediction errors
        (`steering.signals.estimate_ssim_at_probes`), which comes close to the real SSIM where the
        sampler's own picks overstate the error, at the cost of those points' information (about
        0.2 dB of PSNR at 0.1). Default 0: no probes.
    timing : StageTiming or None
        The stage and detector's timing model (`steering.timing`); needed for ``scan_mode="fly"``.
    scan_mode : {"point", "fly"}
        ``"point"``: each asked pixel is a step. ``"fly"``: a raster, then row segments by ERD per
        second of beam time (`steering.fly.FlyPlanner`); `ask` returns the pixels in flying order
        (`steering.timing.flown_runs` cuts them into lines) and the budget is ``stop.max_beam_time``
        (else ``stop.max_fraction`` of a full fly raster's time).
    channels : int
        Values per point (element maps of one fluorescence spectrum, say). With C > 1, `tell` takes
        (k, C) values, each channel has its own reconstruction (`reconstruction` is (C, H, W)),
        intensity scale and ERD, and points are ranked by the channels' ERDs combined by
        ``channel_weights``, each in units of its own channel's spread, so a faint channel counts as
        much as a bright one. The stop signals are kept per channel and combined
        (`StopCriteria` ``channels`` says which a rule reads).
    channel_weights : sequence of float, optional
        Weights of the channels (>= 0, not all 0; normalised to sum 1). Default: equal.

    Attributes
    ----------
    model_ : ERDNet
    stop_ : StopCriteria
    batch_size_ : int
    history_ : list of dict
        One record per `tell` once the maps exist: the stop signals, ``tell_time`` and ``stop_reason``.
    channel_weights_ : (C,) array
        The channels' weights, normalised to sum 1.
    fly_ : FlyPlanner or None
        The fly-mode planner (``planned_``: seconds of the routes asked for so far).
    ask_times_, tell_times_ : list of float
        Seconds each `ask` and each `tell` (once the maps exist) took.
    """

    def __init__(self, shape: tuple[int, int], *, model: ERDNet | str | None = None, initial_fraction: float = 0.01,
                 initial_pattern: str = "halton", batch_size: int | None = None, stop: StopCriteria | None = None,
                 seed: int | None = None, suppression: float = 0.75, distance_discount: float = 0.0,
                 probe_fraction: float = 0.0, timing: StageTiming | None = None, scan_mode: str = "point",
                 channels: int = 1, channel_weights=None):
        H, W = _check_settings(shape, model, initial_fraction, initial_pattern, batch_size, stop, seed, suppression,
                               distance_discount, probe_fraction)
        weights = _check_channels(channels, channel_weights)
        self.shape = (H, W)
        self.model = model
        self.initial_fraction = float(initial_fraction)
        self.initial_pattern = initial_pattern
        self.batch_size = batch_size
        self.stop = stop
        self.seed = seed
        self.suppression = float(suppression)
        self.distance_discount = float(distance_discount)
        self.probe_fraction = float(probe_fraction)
        self.timing, self.scan_mode = _check_mode(timing, scan_mode, probe_fraction)
        self.channels = int(channels)
        self.channel_weights = channel_weights
        self.channel_weights_ = weights
        self.model_ = model if isinstance(model, ERDNet) else load_model(model)
        self.model_.eval()
        self.stop_ = stop if stop is not None else StopCriteria()
        self.batch_size_ = int(batch_size) if batch_size is not None else max(1, min(50, (H * W) // 100))
        self._n = H * W
        self._maps = SamplingMaps(self.shape, self.model_, channels=self.channels, weights=weights)
        fly = scan_mode == "fly"
        self.fly_ = FlyPlanner(self.shape, timing, fly_budget(self.shape, timing, self.stop_)) if fly else None
        self._initial_n = max(1, int(round(self.initial_fraction * self._n)))
        self._signals = ScanSignals(self.stop_.error_window, probes=self.probe_fraction > 0, weights=weights)
        self._rng = np.random.default_rng(None if seed is None else int(seed))
        # the probes' own generator, so that the ERD picks and the initial pattern of a seed stay
        # what they are without probes
        self._probe_rng = np.random.default_rng(None if seed is None else [int(seed), 1])
        self._probe_credit = 0.0
        self._pending = np.zeros((H, W), bool)
        self._excluded = np.zeros((H, W), bool)
        self._probing = np.zeros((H, W), bool)
        self._initial_queue: np.ndarray | None = None
        self._stop_reason: str | None = None
        self.history_: list[dict] = []
        self.ask_times_: list[float] = []
        self.tell_times_: list[float] = []

    def __repr__(self) -> str:
        model = self.model_.source.get("path", "untrained ERDNet").split("/")[-1]
        args = [f"{self.shape}", f"model={model!r}", f"stop={self.stop_!r}"]
        args += [f"{k}={getattr(self, k)!r}" for k, v in _DEFAULTS.items() if getattr(self, k) != v]
        done = f", {self.stop_reason}" if self.done else ""
        return f"Sampler({', '.join(args)})  # {self.n_measured} measured ({100 * self.fraction:.1f}%){done}"

    @property
    def done(self) -> bool:
        """True once a stop rule fired or nothing is left to ask for (every pixel measured or excluded)."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        """None while running, else which rule fired and at what value."""
        return self._stop_reason

    @property
    def fraction(self) -> float:
        """Measured fraction of the grid."""
        return self._maps.n_measured / self._n

    @property
    def n_measured(self) -> int:
        """Number of measured pixels."""
        return self._maps.n_measured

    @property
    def measured_mask(self) -> np.ndarray:
        """(H, W) bool copy: True where measured."""
        return self._maps.measured.copy()

    @property
    def pending_points(self) -> np.ndarray:
        """(n, 2) int array of the pixels asked for and not yet told (see `release`)."""
        return np.argwhere(self._pending)

    def probes_among(self, points) -> np.ndarray:
        """(k,) bool: which of these pending points `ask` drew as random probes (``probe_fraction``)."""
        pts = as_points(points, self.shape)
        return self._probing[pts[:, 0], pts[:, 1]]

    @property
    def measured_points(self) -> np.ndarray:
        """(n, 2) int array of measured (row, col) in the order they were told."""
        return np.stack(np.divmod(self._maps.measured_flat, self.shape[1]), axis=1)

    @property
    def measured_values(self) -> np.ndarray:
        """(n,) values matching `measured_points`; (n, C) with several channels (a channel a measurement
        did not give holds the reconstruction there at the time: see `missing_mask`)."""
        flat = self._maps.measured_flat
        if self.channels == 1:
            return self._maps.values.ravel()[flat]
        return self._maps.values.reshape(self.channels, -1)[:, flat].T

    @property
    def missing_mask(self) -> np.ndarray:
        """(C, H, W) bool copy: True where a measured pixel's value in a channel was missing (NaN when told)."""
        return self._maps.missing.copy()

    @property
    def channel_erd(self) -> np.ndarray:
        """(C, H, W) each channel's predicted ERD, in units of its own intensity scale squared."""
        return self._maps.channel_erd.copy()

    @property
    def intensity_scales(self) -> np.ndarray:
        """(C,) each channel's intensity scale (see `intensity_scale`)."""
        return self._maps.scales.copy()

    @property
    def reconstruction(self) -> np.ndarray:
        """(H, W) image estimate from all values told so far (NaN before any value); (C, H, W) with several channels."""
        return self._maps.reconstruction()

    @property
    def distance(self) -> np.ndarray:
        """(H, W) distance of each pixel to the nearest measured pixel (inf before the initial pattern is told)."""
        return self._maps.distance.copy()

    @property
    def intensity_scale(self) -> float:
        """Spread (1st to 99th percentile) of the initial measurements; the unit of ERD and errors."""
        return self._maps.scale

    @property
    def erd(self) -> np.ndarray:
        """(H, W) predicted ERD; 0 at measured pixels and before the initial pattern is told. With several
        channels, the channels' ERDs (`channel_erd`) combined by their weights."""
        return self._maps.erd.copy()

    @property
    def signals(self) -> dict:
        """Current values of the stop signals (`steering.signals.ScanSignals.values`)."""
        return self._signals.values(self._maps, self._n)

    @property
    def excluded_points(self) -> np.ndarray:
        """(n, 2) int array of the pixels given to `exclude`."""
        return np.argwhere(self._excluded)

    def features_at(self, query: np.ndarray) -> np.ndarray:
        """Feature matrix of unmeasured pixels ``query`` (flat indices), from all measurements."""
        return self._maps.features_at(query)

    def ask(self, n: int | None = None, *, start=None) -> np.ndarray:
        """Next points to measure, in a travel-efficient order.

        Parameters
        ----------
        n : int, optional
            How many points (default `batch_size`; the first call: the initial pattern, in fly mode less its tail).
        start : (row, col), optional
            Where the stage is; the route begins nearest to it.

        Returns
        -------
        (k, 2) int64 array of (row, col), k <= n; (0, 2) once `done`.
        """
        t0 = time.perf_counter()
        self._signals.start_clock()
        start = _checked_ask(n, start)
        budget = self.stop_.point_budget(self._n) - self.n_measured - int(self._pending.sum())
        if self.done or budget <= 0:
            return np.zeros((0, 2), np.int64)
        flat = (self._ask_initial(n, start) if not self._maps.ready
                else self._ask_next(min(n or self.batch_size_, budget), start))
        if flat is None:
            return np.zeros((0, 2), np.int64)
        flat = flat[:budget]
        pts = np.stack(np.divmod(flat, self.shape[1]), axis=1).astype(np.int64)
        if self.fly_ is None:
            pts = pts[order_route(pts, start)]
        self._pending.ravel()[pts[:, 0] * self.shape[1] + pts[:, 1]] = True
        self.ask_times_.append(time.perf_counter() - t0)
        return pts

    def tell(self, points, values, *, failed=None, beam_time: float | None = None, probes=None) -> None:
        """Report measured values.

        Parameters
        ----------
        points : (k, 2) int array
            Pixels (row, col), in any order; usually a subset of what `ask` returned. Points never
            asked for are accepted too (e.g. when rebuilding a scan from stored data).
        values : (k,) float array, or (k, C) with several channels
            Measured values; finite unless marked failed. With several channels a NaN in some
            channels of a point is a value the measurement did not give (see `missing_mask`).
        failed : (k,) bool array, optional
            Points whose measurement failed: their values are ignored and they can be asked again.
        beam_time : float, optional
            Seconds of beam time the scan has spent so far (moves and exposures), for the
            ``max_beam_time`` limit.
        probes : (k,) bool array, optional
            Which points were random probes; default: those `ask` gave as probes. Only needed when
            rebuilding a scan with ``probe_fraction`` > 0 from stored data.
        """
        t0 = time.perf_counter()
        flat, vals, fail = _checked_report(points, values, failed, beam_time, probes, self._maps.measured,
                                           self.channels)
        if beam_time is not None:
            self._signals.beam_time = float(beam_time)
        probed = (self._probing.ravel()[flat] if probes is None else np.asarray(probes, dtype=bool)) & ~fail
        self._pending.ravel()[flat] = False
        self._probing.ravel()[flat] = False
        if fail.any() and not self._maps.ready and self._initial_queue is not None:
            # the initial pattern goes on without a point that failed; it stays a candidate for later
            self._initial_queue = self._initial_queue[~np.isin(self._initial_queue, flat[fail])]
        flat, vals, probed = flat[~fail], vals[~fail], probed[~fail]
        if len(flat):
            self._record(flat, vals, probed)
            signals = self.signals  # one pass over the ERD map serves the stop check and the history
            self._stop_reason = self._stop_reason or self.stop_.check(signals)
            if self._maps.ready:
                dt = time.perf_counter() - t0
                self.tell_times_.append(dt)
                self.history_.append({**signals, "tell_time": dt, "stop_reason": self._stop_reason})
        self._check_exhausted()

    def exclude(self, points) -> None:
        """Never ask for these pixels again (e.g. where the instrument keeps failing).

        They stay unmeasured (interpolated like any other); once only they are left, the sampler is `done`.
        """
        pts = as_points(points, self.shape)
        self._excluded[pts[:, 0], pts[:, 1]] = True
        self._check_exhausted()

    def release(self, points=None) -> None:
        """Forget that asked points are pending, so that they can be asked for again.

        For points that were asked for but will not be measured: the rest of a batch when a scan
        is stopped, or a batch a caller drops. ``points`` default to every pending point.
        """
        released = self._pending.copy() if points is None else np.zeros(self.shape, bool)
        if points is not None:
            released[tuple(as_points(points, self.shape).T)] = True
        self._pending &= ~released
        self._probing &= ~released
        self._check_exhausted()

    def _record(self, flat: np.ndarray, vals: np.ndarray, probed: np.ndarray) -> None:
        """Tell the maps and the stop signals about successful measurements at ``flat``."""
        maps = self._maps
        if not maps.ready:
            maps.add(flat, vals)
            if (self._initial_queue is not None and len(self._initial_queue) == 0 and not self._pending.any()) or (
                    maps.n_measured >= self._initial_n):
                self._initial_queue = np.zeros(0, np.int64)
                self._build()
            return
        # measured during a staged build (`late`) are judged now, by the maps' prediction, with the new ones
        judged, judged_vals, judged_probes = maps.judged_batch(flat, vals, probed)
        surprises = self._signals.record_batch(maps, judged, judged_vals, judged_probes,
                                               n_before=maps.n_measured - len(maps.late))
        self._signals.record_change(surprises, maps.add(flat, vals), len(judged))

    def _build(self) -> None:
        self._maps.build()
        self._signals.set_reference(self._maps)

    def _check_exhausted(self) -> None:
        if self._stop_reason is None and not self._pending.any() and (self._maps.measured | self._excluded).all():
            n_excluded = int((self._excluded & ~self._maps.measured).sum())
            self._stop_reason = f"nothing left to measure: {n_excluded} pixels excluded, every other one measured"

    def _ask_initial(self, n: int | None, start) -> np.ndarray | None:
        measured = self._maps.measured
        if self._initial_queue is None and self.fly_ is not None:
            self._initial_queue = self.fly_.initial()
            self._initial_n = len(self._initial_queue)
        elif self._initial_queue is None:
            pts = initial_pattern(self.shape, self._initial_n - self.n_measured, kind=self.initial_pattern,
                                  rng=self._rng, exclude=measured)
            self._initial_queue = pts[:, 0] * self.shape[1] + pts[:, 1]
        taken = (self._pending | measured | self._excluded).ravel()[self._initial_queue]
        queue = self._initial_queue[~taken]  # a failed point of the pattern is asked again, no other
        if len(queue) == 0:  # in fly mode the maps are built while the raster's tail is flown
            if self.n_measured == 0 or (self._pending.any() and self.fly_ is None):
                return None
            self._build()
            return self._ask_next(n or self.batch_size_, start)
        if self.fly_ is None:
            return queue if n is None else queue[:n]
        return self.fly_.ask_raster(queue, self._maps, asked_ahead=self._pending.any())

    def _ask_next(self, n: int, start) -> np.ndarray:
        cand_mask = ~(self._maps.measured | self._pending | self._excluded)
        if self.fly_ is not None:
            flat = self.fly_.ask_segments(self._maps, cand_mask, start, self._signals.beam_time, self._pending)
            if len(flat) == 0 and not self._pending.any():
                self._stop_reason = (f"beam time budget planned: {self.fly_.planned_:.1f} s of "
                                     f"{self.fly_.budget:.1f} s at fraction {self.fraction:.4f}")
            return flat
        if self.probe_fraction > 0 and cand_mask.any():
            probes, self._probe_credit = _draw_probes(self._probe_rng, self._probe_credit, self.probe_fraction, n,
                                                      cand_mask)
            if len(probes):
                self._probing.ravel()[probes] = True
                cand_mask.ravel()[probes] = False
                return np.concatenate([probes, self._ask_by_erd(cand_mask, n - len(probes))])
        return self._ask_by_erd(cand_mask, n)

    def _ask_by_erd(self, candidates: np.ndarray, n: int) -> np.ndarray:
        return select_by_erd(self._maps.erd, self._maps.distance, candidates, n, pending=self._pending,
                             suppression=self.suppression, distance_discount=self.distance_discount)


# the settings `Sampler.__repr__` shows when they differ from these
_DEFAULTS = {name: p.default for name, p in inspect.signature(Sampler).parameters.items()
             if name not in ("shape", "model", "stop")}
