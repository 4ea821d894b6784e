"""Tune stopping criteria on reference images: ``smart-scan-tune`` (``python -m steering.tools.tune``).

A scientist names a target quality (SSIM, PSNR or NRMSE against the full scan). The `Sampler` is
replayed on reference images (full raster scans: image files, or arrays read back from a catalog),
recording at every batch the quality it has reached and the value of every data-driven stop
signal. Because a stop rule only decides *when* the replay ends, never *where* it samples, one
replay per image (up to the cap) tells when any threshold would have stopped it. For each rule the
tool reports the signal's value where each image reached the target, the threshold that best
stops every image there, and how far off that stop lands; it writes the best rule as a
JSON file of sampler settings (the rule and the probe share it holds for) the plan loads, a figure
and a short text report.

    smart-scan-tune IMAGES... --target ssim=0.90 [--cap 0.5] [--out stop.json]
        [--figure tune.png] [--report tune.txt] [--holdout IMAGES...] [--seed 0] [--batch-size N]
        [--probe-fraction 0.1] [--tolerance 0.25] [--margin 0.03] [--force]

IMAGES are files (TIFF/PNG/JPEG/NPY) or folders of them; ``--holdout`` images are not used to
choose thresholds, only to check them. Where the recommended rule stops an image (tuned on or held
out) further than ``--tolerance`` from where it reached the target, or worse than the target by more
than ``--margin``, the tool says so and writes no settings file (exit status 1) unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..erd import ERDNet, load_model
from ..images import as_image, load_image
from ..loop import run
from ..metrics import nrmse, psnr, ssim
from ..sampler import Sampler
from ..stopping import DATA_RULES, RISING_RULES, StopCriteria

__all__ = ["Trace", "RuleFit", "TuneResult", "replay", "replay_all", "tune", "evaluate", "untrustworthy", "find_images",
           "main"]

METRICS = {"ssim": (ssim, True), "psnr": (psnr, True), "nrmse": (nrmse, False)}  # (function, higher is better)
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy")


@dataclass
class Trace:
    """One replay: per batch, the fraction measured, the quality reached and the stop signals.

    Attributes
    ----------
    name : str
        The reference image.
    shape : (H, W)
    metric : str
        Quality metric recorded (``ssim``, ``psnr`` or ``nrmse``).
    fraction : (k,) array
        Fraction measured after each batch.
    quality : (k,) array
        The metric of the reconstruction against the reference after each batch.
    signals : dict of (k,) arrays
        Each stop signal after each batch (NaN while it is not yet defined), plus ``n_measured``.
    cap : float
        The replay's max_fraction.
    """

    name: str
    shape: tuple[int, int]
    metric: str
    fraction: np.ndarray
    quality: np.ndarray
    signals: dict[str, np.ndarray]
    cap: float

    def reached(self, target: float) -> float | None:
        """First fraction at which the quality met ``target`` (None if it never did below the cap)."""
        higher = METRICS[self.metric][1]
        ok = self.quality >= target if higher else self.quality <= target
        hit = np.flatnonzero(ok)
        return float(self.fraction[hit[0]]) if len(hit) else None

    def stop(self, criteria: StopCriteria) -> tuple[float, str]:
        """Fraction and reason at which ``criteria`` would have ended this replay (the cap otherwise)."""
        n_pixels = self.shape[0] * self.shape[1]
        for i in range(len(self.fraction)):
            signals = {"n_measured": int(self.signals["n_measured"][i]), "n_pixels": n_pixels,
                       "fraction": float(self.fraction[i])}
            for rule in DATA_RULES:
                value = self.signals[rule][i]
                if np.isfinite(value):
                    signals[rule] = float(value)
            reason = criteria.check(signals)
            if reason is not None:
                return float(self.fraction[i]), reason
        end = float(self.fraction[-1])
        if end >= self.cap - 0.5 / n_pixels:
            return end, f"max_fraction reached at the cap {self.cap}"
        return end, f"not stopped by the end of the replay at {end:.4f} (the target was passed long before)"


@dataclass
class RuleFit:
    """How one rule would have stopped the tuning images at the target.

    Attributes
    ----------
    rule : str
    at_target : dict
        The rule's signal where each image reached the target.
    threshold : float or None
        The threshold that stops the tuning images closest to their targets (None: no usable value).
    stops : dict
        Fraction at which that threshold stops each image.
    errors : dict
        Relative stop error per image: ``stop / target - 1``.
    """

    rule: str
    at_target: dict[str, float]
    threshold: float | None
    stops: dict[str, float] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """Mean absolute relative error (lower is better; inf without a threshold)."""
        return float(np.mean(np.abs(list(self.errors.values())))) if self.errors else float("inf")

    @property
    def misses(self) -> int:
        """Images stopped more than 25 % (relative) away from their target fraction."""
        return int(sum(abs(e) > 0.25 for e in self.errors.values())) if self.errors else 10**9

    @property
    def worst(self) -> float:
        """Largest absolute relative error."""
        return float(np.max(np.abs(list(self.errors.values())))) if self.errors else float("inf")


@dataclass
class TuneResult:
    """What `tune` found.

    Attributes
    ----------
    criteria : StopCriteria
        The recommendation: the best rule at its threshold, with the cap and minimum fraction.
    best : str
        The recommended rule.
    fits : dict of RuleFit
        Every rule's fit.
    traces : dict of Trace
        The replays of the tuning images.
    targets : dict
        Fraction at which each tuning image reached the target (None: never).
    metric, target : str, float
    probe_fraction : float
        The sampler's share of random probes the replays ran with (the thresholds hold for it).
    batch_size : int or None
        The batch size the replays ran with (None: the sampler's default).
    model : str or None
        The model file the replays ran with (None: the shipped model, or a model given as an object).
    """

    criteria: StopCriteria
    best: str
    fits: dict[str, RuleFit]
    traces: dict[str, Trace]
    targets: dict[str, float | None]
    metric: str
    target: float
    probe_fraction: float = 0.0
    batch_size: int | None = None
    model: str | None = None

    def sampler_settings(self) -> dict:
        """The `Sampler` settings the thresholds hold for; ``smart_scan(sampler=...)`` takes them or their JSON file.

        The stop criteria (the recommended rule, the cap as ``max_fraction``, ``min_fraction``), the
        share of probes, and the batch size and model file where the replays were given them.
        """
        settings = {"probe_fraction": self.probe_fraction, "stop": self.criteria.to_dict()}
        if self.batch_size is not None:
            settings["batch_size"] = int(self.batch_size)
        if self.model is not None:
            settings["model"] = self.model
        return settings


def replay(image, *, name: str = "image", metric: str = "ssim", cap: float = 0.5, seed: int | None = 0,
           model=None, batch_size: int | None = None, target: float | None = None,
           overshoot: float = 1.5, probe_fraction: float = 0.0) -> Trace:
    """Run the `Sampler` on a reference image up to ``cap``, recording quality and stop signals per batch.

    Parameters
    ----------
    image : 2-D array
        The full raster scan (the truth).
    name : str
        Label for reports.
    metric : {"ssim", "psnr", "nrmse"}
    cap : float
        Fraction at which the replay ends.
    seed, model, batch_size
        Passed to `Sampler`; keep them as the scans will use them.
    target : float, optional
        End early, once the quality has met ``target`` and the fraction is ``overshoot`` times the
        fraction where it first did: no threshold that stops later than that is worth knowing.
    overshoot : float
        See ``target``.
    probe_fraction : float
        `Sampler.probe_fraction` of the scans: random probes change where the replay samples.
    """
    image = as_image(image, what=name)
    if np.ptp(image) == 0:
        raise ValueError(f"reference image {name!r} is blank: every pixel is {image.flat[0]:g}, so no sampling can "
                         "improve on another and it cannot set a stop threshold; leave it out")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    if not 0.0 < cap <= 1.0:
        raise ValueError(f"cap must be in (0, 1], got {cap}")
    score, higher = METRICS[metric]
    reached_at = None
    sampler = Sampler(image.shape, model=model, batch_size=batch_size, seed=seed, probe_fraction=probe_fraction,
                      stop=StopCriteria(max_fraction=cap, min_fraction=0.0))
    fraction, quality = [], []
    signals: dict[str, list] = {rule: [] for rule in ("n_measured", *DATA_RULES)}

    def record(sampler: Sampler, points, values) -> bool:
        nonlocal reached_at
        recon = sampler.reconstruction
        if not np.all(np.isfinite(recon)):
            return False
        # the signals the stop check saw at this tell (computing them again costs a pass over the grid)
        current = sampler.history_[-1] if sampler.history_ else sampler.signals
        fraction.append(sampler.fraction)
        quality.append(score(image, recon))
        signals["n_measured"].append(sampler.n_measured)
        for rule in DATA_RULES:
            signals[rule].append(current.get(rule, np.nan))
        if target is not None:
            if reached_at is None and (quality[-1] >= target if higher else quality[-1] <= target):
                reached_at = sampler.fraction
            return reached_at is not None and sampler.fraction >= overshoot * reached_at
        return False

    run(sampler, lambda p: image[p[:, 0], p[:, 1]], on_batch=record)
    return Trace(name, image.shape, metric, np.asarray(fraction), np.asarray(quality),
                 {k: np.asarray(v, dtype=np.float64) for k, v in signals.items()}, float(cap))


def _replay_job(job: tuple) -> Trace:
    import torch

    torch.set_num_threads(1)  # one image per process; threads would only compete
    image, kwargs = job
    return replay(image, **kwargs)


def replay_all(references: dict[str, np.ndarray], *, jobs: int = 1, progress: bool = True, desc: str = "replaying",
               **kwargs) -> dict[str, Trace]:
    """`replay` every reference (in ``jobs`` processes), with a progress bar; same results for any ``jobs``."""
    work = {name: (image, {"name": name, **kwargs}) for name, image in references.items()}
    bar = tqdm(total=len(work), desc=desc, unit="image", disable=not progress)
    traces = {}
    if jobs <= 1:
        for name, (image, kwargs) in work.items():
            traces[name] = replay(image, **kwargs)  # in this process: its torch threads stay as they are
            bar.update()
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # Fresh interpreters with one thread each: forked copies of a process whose OpenMP and BLAS
        # pools are running, or several multi-threaded workers on few cores, ran 5x slower here.
        single = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        saved = {k: os.environ.get(k) for k in single}
        os.environ.update(single)
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = {pool.submit(_replay_job, job): name for name, job in work.items()}
                for future in as_completed(futures):
                    traces[futures[future]] = future.result()
                    bar.update()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    bar.close()
    return {name: traces[name] for name in references}


def _signal_at(trace: Trace, rule: str, fraction: float) -> float:
    i = int(np.searchsorted(trace.fraction, fraction))
    values = trace.signals[rule][: i + 1]
    finite = values[np.isfinite(values)]
    return float(finite[-1]) if len(finite) else float("nan")


def _fit_rule(rule: str, traces: dict[str, Trace], targets: dict[str, float], min_fraction: float,
              cap: float) -> RuleFit:
    at_target = {name: _signal_at(traces[name], rule, f) for name, f in targets.items()}
    usable = [v for v in at_target.values() if np.isfinite(v) and v > 0]
    if not usable:
        return RuleFit(rule, at_target, None)
    # Candidates: the values at the targets, and a grid spanning them with some margin.
    lo, hi = min(usable), max(usable)
    if rule in RISING_RULES:
        grid = np.linspace(max(lo - 0.1, 0.01), min(hi + 0.05, 0.999), 200)
    else:
        grid = np.geomspace(lo / 2, hi * 2, 200)
    candidates = np.unique(np.concatenate([grid, usable]))
    best = None
    for t in candidates:
        criteria = StopCriteria(max_fraction=cap, min_fraction=min_fraction, **{rule: float(t)})
        stops = {name: traces[name].stop(criteria)[0] for name in targets}
        errors = {name: stops[name] / targets[name] - 1.0 for name in targets}
        off = np.abs(list(errors.values()))
        # first as many images as possible within +-25 % of their target, then the closest on average
        key = (int(np.sum(off > 0.25)), float(np.mean(off)), float(np.max(off)))
        if best is None or key < best[0]:
            best = (key, float(t), stops, errors)
    _, threshold, stops, errors = best
    return RuleFit(rule, at_target, threshold, stops, errors)


def check_settings(*, metric: str, target: float, cap: float, min_fraction: float = 0.0, jobs: int = 1,
                   model=None, probe_fraction: float = 0.0, batch_size: int | None = None,
                   tolerance: float = 0.25, margin: float | None = None) -> None:
    """Refuse bad tuning settings before any replay, with an error naming the setting and its range."""
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size}")
    if not 0.0 < float(tolerance) < math.inf:
        raise ValueError(f"tolerance must be a relative stop error > 0 (0.25: +-25%), got {tolerance}")
    if margin is not None and not 0.0 <= float(margin) < math.inf:
        raise ValueError(f"margin must be >= 0, got {margin}")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    limits = {"ssim": (0.0, 1.0), "psnr": (0.0, math.inf), "nrmse": (0.0, math.inf)}[metric]
    if not (limits[0] < float(target) <= limits[1]):
        raise ValueError(f"target for {metric} must be in ({limits[0]:g}, {limits[1]:g}], got {target}")
    if not 0.0 < float(cap) <= 1.0:
        raise ValueError(f"cap must be in (0, 1], got {cap}")
    if not 0.0 <= float(min_fraction) < float(cap):
        raise ValueError(f"min_fraction must be in [0, cap={cap}), got {min_fraction}")
    if not 0.0 <= float(probe_fraction) <= 0.5:
        raise ValueError(f"probe_fraction must be in [0, 0.5], got {probe_fraction}")
    if int(jobs) != jobs or jobs < 1:
        raise ValueError(f"jobs must be an integer >= 1, got {jobs}")
    if model is not None and not isinstance(model, ERDNet):
        load_model(model)  # a missing or bad model file fails here, not in every worker


def tune(references: dict[str, np.ndarray], *, metric: str = "ssim", target: float = 0.9, cap: float = 0.5,
         min_fraction: float = 0.02, seed: int | None = 0, model=None, batch_size: int | None = None,
         progress: bool = True, jobs: int = 1, probe_fraction: float = 0.0) -> TuneResult:
    """Find, for each stop rule, the threshold that stops the reference scans where they reach ``target``.

    Parameters
    ----------
    references : dict of name -> 2-D array
        Full raster scans.
    metric : {"ssim", "psnr", "nrmse"}
        Quality measure; SSIM and PSNR must reach at least ``target``, NRMSE at most.
    target : float
        The quality the scans should stop at.
    cap : float
        The scans' max_fraction (also where replays end).
    min_fraction : float
        No data-driven rule fires below this fraction.
    seed, model, batch_size
        The `Sampler` settings the scans will use.
    progress : bool
        Show a progress bar.
    jobs : int
        Processes replaying images side by side.
    probe_fraction : float
        Share of each batch measured at random (`Sampler.probe_fraction`); the thresholds hold only
        for scans with the same share, so it is part of the result's `TuneResult.sampler_settings`.

    Returns
    -------
    TuneResult
    """
    if not references:
        raise ValueError("no reference images given")
    check_settings(metric=metric, target=target, cap=cap, min_fraction=min_fraction, jobs=jobs, model=model,
                   probe_fraction=probe_fraction)
    traces = replay_all(references, jobs=jobs, progress=progress, desc="replaying references", metric=metric,
                        cap=cap, seed=seed, model=model, batch_size=batch_size, target=target,
                        probe_fraction=probe_fraction)
    targets = {name: trace.reached(target) for name, trace in traces.items()}
    reached = {name: f for name, f in targets.items() if f is not None}
    if not reached:
        raise ValueError(f"no reference reached {metric} {target} below the cap {cap}: "
                         "lower the target or raise the cap")
    fits = {rule: _fit_rule(rule, traces, reached, min_fraction, cap) for rule in DATA_RULES}
    best = min(fits, key=lambda r: (fits[r].misses, fits[r].score, fits[r].worst))
    if fits[best].threshold is None:
        raise ValueError("no stop signal was defined at the targets")
    criteria = StopCriteria(max_fraction=cap, min_fraction=min_fraction, **{best: fits[best].threshold})
    return TuneResult(criteria, best, fits, traces, targets, metric, target, float(probe_fraction), batch_size,
                      str(model) if isinstance(model, (str, Path)) else None)


def evaluate(criteria: StopCriteria, references: dict[str, np.ndarray], *, metric: str = "ssim",
             target: float = 0.9, seed: int | None = 0, model=None, batch_size: int | None = None,
             progress: bool = True, traces: dict[str, Trace] | None = None, jobs: int = 1,
             probe_fraction: float = 0.0) -> list[dict]:
    """Apply ``criteria`` to references and compare where they stop with where the target was reached.

    Returns one row per image: ``image``, ``target_fraction`` (None if never reached in the replay),
    ``stop_fraction``, ``error`` (relative), ``quality_at_stop``, ``reason``. The replays use
    ``probe_fraction`` (`Sampler.probe_fraction`) as the scans will.
    """
    cap = criteria.max_fraction or 1.0
    traces = dict(traces or {})
    missing = {name: image for name, image in references.items() if name not in traces}
    traces.update(replay_all(missing, jobs=jobs, progress=progress, desc="replaying held-out", metric=metric,
                             cap=cap, seed=seed, model=model, batch_size=batch_size, target=target,
                             probe_fraction=probe_fraction))
    rows = []
    for name in references:
        trace = traces[name]
        reached = trace.reached(target)
        stop, reason = trace.stop(criteria)
        i = int(np.searchsorted(trace.fraction, stop))
        rows.append({"image": name, "target_fraction": reached, "stop_fraction": stop,
                     "error": None if reached is None else stop / reached - 1.0,
                     "quality_at_stop": float(trace.quality[min(i, len(trace.quality) - 1)]), "reason": reason})
    return rows


# How far below the target a stop may land before the recommendation is refused, per metric.
MARGINS = {"ssim": 0.03, "psnr": 1.0, "nrmse": 0.01}


def untrustworthy(result: TuneResult, holdout: list[dict] | None = None, *, tolerance: float = 0.25,
                  margin: float | None = None) -> list[str]:
    """Why the recommended rule should not be used, one line per image it fails; empty where it holds.

    A rule fails an image (tuned on, or held out) where it stops more than ``tolerance`` (relative)
    before or after the fraction at which the image reached the target, or where the quality at its
    stop is worse than the target by more than ``margin`` (an image that never reached the target
    may stop at the cap).

    Parameters
    ----------
    result : TuneResult
    holdout : list of dict, optional
        `evaluate`'s rows for the held-out images.
    tolerance : float
        Largest relative stop error accepted (0.25: within +-25% of the target's fraction).
    margin : float, optional
        Largest shortfall of quality at the stop, in the metric's units. Default: `MARGINS`.
    """
    margin = MARGINS[result.metric] if margin is None else float(margin)
    higher = METRICS[result.metric][1]
    tuned = evaluate(result.criteria, {name: None for name in result.traces}, metric=result.metric,
                     target=result.target, traces=result.traces, progress=False)
    problems = []
    for kind, rows in (("tuned on", tuned), ("held out", holdout or [])):
        for row in rows:
            what = []
            if row["error"] is not None and abs(row["error"]) > tolerance:
                what.append(f"stops {100 * abs(row['error']):.0f}% {'early' if row['error'] < 0 else 'late'} "
                            f"(at {row['stop_fraction']:.3f}, target reached at {row['target_fraction']:.3f})")
            short = result.target - row["quality_at_stop"] if higher else row["quality_at_stop"] - result.target
            if short > margin:
                what.append(f"stops at {result.metric} {row['quality_at_stop']:.4g}, {short:.3g} worse than the target")
            if what:
                problems.append(f"{row['image']} ({kind}): {'; '.join(what)}")
    return problems


def find_images(paths) -> dict[str, np.ndarray]:
    """Load image files, and every image file in folders, keyed by file name."""
    images = {}
    for p in map(Path, paths):
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        elif p.exists():
            files = [p]
        else:
            raise FileNotFoundError(f"no such image or folder: {p}")
        for f in files:
            images[f.name if f.name not in images else str(f)] = load_image(f)
    if not images:
        raise ValueError(f"no images found in {[str(p) for p in paths]}")
    return images


def format_report(result: TuneResult, holdout: list[dict] | None = None) -> str:
    """A short text report: targets, each rule's fit, the recommendation and the held-out check."""
    lines = [f"Target: {result.metric} {'>=' if METRICS[result.metric][1] else '<='} {result.target} "
             f"(cap {result.criteria.max_fraction}, min_fraction {result.criteria.min_fraction})", "",
             "Fraction at which each tuning image reached the target:"]
    for name, f in result.targets.items():
        lines.append(f"  {name:40s} {'not reached' if f is None else f'{f:.4f}'}")
    lines += ["", "Per rule: signal at the target (min / median / max over images), best threshold, stop error:"]
    for rule, fit in result.fits.items():
        vals = np.array([v for v in fit.at_target.values() if np.isfinite(v)])
        spread = f"{vals.min():.4g} / {np.median(vals):.4g} / {vals.max():.4g}" if len(vals) else "undefined"
        thr = "none" if fit.threshold is None else f"{fit.threshold:.4g}"
        op = ">=" if rule in RISING_RULES else "<="
        lines.append(f"  {rule:17s} at target {spread:32s} threshold {op} {thr:>8s}  "
                     f"mean |error| {100 * fit.score:5.1f}%  worst {100 * fit.worst:5.1f}%  "
                     f"outside +-25%: {fit.misses if fit.errors else '-'}")
        for name, stop in fit.stops.items():
            lines.append(f"      {name:36s} signal at target {fit.at_target[name]:<10.4g} stops at {stop:.4f} "
                         f"(target {result.targets[name]:.4f}, {100 * fit.errors[name]:+.1f}%)")
    op = ">=" if result.best in RISING_RULES else "<="
    lines += ["", f"Recommended: {result.best} {op} {result.fits[result.best].threshold:.4g}",
              json.dumps(result.sampler_settings())]
    if holdout:
        lines += ["", "Held-out images (not used for the thresholds):",
                  f"  {'image':36s} {'target':>8s} {'stop':>8s} {'error':>8s} {result.metric:>8s}  reason"]
        for row in holdout:
            tf = "never" if row["target_fraction"] is None else f"{row['target_fraction']:.4f}"
            err = "" if row["error"] is None else f"{100 * row['error']:+.1f}%"
            lines.append(f"  {row['image']:36s} {tf:>8s} {row['stop_fraction']:8.4f} {err:>8s} "
                         f"{row['quality_at_stop']:8.4f}  {row['reason']}")
    return "\n".join(lines)


def plot(result: TuneResult, path, holdout_traces: dict[str, Trace] | None = None) -> Path:
    """Figure: quality and each rule's signal versus fraction, thresholds and recommended stops marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = {**result.traces, **(holdout_traces or {})}
    panels = ["quality", *DATA_RULES]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.8), constrained_layout=True)
    colours = plt.cm.tab20(np.linspace(0, 1, max(len(traces), 1)))
    for (name, trace), colour in zip(traces.items(), colours, strict=False):
        held = holdout_traces is not None and name in holdout_traces
        style = dict(color=colour, lw=1.2, ls="--" if held else "-", label=name + (" (held out)" if held else ""))
        stop, _ = trace.stop(result.criteria)
        for ax, panel in zip(axes, panels, strict=True):
            y = trace.quality if panel == "quality" else trace.signals[panel]
            ax.plot(trace.fraction, y, **style)
            i = min(int(np.searchsorted(trace.fraction, stop)), len(y) - 1)
            ax.plot([trace.fraction[i]], [y[i]], "o", color=colour, ms=4)
    axes[0].axhline(result.target, color="k", lw=0.8, ls=":")
    axes[0].set_ylabel(result.metric)
    axes[0].set_title(f"quality (target {result.target}; dots: recommended stop)", fontsize=9)
    for ax, rule in zip(axes[1:], DATA_RULES, strict=True):
        if rule not in RISING_RULES:
            ax.set_yscale("log")
        thr = result.fits[rule].threshold
        if thr is not None:
            ax.axhline(thr, color="k", lw=0.8, ls=":")
        mark = " (recommended)" if rule == result.best else ""
        ax.set_title(f"{rule}{mark}: threshold {thr:.3g}" if thr else rule, fontsize=9)
    for ax in axes:
        ax.set_xlabel("fraction measured")
    axes[0].legend(fontsize=6, loc="lower right")
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _parse_target(text: str) -> tuple[str, float]:
    try:
        metric, value = text.split("=")
        metric = metric.strip().lower()
        value = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"target must look like ssim=0.90, got {text!r}") from None
    if metric not in METRICS:
        raise argparse.ArgumentTypeError(f"target metric must be one of {sorted(METRICS)}, got {metric!r}")
    return metric, value


def main(argv=None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="smart-scan-tune", description=__doc__.split("\n\n")[0])
    ap.add_argument("images", nargs="+", help="reference full scans: image files or folders")
    ap.add_argument("--target", type=_parse_target, default=("ssim", 0.9), help="quality to stop at, e.g. ssim=0.90")
    ap.add_argument("--cap", type=float, default=0.5, help="max_fraction of the scans (replays end there)")
    ap.add_argument("--min-fraction", type=float, default=0.02, help="no data-driven stop below this fraction")
    ap.add_argument("--holdout", nargs="*", default=[], help="images to check the thresholds on, not to tune them")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--probe-fraction", type=float, default=0.0,
                    help="share of each batch measured at random, for an unbiased ssim_estimate (e.g. 0.1)")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes replaying side by side")
    ap.add_argument("--batch-size", type=int, default=None, help="the scans' batch size (default: the sampler's)")
    ap.add_argument("--model", default=None, help="ERD model file (default: the shipped one)")
    ap.add_argument("--tolerance", type=float, default=0.25,
                    help="refuse a rule that stops an image further than this from its target's fraction (relative)")
    ap.add_argument("--margin", type=float, default=None,
                    help="refuse a rule that stops an image this much worse than the target "
                         f"(default: {', '.join(f'{k} {v:g}' for k, v in MARGINS.items())})")
    ap.add_argument("--force", action="store_true", help="write the settings file even for a refused rule")
    ap.add_argument("--out", default="stop_criteria.json",
                    help="sampler settings JSON (stop criteria and probe_fraction) for smart_scan(sampler=FILE)")
    ap.add_argument("--figure", default="stop_tuning.png")
    ap.add_argument("--report", default="stop_tuning.txt")
    args = ap.parse_args(argv)
    metric, target = args.target
    t0 = time.perf_counter()
    try:
        check_settings(metric=metric, target=target, cap=args.cap, min_fraction=args.min_fraction, jobs=args.jobs,
                       model=args.model, probe_fraction=args.probe_fraction, batch_size=args.batch_size,
                       tolerance=args.tolerance, margin=args.margin)
        references = find_images(args.images)
        holdout_images = find_images(args.holdout) if args.holdout else {}
        overlap = set(references) & set(holdout_images)
        if overlap:
            raise ValueError(f"images both tuned on and held out: {sorted(overlap)}")
        result = tune(references, metric=metric, target=target, cap=args.cap, min_fraction=args.min_fraction,
                      seed=args.seed, model=args.model, jobs=args.jobs, probe_fraction=args.probe_fraction,
                      batch_size=args.batch_size)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    holdout, holdout_traces = None, None
    if holdout_images:
        holdout_traces = replay_all(holdout_images, jobs=args.jobs, desc="replaying held-out", metric=metric,
                                    cap=args.cap, seed=args.seed, model=args.model, target=target,
                                    probe_fraction=args.probe_fraction, batch_size=args.batch_size)
        holdout = evaluate(result.criteria, holdout_images, metric=metric, target=target, traces=holdout_traces,
                           progress=False, probe_fraction=args.probe_fraction)
    problems = untrustworthy(result, holdout, tolerance=args.tolerance, margin=args.margin)
    report = format_report(result, holdout)
    if problems:
        margin = MARGINS[metric] if args.margin is None else args.margin
        report += (f"\n\nNOT TRUSTWORTHY: the recommended rule misses the target by more than "
                   f"+-{100 * args.tolerance:g}% of the fraction, or by more than {margin:g} in {metric}, on "
                   f"{len(problems)} image(s):\n"
                   + "\n".join(f"  {line}" for line in problems))
    plot(result, args.figure, holdout_traces)
    Path(args.report).write_text(report + "\n")
    print(report)
    took = f"in {time.perf_counter() - t0:.0f} s"
    if problems and not args.force:
        print(f"\nwrote NO settings file ({args.out}): a scan stopped by this rule could stop far from the target. "
              f"More reference images like the scans to come, another target or cap, or --force (at your risk). "
              f"Wrote {args.figure}, {args.report} {took}", file=sys.stderr)
        return 1
    Path(args.out).write_text(json.dumps(result.sampler_settings(), indent=2) + "\n")
    forced = " (forced: see NOT TRUSTWORTHY above)" if problems else ""
    print(f"\nwrote {args.out}{forced}, {args.figure}, {args.report} {took}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
