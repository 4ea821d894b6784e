"""Fly-scan steering: which rows to fly, and where along them, for the most information per second.

A fly scan pays a fixed overhead per flown line and one dwell per pixel, so the unit of choice is a
row segment, not a point. `FlyPlanner` spends a share of the beam-time budget (``raster_share``) on
a coarse raster flown row by row (`fly_raster`: rows further apart than the column step, since
each row costs its overhead), then, batch after batch, flies the row segments, at a column step of
one or of the raster's, with the largest predicted gain per second of beam time.

A segment's gain is the ERD of its unmeasured pixels, each discounted by ``step / distance`` (at
most 1): a pixel's ERD assumes its neighbours stay unmeasured, and pixels flown ``step`` apart
share what a measurement ``distance`` from the nearest one reveals. Once a segment is chosen, the
ERD of the rows it informs is set to zero for the rest of the batch. The raster share, 0.9, and the
discount were chosen on ten synthetic images drawn for the purpose (`examples/fly_raster_share.py`),
not on the benchmark's data.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

from .timing import StageTiming, flown_runs

__all__ = ["fly_raster", "coarse_raster", "raster_time", "raster_positions", "full_raster_time", "fly_budget",
           "FlyPlanner", "SEGMENT_LENGTHS"]

#: Lengths of the candidate segments, as fractions of a row.
SEGMENT_LENGTHS = (0.125, 0.25, 0.5, 1.0)
# Pixels per part of the raster's tail: the maps are built in as many stages as the tail has parts, one
# while each part is flown, so that no decision builds more than about this many pixels' maps (~0.3 s).
_TAIL_PART_PIXELS = 1 << 18


def _serpentine(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    parts = [np.column_stack([np.full(len(cols), r), cols if i % 2 == 0 else cols[::-1]]) for i, r in enumerate(rows)]
    return np.vstack(parts).astype(np.int64) if parts else np.zeros((0, 2), np.int64)


def raster_positions(width: int, step: int) -> np.ndarray:
    """Every ``step``-th index of ``0 .. width - 1``, the last one included."""
    cols = np.arange(0, width, step)
    return cols if cols[-1] == width - 1 else np.append(cols, width - 1)


def raster_time(rows: np.ndarray, cols: np.ndarray, timing: StageTiming, *,
                line_times: tuple[float, float] | None = None) -> float:
    """Seconds of flying `_serpentine` ``(rows, cols)``: what ``timing.route_time(..., mode="fly")`` says
    of it, without building the route (every row costs the same each way: ``line_times``, the seconds
    of a row flown forwards and backwards, computed if not given)."""
    there, back = _line_times(cols, timing) if line_times is None else line_times
    n = len(rows)
    return (n + 1) // 2 * there + n // 2 * back + float(timing.move_times(np.diff(rows)).sum())


def _line_times(cols: np.ndarray, timing: StageTiming) -> tuple[float, float]:
    line = np.column_stack([np.zeros(len(cols), np.int64), cols])
    return timing.route_time(line, mode="fly"), timing.route_time(line[::-1], mode="fly")


def coarse_raster(shape: tuple[int, int], step: int) -> np.ndarray:
    """Every ``step``-th row and column (the last row and column included), flown as a serpentine.

    Parameters
    ----------
    shape : (H, W)
    step : int
        Row and column step, >= 1.

    Returns
    -------
    (k, 2) int64 array of (row, col) in flying order.
    """
    H, W = shape
    return _serpentine(raster_positions(H, step), raster_positions(W, step))


def fly_raster(shape: tuple[int, int], timing: StageTiming, seconds: float,
               anisotropy: tuple[float, float] = (1.0, 2.0)) -> np.ndarray:
    """The raster with the most pixels that a fly scan covers in ``seconds``.

    Rows are evenly spread (rounded ``linspace``), ``anisotropy[0]`` to ``anisotropy[1]`` times
    as far apart as the column step: a row costs the line overhead, so rows are the dear
    direction. At least two rows.

    Returns
    -------
    (k, 2) int64 array of (row, col) in flying order (a serpentine).
    """
    H, W = shape

    def rows_of(n_rows):
        return np.unique(np.round(np.linspace(0, H - 1, n_rows)).astype(np.int64))

    best = None
    for step in range(1, max(2, W)):
        lo = int(np.ceil((H - 1) / (anisotropy[1] * step) + 1))
        hi = int(np.floor((H - 1) / (anisotropy[0] * step) + 1))
        cols = raster_positions(W, step)
        if best is not None and min(hi, H) * len(cols) <= len(best[0]) * len(best[1]):
            continue  # cannot hold more pixels than the best so far
        line_times = _line_times(cols, timing)
        # the most rows that fit, by bisection (the time grows with the number of rows)
        lo, hi = max(lo, 2), min(hi, H)
        if lo > hi or raster_time(rows_of(lo), cols, timing, line_times=line_times) > seconds:
            continue
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if raster_time(rows_of(mid), cols, timing, line_times=line_times) <= seconds:
                lo = mid
            else:
                hi = mid - 1
        rows = rows_of(lo)
        if best is None or len(rows) * len(cols) > len(best[0]) * len(best[1]):
            best = (rows, cols)
    if best is None:  # not even the sparsest raster fits: two rows at the coarsest step
        best = (np.array([0, H - 1]) if H > 1 else np.array([0]), raster_positions(W, max(1, W - 1)))
    return _serpentine(*best)


def full_raster_time(shape: tuple[int, int], timing: StageTiming) -> float:
    """Seconds of a fly scan of every pixel, row by row (a serpentine)."""
    H, W = shape
    return H * timing.flight_time(W) + (H - 1) * timing.move_time(1)


def fly_budget(shape: tuple[int, int], timing: StageTiming, stop) -> float:
    """The beam time a fly-mode scan plans for: ``stop.max_beam_time`` if set, else ``stop.max_fraction``
    of a full fly raster's time, else the full raster's time."""
    full = full_raster_time(shape, timing)
    if stop.max_beam_time is not None:
        return float(stop.max_beam_time)
    return full * (1.0 if stop.max_fraction is None else float(stop.max_fraction))


class FlyPlanner:
    """Chooses the flown segments of a fly-mode `Sampler`.

    Parameters
    ----------
    shape : (H, W)
    timing : StageTiming
    budget : float
        Beam time of the whole scan, in seconds.
    raster_share : float
        Share of ``budget`` spent on the initial raster.
    segments_per_batch : int
        Segments chosen per batch (the maps are refreshed between batches).
    raster_tail : float
        Share of the raster's time asked for as a batch of its own, after the rest: while it is
        flown, the maps can be built from the rest and the first segments chosen (a pipelined plan
        asks ahead), so that building them costs no beam time.
    tail_parts : int, optional
        Batches the tail is asked in (at most one per line), so that a large grid's maps can be
        built in stages, one while each is flown. Default: one per 2**18 pixels of the grid.

    Attributes
    ----------
    planned_ : float
        Seconds of the routes handed out so far (the timing model's figure).
    column_steps_ : tuple of int
        Column steps a segment may be flown at: 1, and the raster's once it is chosen.
    raster_batches_ : int
        Batches the raster is asked in: the lines before the tail, then each part of the tail.
    """

    def __init__(self, shape: tuple[int, int], timing: StageTiming, budget: float, *, raster_share: float = 0.9,
                 segments_per_batch: int = 4, raster_tail: float = 0.03, tail_parts: int | None = None):
        self.shape = shape
        self.timing = timing
        self.budget = float(budget)
        self.raster_share = float(raster_share)
        self.segments_per_batch = int(segments_per_batch)
        self.raster_tail = float(raster_tail)
        self.tail_parts = (-(-shape[0] * shape[1] // _TAIL_PART_PIXELS) if tail_parts is None
                           else max(1, int(tail_parts)))
        self.planned_ = 0.0
        self._batch_starts: np.ndarray = np.zeros(0, np.int64)
        self.raster_batches_ = 1
        self.column_steps_: tuple[int, ...] = (1,)

    def initial(self) -> np.ndarray:
        """The initial raster, in flying order, as flat indices."""
        pts = fly_raster(self.shape, self.timing, self.raster_share * self.budget)
        # each line's time with the move into it; their running sum ends at route_time(pts, mode="fly")
        runs = flown_runs(pts)
        ends = np.cumsum([self.timing.route_time(pts[a:b], mode="fly", start=pts[a - 1] if a else None)
                          for a, b in runs])
        self.planned_ += float(ends[-1])
        step = int(abs(pts[1, 1] - pts[0, 1])) if len(pts) > 1 and pts[1, 0] == pts[0, 0] else 1
        self.column_steps_ = (1,) if step <= 1 else (1, step)
        flat = pts[:, 0] * self.shape[1] + pts[:, 1]
        # the tail: the last lines, from the first whose start leaves at most raster_tail of the time,
        # in up to tail_parts batches of whole lines
        self._batch_starts = np.zeros(0, np.int64)
        if len(runs) > 1 and self.raster_tail > 0:
            late = [i + 1 for i, before in enumerate(ends[:-1]) if before >= (1 - self.raster_tail) * ends[-1]]
            first = late[0] if late else len(runs) - 1
            # a row may be flown as more than one run (the last column, off the raster's step, is one)
            starts = [a for i, (a, _) in enumerate(runs[first:], first) if i == first or pts[a, 0] != pts[a - 1, 0]]
            parts = np.array_split(np.array(starts), min(len(starts), self.tail_parts))
            self._batch_starts = flat[[part[0] for part in parts]]
        self.raster_batches_ = 1 + len(self._batch_starts)
        return flat

    def raster_batch(self, queue: np.ndarray) -> np.ndarray:
        """What to ask for now of the raster's ``queue`` (flat indices not yet asked for, in flying
        order): the lines before the tail while they are all left, then the tail's parts one by one."""
        at = np.flatnonzero(np.isin(queue[1:], self._batch_starts))
        return queue[:at[0] + 1] if len(at) else queue

    def ask_raster(self, queue: np.ndarray, maps, *, asked_ahead: bool) -> np.ndarray:
        """`raster_batch` of ``queue``; where it is asked for ahead (a batch is being flown) with part of
        the raster measured, one stage of the maps' build (`SamplingMaps.begin_build`), the last stage
        coming with the first segments once the raster is all asked for."""
        if asked_ahead and maps.n_measured and not maps.ready:
            if not maps.building:
                maps.begin_build(self.raster_batches_in(queue) + 1)
            maps.build_step()
        return self.raster_batch(queue)

    def ask_segments(self, maps, candidates: np.ndarray, start, spent: float | None,
                     pending: np.ndarray) -> np.ndarray:
        """`next_batch` from the sampler's maps (`steering.maps.SamplingMaps`); pixels measured but not yet in
        the maps (`SamplingMaps.late`, the tail of a build in stages) count as pending."""
        informing = pending.copy()
        informing.ravel()[maps.late] = True
        return self.next_batch(maps.erd, maps.distance, candidates, start, spent, informing)

    def raster_batches_in(self, queue: np.ndarray) -> int:
        """How many batches `raster_batch` makes of ``queue``."""
        return 0 if len(queue) == 0 else 1 + int(np.isin(queue[1:], self._batch_starts).sum())

    def next_batch(self, erd: np.ndarray, distance: np.ndarray, candidates: np.ndarray, start=None,
                   spent: float | None = None, pending: np.ndarray | None = None) -> np.ndarray:
        """The next segments, in flying order, as flat indices; empty once the budget is spent.

        Parameters
        ----------
        erd, distance : (H, W) arrays
            Predicted ERD and distance to the nearest measurement.
        candidates : (H, W) bool array
            Pixels that may be measured (not measured, pending or excluded).
        start : (row, col), optional
            Where the stage is.
        spent : float, optional
            Beam time the scan has spent so far, as measured (pauses, flights flown again, earlier
            runs of a resumed scan); the plan goes on from it where it exceeds `planned_`.
        pending : (H, W) bool array, optional
            Pixels asked for and not yet measured (a batch being flown while this one is chosen):
            a pixel nearer to one of them than to any measurement counts as informed already.
        """
        if spent is not None:
            self.planned_ = max(self.planned_, float(spent))
        H, W = self.shape
        t = self.timing
        gain = np.where(candidates, erd, 0.0).astype(np.float64)
        if pending is not None and pending.any():
            gain[distance_transform_edt(~pending) < distance] = 0.0
        here = np.asarray(start if start is not None else (0, 0), dtype=np.float64)
        segments = []
        sums = {step: self._window_sums(gain, candidates, distance, step) for step in self.column_steps_}
        for _ in range(self.segments_per_batch):
            best = self._best_segment(sums, here)
            if best is None:
                break
            row, a, b, step = best
            cols = np.flatnonzero(candidates[row, a:b] & (np.arange(a, b) % step == 0)) + a
            seg = np.column_stack([np.full(len(cols), row), cols])
            if np.abs(seg[-1] - here).sum() < np.abs(seg[0] - here).sum():
                seg = seg[::-1]  # fly from the end nearer the stage
            cost = t.route_time(seg, mode="fly", start=here)
            if self.planned_ + cost > self.budget:
                break
            self.planned_ += cost
            segments.append(seg)
            here = seg[-1].astype(np.float64)
            reach = int(np.ceil(float(np.mean(distance[row, a:b]))))
            near = slice(max(0, row - reach), row + reach + 1)
            gain[near, a:b] = 0.0
            candidates = candidates.copy()
            candidates[row, cols] = False
            for step, (cs, cn) in sums.items():
                cs[near], cn[near] = self._window_sums(gain[near], candidates[near], distance[near], step)
        if not segments:
            return np.zeros(0, np.int64)
        pts = np.vstack(segments)
        return pts[:, 0] * W + pts[:, 1]

    @staticmethod
    def _window_sums(gain: np.ndarray, candidates: np.ndarray, distance: np.ndarray, step: int):
        """Per row, cumulative sums (a leading 0 column) of the gain and of the candidates flown at column ``step``."""
        H, W = gain.shape
        on = np.arange(W) % step == 0
        # a pixel's ERD assumes its neighbours stay unmeasured: pixels flown ``step`` apart share what a
        # measurement at ``distance`` from the nearest one would reveal, in proportion step / distance
        shared = np.minimum(1.0, step / np.maximum(distance, 1.0))
        cs = np.concatenate([np.zeros((H, 1)), np.cumsum(gain * shared * on, axis=1)], axis=1)
        cn = np.concatenate([np.zeros((H, 1)), np.cumsum(candidates & on, axis=1)], axis=1)
        return cs, cn

    def _best_segment(self, sums: dict, here: np.ndarray):
        """(row, start, stop, step) of the window with the most ERD per second, or None; ``sums`` holds
        `_window_sums` per column step."""
        H, W = self.shape
        t = self.timing
        rows = np.arange(H)[:, None]
        best, best_score = None, 0.0
        for step in self.column_steps_:
            cs, cn = sums[step]
            for share in SEGMENT_LENGTHS:
                n = max(2, min(W, int(round(share * W))))
                starts = np.arange(0, W - n + 1, max(1, n // 4))
                g = cs[:, starts + n] - cs[:, starts]
                k = cn[:, starts + n] - cn[:, starts]
                travel = np.maximum(t.move_times(rows - here[0]), t.move_times(starts[None, :] - here[1]))
                score = g / (t.line_overhead + k * t.pixel_time(step) + travel)
                score[k < 1] = 0.0
                i = np.unravel_index(np.argmax(score), score.shape)
                if score[i] > best_score:
                    best_score = float(score[i])
                    best = (int(i[0]), int(starts[i[1]]), int(starts[i[1]] + n), step)
        return best
