"""The sampling state of one scan: ask where to measure next, tell what was measured.

The sampler keeps, for every pixel of the grid, the reconstruction, the distance to the nearest
measurement and the predicted ERD. After the initial pattern these maps are built once for the whole
grid; after that each `Sampler.tell` refreshes them only in windows around the new points (the
Delaunay triangles that a new point changes lie within about twice the local sampling distance of
it), which keeps a decision cheap on large grids and memory linear in the number of pixels.
"""

from __future__ import annotations

import math
import time
from collections import deque

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from .erd import ERDNet, load_model
from .features import pixel_features, triangle_features
from .patterns import PATTERNS, initial_pattern
from .reconstruction import interpolate_linear, mirror_for_thin_grid, reconstruct_linear, triangulate
from .routing import order_route
from .selection import select_spread
from .stopping import StopCriteria, error_decay, estimate_ssim, estimate_ssim_at_probes, local_variance

__all__ = ["Sampler"]

# Beyond this share of the grid, a local refresh costs more than rebuilding everything.
_GLOBAL_REBUILD_SHARE = 0.3
# Window radii around a new point, in units of the largest nearby distance to a measurement: the
# triangles a new point changes have circumcircles through it, so they lie within about twice that.
_CHANGED_RADIUS = 2.0
_MARGIN_RADIUS = 2.0


#: How many of the newest random probes (``probe_fraction`` > 0) ``ssim_estimate`` averages over,
#: and how many it waits for.
PROBE_WINDOW = 160
MIN_PROBES = 40
#: How many of the newest batches the decay of the prediction error (`error_decay`) is fitted on.
DECAY_BATCHES = 30


def _as_points(points, shape, what: str = "points") -> np.ndarray:
    """Validate (k, 2) integer pixel coordinates inside the grid; return them as int64."""
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
        Seed of the initial pattern; the same seed and the same measurements give the same points.
    suppression : float
        Batch spreading: a pick suppresses candidates within this multiple of its distance to the
        nearest measurement.
    distance_discount : float
        Points are ranked by ``erd / distance ** distance_discount``. The default, 0, ranks by the
        ERD alone: the network predicts the realised reduction of squared error, which already
        weighs how much of the image a measurement changes (with the Gaussian-window label of
        SLADS, which grows with the square of the distance, one power of discount had gained
        0.6-0.9 dB; with the realised label a discount of 0.5 lost 0.3-0.4 dB on our benchmark).

    Attributes
    ----------
    history_ : list of dict
        One record per `tell` once the maps exist: fraction, points, stop signals, timings.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        model: ERDNet | str | None = None,
        initial_fraction: float = 0.01,
        initial_pattern: str = "halton",
        batch_size: int | None = None,
        stop: StopCriteria | None = None,
        seed: int | None = None,
        suppression: float = 0.75,
        distance_discount: float = 0.0,
    ):
        try:
            H, W = (int(s) for s in shape)
            if (H, W) != tuple(shape):
                raise TypeError
        except (TypeError, ValueError):
            raise ValueError(f"shape must be two integers (H, W), got {shape!r}") from None
        if H < 1 or W < 1:
            raise ValueError(f"shape must be at least 1x1, got {H}x{W}")
        if not (0.0 < float(initial_fraction) <= 1.0):
            raise ValueError(f"initial_fraction must be in (0, 1], got {initial_fraction}")
        if initial_pattern not in PATTERNS:
            raise ValueError(f"initial_pattern must be one of {PATTERNS}, got {initial_pattern!r}")
        if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
        if stop is not None and not isinstance(stop, StopCriteria):
            raise ValueError(f"stop must be a StopCriteria, got {type(stop).__name__}")
        if not suppression >= 0:
            raise ValueError(f"suppression must be >= 0, got {suppression}")
        if not np.isfinite(distance_discount):
            raise ValueError(f"distance_discount must be finite, got {distance_discount}")
        self.shape = (H, W)
        self.model = model
        self.initial_fraction = float(initial_fraction)
        self.initial_pattern = initial_pattern
        self.batch_size = batch_size
        self.stop = stop
        self.seed = seed
        self.suppression = float(suppression)
        self.distance_discount = float(distance_discount)

        self.model_ = model if isinstance(model, ERDNet) else load_model(model)
        self.model_.eval()
        self.stop_ = stop if stop is not None else StopCriteria()
        self.batch_size_ = int(batch_size) if batch_size is not None else max(1, min(50, (H * W) // 100))
        self._rng = np.random.default_rng(seed)
        n = H * W
        self._n = n
        self._measured = np.zeros((H, W), bool)
        self._pending = np.zeros((H, W), bool)
        self._excluded = np.zeros((H, W), bool)
        self._values = np.full((H, W), np.nan)
        self._recon = np.full((H, W), np.nan)
        self._dist = np.full((H, W), np.inf, dtype=np.float32)
        self._nearest = np.full((H, W), -1, dtype=np.int64)
        self._erd = np.zeros((H, W), dtype=np.float32)
        self._order: list[np.ndarray] = []
        self._n_measured = 0
        self._initial_queue: np.ndarray | None = None
        self._ready = False
        self._scale = 1.0
        self._offset = 0.0
        self._erd_total0: float | None = None
        self._errors: deque = deque(maxlen=self.stop_.error_window)
        self._changes: deque = deque(maxlen=self.stop_.error_window)
        self._errors2: deque = deque(maxlen=self.stop_.error_window)
        self._pick_erd: deque = deque(maxlen=self.stop_.error_window)
        # random probes (StopCriteria.probe_fraction): their own generator, so that the ERD picks
        # and the initial pattern of a seed stay what they are without probes
        self._probe_rng = np.random.default_rng(None if seed is None else [int(seed), 1])
        self._probe_credit = 0.0
        self._probing = np.zeros((H, W), bool)
        self._probe_errors2: deque = deque(maxlen=PROBE_WINDOW)
        self._probe_var: deque = deque(maxlen=PROBE_WINDOW)  # reconstruction's local variance there
        self._probe_n: deque = deque(maxlen=PROBE_WINDOW)  # points measured before the probe was told
        self._batch_errors2: deque = deque(maxlen=DECAY_BATCHES)  # (points measured before, mean error2)
        self._change_sum = 0.0
        self._started: float | None = None
        self._beam_time: float | None = None
        self._stop_reason: str | None = None
        self.history_: list[dict] = []
        self.ask_times_: list[float] = []
        self.tell_times_: list[float] = []

    # ------------------------------------------------------------------ public state
    @property
    def done(self) -> bool:
        """True once a stop rule fired or every pixel is measured."""
        return self._stop_reason is not None

    @property
    def stop_reason(self) -> str | None:
        """None while running, else which rule fired and at what value."""
        return self._stop_reason

    @property
    def fraction(self) -> float:
        """Measured fraction of the grid."""
        return self._n_measured / self._n

    @property
    def n_measured(self) -> int:
        """Number of measured pixels."""
        return self._n_measured

    @property
    def measured_mask(self) -> np.ndarray:
        """(H, W) bool copy: True where measured."""
        return self._measured.copy()

    @property
    def measured_points(self) -> np.ndarray:
        """(n, 2) int array of measured (row, col) in the order they were told."""
        if not self._order:
            return np.zeros((0, 2), np.int64)
        return np.stack(np.divmod(np.concatenate(self._order), self.shape[1]), axis=1)

    @property
    def measured_values(self) -> np.ndarray:
        """(n,) values matching `measured_points`."""
        if not self._order:
            return np.zeros(0)
        return self._values.ravel()[np.concatenate(self._order)]

    @property
    def reconstruction(self) -> np.ndarray:
        """(H, W) image estimate from all values told so far (NaN before any value)."""
        if self._ready:
            return self._recon.copy()
        if self._n_measured == 0:
            return np.full(self.shape, np.nan)
        return reconstruct_linear(self.shape, self.measured_points, self.measured_values)

    @property
    def distance(self) -> np.ndarray:
        """(H, W) distance of each pixel to the nearest measured pixel (inf before any is told)."""
        return self._dist.copy()

    @property
    def intensity_scale(self) -> float:
        """Spread (1st to 99th percentile) of the initial measurements; the unit of ERD and errors."""
        return self._scale

    @property
    def erd(self) -> np.ndarray:
        """(H, W) predicted ERD; 0 at measured pixels and before the initial pattern is told."""
        return self._erd.copy()

    @property
    def signals(self) -> dict:
        """Current values of the stop signals.

        ``n_measured``, ``n_pixels``, ``fraction``; once defined: ``wall_time`` (s since the first
        `ask`), ``beam_time`` (as last told), ``erd_total`` and ``erd_ratio`` (to its value after
        the initial pattern), ``prediction_error`` and ``recon_change`` (running means over the
        newest ``stop.error_window`` points, in units of `intensity_scale`), ``ssim_estimate``
        (`estimate_ssim_at_probes` with random probes, else `estimate_ssim`).
        """
        s = {"n_measured": self._n_measured, "n_pixels": self._n, "fraction": self.fraction}
        if self._started is not None:
            s["wall_time"] = time.perf_counter() - self._started
        if self._beam_time is not None:
            s["beam_time"] = self._beam_time
        if self._ready and self._erd_total0:
            s["erd_total"] = float(self._erd.sum(dtype=np.float64))
            s["erd_ratio"] = s["erd_total"] / self._erd_total0
        if len(self._errors) == self._errors.maxlen:
            s["prediction_error"] = float(np.mean(self._errors))
        if len(self._changes) == self._changes.maxlen:
            s["recon_change"] = float(np.mean(self._changes))
        probes = self.stop_.probe_fraction > 0
        if len(self._probe_errors2) >= MIN_PROBES if probes else len(self._errors2) == self._errors2.maxlen:
            values = self._values[self._measured]
            value_range = float(values.max() - values.min())
            if probes:
                n_before, batch_errors2 = np.asarray(self._batch_errors2).T
                s["ssim_estimate"] = estimate_ssim_at_probes(
                    self._probe_errors2, self._probe_var, self._probe_n, n_now=self._n_measured,
                    fraction=self.fraction, value_range=value_range, decay=error_decay(n_before, batch_errors2))
            else:
                s["ssim_estimate"] = estimate_ssim(
                    self._recon, self._measured, self._erd, error2=float(np.mean(self._errors2)),
                    pick_erd=float(np.mean(self._pick_erd)), value_range=value_range)
        return s

    # ------------------------------------------------------------------ ask / tell
    def ask(self, n: int | None = None, *, start=None) -> np.ndarray:
        """Next points to measure, in a travel-efficient order.

        Parameters
        ----------
        n : int, optional
            How many points (default `batch_size`; the first call returns the whole initial pattern).
        start : (row, col), optional
            Where the stage is; the route begins nearest to it.

        Returns
        -------
        (k, 2) int64 array of (row, col), k <= n; (0, 2) once `done`.
        """
        t0 = time.perf_counter()
        if self._started is None:
            self._started = t0
        if n is not None and (int(n) != n or n < 1):
            raise ValueError(f"n must be an integer >= 1, got {n}")
        if start is not None:
            start = np.asarray(start, dtype=np.float64)
            if start.shape != (2,) or not np.all(np.isfinite(start)):
                raise ValueError(f"start must be a finite (row, col) pair, got {start!r}")
        empty = np.zeros((0, 2), np.int64)
        if self.done:
            return empty
        budget = self.stop_.point_budget(self._n) - self._n_measured - int(self._pending.sum())
        if budget <= 0:
            return empty
        if not self._ready:
            flat = self._ask_initial(n)
            if flat is None:
                return empty
        else:
            flat = self._ask_adaptive(min(n or self.batch_size_, budget))
        flat = flat[:budget]
        pts = np.stack(np.divmod(flat, self.shape[1]), axis=1).astype(np.int64)
        pts = pts[order_route(pts, start)]
        self._pending.ravel()[pts[:, 0] * self.shape[1] + pts[:, 1]] = True
        self.ask_times_.append(time.perf_counter() - t0)
        return pts

    def tell(self, points, values, *, failed=None, beam_time: float | None = None) -> None:
        """Report measured values.

        Parameters
        ----------
        points : (k, 2) int array
            Pixels (row, col), in any order; usually a subset of what `ask` returned. Points never
            asked for are accepted too (e.g. when rebuilding a scan from stored data).
        values : (k,) float array
            Measured values; finite unless marked failed.
        failed : (k,) bool array, optional
            Points whose measurement failed: their values are ignored and they can be asked again.
        beam_time : float, optional
            Seconds of beam time the scan has spent so far (moves and exposures), for the
            ``max_beam_time`` limit.
        """
        t0 = time.perf_counter()
        pts = _as_points(points, self.shape)
        vals = np.asarray(values, dtype=np.float64)
        if vals.shape != (len(pts),):
            raise ValueError(f"values must have shape ({len(pts)},) to match points, got {vals.shape}")
        fail = np.zeros(len(pts), bool) if failed is None else np.asarray(failed, dtype=bool)
        if fail.shape != (len(pts),):
            raise ValueError(f"failed must have shape ({len(pts)},) to match points, got {fail.shape}")
        if beam_time is not None:
            if not (np.isfinite(beam_time) and beam_time >= 0):
                raise ValueError(f"beam_time must be a finite number >= 0, got {beam_time}")
            self._beam_time = float(beam_time)
        bad = ~np.isfinite(vals) & ~fail
        if bad.any():
            raise ValueError(
                f"non-finite values at points {pts[bad][:5].tolist()}: mark failed measurements with failed=..."
            )
        flat = pts[:, 0] * self.shape[1] + pts[:, 1]
        if len(np.unique(flat)) != len(flat):
            raise ValueError("points contains duplicates")
        again = self._measured.ravel()[flat]
        if again.any():
            raise ValueError(f"points already measured: {pts[again][:5].tolist()}")
        self._pending.ravel()[flat] = False
        probed = self._probing.ravel()[flat] & ~fail
        self._probing.ravel()[flat] = False
        if fail.any() and not self._ready and self._initial_queue is not None:
            # the initial pattern goes on without a point that failed; it stays a candidate for later
            self._initial_queue = self._initial_queue[~np.isin(self._initial_queue, flat[fail])]
        ok = ~fail
        flat, vals, probed = flat[ok], vals[ok], probed[ok]
        if len(flat) == 0:
            return
        if self._ready:
            predicted = self._recon.ravel()[flat]
            surprise = np.abs(predicted - vals) / self._scale
            self._errors.extend(surprise.tolist())
            self._errors2.extend(((predicted - vals) ** 2).tolist())
            self._pick_erd.extend(self._erd.ravel()[flat].astype(np.float64).tolist())
            self._batch_errors2.append((self._n_measured, float(np.mean((predicted - vals) ** 2))))
            if probed.any():
                rows, cols = np.divmod(flat[probed], self.shape[1])
                self._probe_errors2.extend(((predicted[probed] - vals[probed]) ** 2).tolist())
                self._probe_var.extend(local_variance(self._recon, rows, cols).tolist())
                self._probe_n.extend([self._n_measured] * int(probed.sum()))
        self._values.ravel()[flat] = vals
        self._measured.ravel()[flat] = True
        self._order.append(flat)
        self._n_measured += len(flat)
        if self._ready:
            self._change_sum = float(surprise.sum())
            self._update(flat)
            # how much the whole image moved per new point: the distortion reduction actually realised
            self._changes.extend([self._change_sum / len(flat)] * len(flat))
        elif (self._initial_queue is not None and len(self._initial_queue) == 0 and not self._pending.any()) or (
            self._n_measured >= self._n_initial()
        ):
            self._initial_queue = np.zeros(0, np.int64)
            self._rebuild()
        signals = self.signals  # one pass over the ERD map serves the stop check and the history
        if self._stop_reason is None:
            self._stop_reason = self.stop_.check(signals)
        if self._ready:
            dt = time.perf_counter() - t0
            self.tell_times_.append(dt)
            self.history_.append({**signals, "tell_time": dt, "stop_reason": self._stop_reason})

    def exclude(self, points) -> None:
        """Never ask for these pixels again (e.g. where the instrument keeps failing).

        Excluded pixels stay unmeasured: the reconstruction interpolates them like any other. If
        only excluded pixels are left to measure, `ask` returns an empty batch.
        """
        pts = _as_points(points, self.shape)
        self._excluded[pts[:, 0], pts[:, 1]] = True

    @property
    def excluded_points(self) -> np.ndarray:
        """(n, 2) int array of the pixels given to `exclude`."""
        return np.argwhere(self._excluded)

    # ------------------------------------------------------------------ internals
    def _n_initial(self) -> int:
        return max(1, int(round(self.initial_fraction * self._n)))

    def _ask_initial(self, n: int | None) -> np.ndarray | None:
        if self._initial_queue is None:
            want = self._n_initial() - self._n_measured
            pts = initial_pattern(self.shape, want, kind=self.initial_pattern, rng=self._rng, exclude=self._measured)
            self._initial_queue = pts[:, 0] * self.shape[1] + pts[:, 1]
        taken = (self._pending | self._measured | self._excluded).ravel()[self._initial_queue]
        queue = self._initial_queue[~taken]  # a failed point of the pattern is asked again, no other
        if len(queue) == 0:
            if self._n_measured == 0 or self._pending.any():
                return None
            self._rebuild()
            return self._ask_adaptive(n or self.batch_size_)
        return queue if n is None else queue[:n]

    def _ask_adaptive(self, n: int) -> np.ndarray:
        cand_mask = ~(self._measured | self._pending | self._excluded)
        if self.stop_.probe_fraction > 0 and cand_mask.any():
            # whole probes per batch, the fractions carried over, so small batches probe too
            self._probe_credit += self.stop_.probe_fraction * n
            k = min(int(self._probe_credit), n, int(cand_mask.sum()))
            if k > 0:
                self._probe_credit -= k
                probes = self._probe_rng.choice(np.flatnonzero(cand_mask), k, replace=False)
                self._probing.ravel()[probes] = True
                cand_mask.ravel()[probes] = False
                return np.concatenate([probes, self._ask_by_erd(cand_mask, n - k)])
        return self._ask_by_erd(cand_mask, n)

    def _ask_by_erd(self, cand_mask: np.ndarray, n: int) -> np.ndarray:
        cand = np.flatnonzero(cand_mask)
        if len(cand) == 0 or n <= 0:
            return np.zeros(0, np.int64)
        dist = self._dist.ravel()[cand]
        erd = self._erd.ravel()[cand] / dist**self.distance_discount
        pool = min(len(cand), 40 * n)
        if pool < len(cand):
            top = np.argpartition(-erd, pool - 1)[:pool]
            cand, erd, dist = cand[top], erd[top], dist[top]
        W = self.shape[1]
        coords = np.stack(np.divmod(cand, W), axis=1)
        blockers = None
        if self._pending.any():
            pf = np.flatnonzero(self._pending)
            pr, pc = np.divmod(pf, W)
            rad = np.maximum(1.0, self.suppression * self._dist.ravel()[pf])
            blockers = np.column_stack([pr, pc, rad])
        picks = select_spread(erd, dist, coords, n, suppression=self.suppression, blockers=blockers)
        if len(picks) < n:
            # The pool ran dry under suppression: fill from the remaining candidates by ERD.
            rest = np.setdiff1d(np.flatnonzero(cand_mask), cand[picks], assume_unique=True)
            score = self._erd.ravel()[rest] / self._dist.ravel()[rest] ** self.distance_discount
            extra = rest[np.argsort(-score, kind="stable")[: n - len(picks)]]
            return np.concatenate([cand[picks], extra])
        return cand[picks]

    def _rebuild(self) -> None:
        """Build the maps for the whole grid from all measurements."""
        if self._n_measured == 0:
            return
        vals = self._values.ravel()[np.concatenate(self._order)]
        if not self._ready:
            lo, hi = np.percentile(vals, [1, 99])
            spread = float(hi - lo)
            self._scale = spread if spread > 0 else (float(np.abs(vals).max()) or 1.0)
            self._offset = float(lo) / self._scale
        dist, (ir, ic) = distance_transform_edt(~self._measured, return_indices=True)
        self._dist[:] = dist
        self._nearest[:] = ir * self.shape[1] + ic
        self._refresh(np.flatnonzero(~self._measured), np.flatnonzero(self._measured), local=False)
        self._recon.ravel()[self._measured.ravel()] = self._values.ravel()[self._measured.ravel()]
        self._erd[self._measured] = 0.0
        self._ready = True
        if self._erd_total0 is None:
            self._erd_total0 = float(self._erd.sum(dtype=np.float64)) or None

    def _update(self, new: np.ndarray) -> None:
        """Refresh the maps around newly measured pixels ``new`` (flat indices)."""
        H, W = self.shape
        rows, cols = np.divmod(new, W)
        inner = np.zeros((H, W), bool)
        outer = np.zeros((H, W), bool)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            d0 = float(self._dist[r, c])
            w = int(math.ceil(d0)) + 1
            rho = float(self._dist[max(r - w, 0) : r + w + 1, max(c - w, 0) : c + w + 1].max())
            r_in = int(math.ceil(_CHANGED_RADIUS * rho)) + 2
            r_out = r_in + int(math.ceil(_MARGIN_RADIUS * rho)) + 1
            inner[max(r - r_in, 0) : r + r_in + 1, max(c - r_in, 0) : c + r_in + 1] = True
            outer[max(r - r_out, 0) : r + r_out + 1, max(c - r_out, 0) : c + r_out + 1] = True
        if inner.sum() > _GLOBAL_REBUILD_SHARE * self._n:
            self._rebuild()
            return
        self._recon.ravel()[new] = self._values.ravel()[new]
        self._dist.ravel()[new] = 0.0
        self._nearest.ravel()[new] = new
        self._erd.ravel()[new] = 0.0
        self._refresh(np.flatnonzero(inner & ~self._measured), np.flatnonzero(outer & self._measured), local=True)

    def _refresh(self, query: np.ndarray, points: np.ndarray, *, local: bool) -> None:
        """Recompute reconstruction, (local: distance) and ERD at unmeasured pixels ``query``."""
        if len(query) == 0:
            return
        recon, feats = self._reconstruct_and_featurise(query, points, update_distance=local)
        if self._ready:
            change = np.abs(recon - self._recon.ravel()[query] / self._scale)
            self._change_sum += float(change[np.isfinite(change)].sum())
        self._recon.ravel()[query] = recon * self._scale
        self._erd.ravel()[query] = self.model_.predict_erd(feats)

    def features_at(self, query: np.ndarray) -> np.ndarray:
        """Feature matrix of unmeasured pixels ``query`` (flat indices), from all measurements."""
        return self._reconstruct_and_featurise(query, np.flatnonzero(self._measured), update_distance=False)[1]

    def _reconstruct_and_featurise(self, query, points, *, update_distance: bool):
        """Linear reconstruction (in scaled units) and features at ``query`` from measured ``points``.

        With ``update_distance`` the distance and nearest-measurement maps at ``query`` are first
        recomputed from ``points`` (which must include every measurement near the query pixels).
        """
        W = self.shape[1]
        pts = np.stack(np.divmod(points, W), axis=1).astype(np.float64)
        vals = self._values.ravel()[points] / self._scale
        q = np.stack(np.divmod(query, W), axis=1).astype(np.float64)
        if update_distance:
            d, i = cKDTree(pts).query(q)
            self._dist.ravel()[query] = d
            self._nearest.ravel()[query] = points[i]
        mp, mv = mirror_for_thin_grid(pts, vals, self.shape)
        tri = triangulate(mp)
        if tri is not None:
            recon, simplex = interpolate_linear(tri, mv, q)
            tri_feats = triangle_features(tri, mv)
        else:
            recon, simplex, tri_feats = np.full(len(q), np.nan), np.full(len(q), -1), None
        nearest_val = self._values.ravel()[self._nearest.ravel()[query]] / self._scale
        outside = ~np.isfinite(recon)
        recon[outside] = nearest_val[outside]
        d = self._dist.ravel()[query].astype(np.float64)
        feats = pixel_features(d, simplex, tri_feats, recon, nearest_val, self._offset)
        return recon, feats
