"""What the benchmarks run and compare against, and how they time decisions: a `Sampler` driven to given
fractions, a regular grid, python-adaptive's ``Learner2D`` (points snapped to pixels) and the decision
time of a `Sampler` on a synthetic sample."""

from __future__ import annotations

import time

import numpy as np

from ..loop import run
from ..reconstruction import reconstruct_linear
from ..sampler import Sampler
from ..stopping import StopCriteria

__all__ = ["grid_points", "run_sampler", "run_learner2d", "decision_times", "reconstruct_from_points"]


def grid_points(shape: tuple[int, int], fraction: float) -> np.ndarray:
    """A regular grid (corners included) of about ``fraction`` of the pixels."""
    H, W = shape
    s = np.sqrt(fraction)
    nr, nc = max(2, round(H * s)), max(2, round(W * s))
    rr, cc = np.meshgrid(np.round(np.linspace(0, H - 1, nr)), np.round(np.linspace(0, W - 1, nc)), indexing="ij")
    return np.unique(np.column_stack([rr.ravel(), cc.ravel()]).astype(np.int64), axis=0)


def reconstruct_from_points(truth: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Delaunay-linear reconstruction of ``truth`` from its values at pixels ``pts``."""
    return reconstruct_linear(truth.shape, pts, truth[pts[:, 0], pts[:, 1]])


def run_sampler(truth: np.ndarray, fractions, *, seed: int = 0, model=None, batch_size=None,
                channels: int = 1) -> dict:
    """Drive a `Sampler` on a known image ((H, W), or (H, W, C) with ``channels``) to each of ``fractions``:
    ``recon`` and ``points`` (the measured pixels) at each, and the timings."""
    N = truth.shape[0] * truth.shape[1]
    targets = sorted(fractions)
    s = Sampler(truth.shape[:2], model=model, stop=StopCriteria(max_fraction=max(targets)), seed=seed,
                batch_size=batch_size, channels=channels)
    out: dict = {"recon": {}, "points": {}}

    def batch_size_to_next_target(s: Sampler) -> int | None:
        # land exactly on each target fraction
        target = next(int(round(t * N)) for t in targets if t not in out["recon"])
        return min(target - s.n_measured, s.batch_size_) if s.n_measured else None

    def record(s: Sampler, points, values) -> bool:
        for t in targets:
            if t not in out["recon"] and s.n_measured >= int(round(t * N)):
                out["recon"][t], out["points"][t] = s.reconstruction, s.measured_points
        return len(out["recon"]) == len(targets)

    run(s, lambda p: truth[p[:, 0], p[:, 1]], n=batch_size_to_next_target, on_batch=record)
    for t in targets:
        out["recon"].setdefault(t, s.reconstruction)
        out["points"].setdefault(t, s.measured_points)
    out["ask_times"] = np.asarray(s.ask_times_[1:] or [0.0])
    out["tell_times"] = np.asarray(s.tell_times_[1:] or [0.0])
    out["batch_size"] = s.batch_size_
    return out


def run_learner2d(truth: np.ndarray, fractions, *, batch: int = 50, max_idle_asks: int = 200) -> dict:
    """python-adaptive ``Learner2D``, points snapped to pixels, linear reconstruction.

    The loss is Learner2D's default loss, except that triangles smaller than half a pixel cell get
    zero loss (adaptive's ``resolution_loss_function``): snapped to pixels, finer points measure
    nothing new, and on sharp edges the default loss would otherwise refine below a pixel forever.
    If ``max_idle_asks`` asks in a row bring no new pixel, the learner is stopped where it is.
    """
    import adaptive
    from adaptive.learner.learner2D import resolution_loss_function

    H, W = truth.shape
    seen: dict[tuple[int, int], float] = {}

    def snap(xy):
        return min(max(int(round(xy[0])), 0), H - 1), min(max(int(round(xy[1])), 0), W - 1)

    min_side = float(np.sqrt(0.5 / (max(H - 1, 1) * max(W - 1, 1))))
    learner = adaptive.Learner2D(
        lambda xy: float(truth[snap(xy)]),
        bounds=[(0, H - 1), (0, W - 1)],
        loss_per_triangle=resolution_loss_function(min_distance=min_side),
    )
    out: dict = {"recon": {}, "points": {}, "ask_times": []}
    idle = 0
    for t in sorted(fractions):
        target = int(round(t * truth.size))
        while len(seen) < target and idle < max_idle_asks:
            t0 = time.perf_counter()
            pts, _ = learner.ask(min(batch, target - len(seen)))
            out["ask_times"].append(time.perf_counter() - t0)
            before = len(seen)
            for p in pts:
                rc = snap(p)
                seen[rc] = float(truth[rc])
                learner.tell(p, seen[rc])
            idle = idle + 1 if len(seen) == before else 0
        pts = np.array(list(seen.keys()), dtype=np.int64)
        out["points"][t] = pts
        out["recon"][t] = reconstruct_from_points(truth, pts)
    out["ask_times"] = np.asarray(out["ask_times"])
    return out


def decision_times(
    shape: tuple[int, int], *, fraction: float = 0.1, batch: int = 50, steps: int = 30, seed: int = 0, model=None,
    channels: int = 1,
) -> dict:
    """Time ``ask`` and ``tell`` for batches of ``batch`` on a grid with ``fraction`` measured.

    The sample is a synthetic particle image of that shape (with several ``channels``, one synthetic
    image of another kind per channel). The state is reached by the initial pattern plus random
    points up to ``fraction``, then ``steps`` ask/tell rounds are timed.
    """
    from ..synthetic import synthetic_image

    rng = np.random.default_rng(seed)
    side = max(shape)
    kinds = ("particles", "grains", "flakes", "peaks")
    truth = synthetic_image("particles", side, rng=rng)[: shape[0], : shape[1]]
    if channels > 1:
        truth = np.stack([truth] + [synthetic_image(kinds[c % 4], side, rng=np.random.default_rng([seed, c]))[
            : shape[0], : shape[1]] for c in range(1, channels)], axis=-1)
    s = Sampler(
        shape, model=model, batch_size=batch, stop=StopCriteria(max_fraction=min(1.0, fraction * 1.5)), seed=seed,
        channels=channels,
    )
    p = s.ask()
    s.tell(p, truth[p[:, 0], p[:, 1]])
    free = np.flatnonzero(~s.measured_mask)
    extra = rng.choice(free, max(0, int(fraction * shape[0] * shape[1]) - s.n_measured), replace=False)
    p = np.stack(np.divmod(extra, shape[1]), axis=1)
    s.tell(p, truth[p[:, 0], p[:, 1]])
    asks, tells = [], []
    pos = None
    for _ in range(steps):
        t0 = time.perf_counter()
        p = s.ask(start=pos)
        t1 = time.perf_counter()
        s.tell(p, truth[p[:, 0], p[:, 1]])
        t2 = time.perf_counter()
        asks.append(t1 - t0)
        tells.append(t2 - t1)
        pos = p[-1]
    a, t = np.asarray(asks), np.asarray(tells)
    return {"shape": list(shape), "fraction": fraction, "batch": batch, "steps": steps, "channels": channels,
            "ask_median_ms": 1e3 * float(np.median(a)), "ask_max_ms": 1e3 * float(a.max()),
            "tell_median_ms": 1e3 * float(np.median(t)), "tell_max_ms": 1e3 * float(t.max()),
            "decision_median_ms": 1e3 * float(np.median(a + t))}  # fmt: skip
