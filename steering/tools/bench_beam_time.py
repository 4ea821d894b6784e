"""Benchmark at equal beam time: fly mode, point mode and coarse fly rasters, in one run.

``python -m steering.bench --beam-time``. A scientist pays in beam time, not in points: for each
image of the data folder, each scenario (a stage of 50 nm pixels, 0.2 mm/s, 2 mm/s², 20 ms settle
and 0.3 s per flown line, with a 10 ms or a 200 ms dwell) and each budget (a share of a full fly
raster's time), it scores the Delaunay-linear reconstruction of

- ``fly``: the `Sampler` in fly mode (`steering.fly`), the budget as ``max_beam_time``;
- ``point``: the `Sampler` in point mode, every point a move, a settle and a dwell, until the
  budget is spent;
- ``raster``: the finest coarse fly raster, every k-th row and column, that fits the budget;
- ``fly_raster``: the raster fly mode starts from, stretched to the whole budget (rows further
  apart than columns), without any steering: what the adaptive segments add is ``fly`` minus it.
"""

from __future__ import annotations

import sys

import numpy as np

from ..fly import coarse_raster, fly_raster, full_raster_time, raster_positions, raster_time
from ..loop import run
from ..metrics import quality
from ..reconstruction import reconstruct_linear
from ..sampler import Sampler
from ..stopping import StopCriteria
from ..timing import StageTiming

__all__ = ["SCENARIOS", "BUDGETS", "METHODS", "run_fly", "run_point", "finest_raster", "beam_time_benchmark",
           "format_beam_time", "fly_decision_times", "format_fly_decision_times"]

#: The stage of the issue that sized the problem (lengths in mm), with a fast and a slow detector.
SCENARIOS = {
    "fast": StageTiming(pixel_size=50e-6, dwell=0.01, velocity=0.2, acceleration=2.0, settle=0.02, line_overhead=0.3),
    "slow": StageTiming(pixel_size=50e-6, dwell=0.2, velocity=0.2, acceleration=2.0, settle=0.02, line_overhead=0.3),
}
#: Budgets as shares of a full fly raster's beam time.
BUDGETS = (0.05, 0.10, 0.25)
METHODS = ("fly", "point", "raster", "fly_raster")


def run_fly(truth: np.ndarray, timing: StageTiming, seconds: float, *, model=None, seed: int = 0) -> tuple:
    """Fly-mode sampling of ``truth`` within ``seconds``; ``(points, beam time of its route)``."""
    s = Sampler(truth.shape, model=model, seed=seed, timing=timing, scan_mode="fly",
                stop=StopCriteria(max_fraction=None, max_beam_time=seconds))
    route = []

    def measure(p):
        route.append(p)
        return truth[p[:, 0], p[:, 1]]

    run(s, measure)
    return s.measured_points, timing.route_time(np.vstack(route), mode="fly")


def run_point(truth: np.ndarray, timing: StageTiming, seconds: float, *, model=None, seed: int = 0) -> tuple:
    """Point-mode sampling of ``truth``, each point a step, until ``seconds`` are spent; ``(points, seconds)``."""
    s = Sampler(truth.shape, model=model, seed=seed, stop=StopCriteria(max_fraction=None))
    spent, here = 0.0, None
    while not s.done:
        p = s.ask(start=here)
        if len(p) == 0:
            break
        cost = timing.step_times(p, start=here)
        fits = int(np.searchsorted(np.cumsum(cost), seconds - spent, side="right"))
        if fits < len(p):
            s.release(p[fits:])
            p = p[:fits]
        if len(p) == 0:
            break
        spent += float(cost[:fits].sum())
        s.tell(p, truth[p[:, 0], p[:, 1]])
        here = p[-1]
        if fits < len(cost):
            break
    return s.measured_points, spent


def finest_raster(shape: tuple[int, int], timing: StageTiming, seconds: float) -> tuple:
    """The smallest k whose coarse fly raster (every k-th row and column) fits; ``(k, points, seconds)``."""
    for k in range(1, max(shape)):
        t = raster_time(raster_positions(shape[0], k), raster_positions(shape[1], k), timing)
        if t <= seconds:
            return k, coarse_raster(shape, k), t
    pts = coarse_raster(shape, max(shape) - 1)
    return max(shape) - 1, pts, timing.route_time(pts, mode="fly")


def _score(truth, points) -> dict:
    recon = reconstruct_linear(truth.shape, points, truth[points[:, 0], points[:, 1]])
    return {k: v for k, v in quality(truth, recon).items() if k in ("psnr", "ssim")}


def beam_time_benchmark(images: dict[str, np.ndarray], *, scenarios=None, budgets=BUDGETS, model=None,
                        seed: int = 0, progress: bool = True) -> list[dict]:
    """One row per image, scenario, budget and method: PSNR, SSIM, fraction measured, beam time used."""
    from tqdm import tqdm

    scenarios = SCENARIOS if scenarios is None else scenarios
    rows = []
    jobs = [(n, s, b) for n in images for s in scenarios for b in budgets]
    for name, scenario, budget in tqdm(jobs, desc="beam-time benchmark", file=sys.stderr, disable=not progress):
        truth = images[name]
        truth = (truth - truth.min()) / max(float(np.ptp(truth)), 1e-12)
        timing = scenarios[scenario]
        seconds = budget * full_raster_time(truth.shape, timing)
        k, raster, raster_time = finest_raster(truth.shape, timing, seconds)
        stretched = fly_raster(truth.shape, timing, seconds)
        results = {
            "fly": run_fly(truth, timing, seconds, model=model, seed=seed),
            "point": run_point(truth, timing, seconds, model=model, seed=seed),
            "raster": (raster, raster_time),
            "fly_raster": (stretched, timing.route_time(stretched, mode="fly")),
        }
        for method, (points, used) in results.items():
            rows.append({"image": name, "shape": list(truth.shape), "scenario": scenario, "budget": budget,
                         "method": method, "fraction": len(points) / truth.size, "beam_time": used,
                         "budget_seconds": seconds, "raster_step": k, **_score(truth, points)})
    return rows


def format_beam_time(rows: list[dict]) -> str:
    """Per-image PSNR/SSIM table and the means, with fly minus raster per scenario and budget."""
    lines = ["| image | scenario | budget | " + " | ".join(f"{m} PSNR/SSIM (frac)" for m in METHODS) + " |",
             "|---|---|---|" + "---|" * len(METHODS)]
    table: dict = {}
    for r in rows:
        table.setdefault((r["image"], r["scenario"], r["budget"]), {})[r["method"]] = r
    for (image, scenario, budget), by in table.items():
        cells = [f"{by[m]['psnr']:.2f}/{by[m]['ssim']:.3f} ({by[m]['fraction']:.3f})" for m in METHODS]
        lines.append(f"| {image} | {scenario} | {budget:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "| scenario | budget | " + " | ".join(f"mean {m} PSNR" for m in METHODS)
              + " | fly - raster mean (min) | best mode - raster mean | fly - fly_raster mean |",
              "|---|---|" + "---|" * (len(METHODS) + 3)]
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        for budget in dict.fromkeys(r["budget"] for r in rows):
            sel = [by for (_, s, b), by in table.items() if s == scenario and b == budget]
            if not sel:
                continue
            mean = {m: np.mean([by[m]["psnr"] for by in sel]) for m in METHODS}
            gain = np.array([by["fly"]["psnr"] - by["raster"]["psnr"] for by in sel])
            best = max(mean["fly"], mean["point"]) - mean["raster"]
            adaptive = mean["fly"] - mean["fly_raster"]
            lines.append(f"| {scenario} | {budget:.2f} | " + " | ".join(f"{mean[m]:.2f}" for m in METHODS)
                         + f" | {gain.mean():+.2f} ({gain.min():+.2f}) | {best:+.2f} | {adaptive:+.2f} |")
    return "\n".join(lines)


def fly_decision_times(side: int = 1024, *, budget: float = 0.1, batches: int = 6, model=None, seed: int = 0) -> dict:
    """Seconds of fly mode's decisions on a ``side`` x ``side`` synthetic sample (fast scenario), in the
    order a pipelined plan makes them: the first `ask` (the raster but its tail: nothing moves yet), then
    for each batch the `ask` for the next one while it is flown (hidden behind its flight, whose model
    seconds are given beside) and the `tell` once it is measured (the stage waits for it).

    Returns
    -------
    dict
        ``first_ask_s``; ``raster_batches`` (the raster's first lines, then the parts of its tail, while
        each of which a stage of the maps' build is done); per batch ``points``, ``flight_s``,
        ``ask_next_s`` (hidden) and ``tell_s`` (not), for the raster's batches and ``batches`` of segments.
    """
    import time

    from ..synthetic import synthetic_image

    truth = synthetic_image("particles", side, rng=np.random.default_rng(seed))
    timing = SCENARIOS["fast"]
    s = Sampler(truth.shape, model=model, seed=seed, timing=timing, scan_mode="fly",
                stop=StopCriteria(max_fraction=None, max_beam_time=budget * full_raster_time(truth.shape, timing)))
    t0 = time.perf_counter()
    p = s.ask()
    out = {"shape": [side, side], "first_ask_s": time.perf_counter() - t0, "raster_batches": s.fly_.raster_batches_,
           "points": [], "flight_s": [], "ask_next_s": [], "tell_s": []}
    here = None
    for _ in range(s.fly_.raster_batches_ + batches):
        if not len(p):
            break
        t0 = time.perf_counter()
        nxt = s.ask(start=p[-1])
        t1 = time.perf_counter()
        s.tell(p, truth[p[:, 0], p[:, 1]])
        out["tell_s"].append(time.perf_counter() - t1)
        out["ask_next_s"].append(t1 - t0)
        out["points"].append(len(p))
        out["flight_s"].append(timing.route_time(p, mode="fly", start=here))
        here, p = p[-1], nxt
    return out


def format_fly_decision_times(speed: dict) -> str:
    """One paragraph of `fly_decision_times`: what the stage waits for, and what is hidden behind what."""
    k = speed["raster_batches"]
    if len(speed["tell_s"]) < max(k, 2) + 1:
        return f"Fly-mode decisions: too few batches to report ({len(speed['tell_s'])})."
    exposed = [speed["first_ask_s"], *speed["tell_s"]]
    building = speed["ask_next_s"][1:max(k, 2)]  # asked while the tail's parts fly
    segments = speed["ask_next_s"][len(building) + 1:]
    ms = lambda seconds: f"{1e3 * seconds:.0f} ms"
    return (f"Fly-mode decisions on {speed['shape'][0]}x{speed['shape'][1]} (fast stage, 10% budget), in a "
            f"pipelined plan's order. The stage waits for: the first ask {ms(speed['first_ask_s'])} "
            f"({speed['points'][0]} raster points), the tells after the raster's {k} batch(es) "
            f"{', '.join(ms(t) for t in speed['tell_s'][:k])}, after batches of segments "
            f"{ms(np.median(speed['tell_s'][k:]))} (median); the most {ms(max(exposed))}. Hidden behind a "
            f"flight: the asks that build the maps in {len(building)} stage(s), the last with the first segments, "
            f"{', '.join(ms(t) for t in building)} (behind flights of "
            f"{min(speed['flight_s'][1:1 + len(building)]):.1f} s or more), then the asks for segments "
            f"{ms(np.median(segments))} (median; the most {ms(max(segments))}) behind flights of "
            f"{min(speed['flight_s'][1 + len(building):]):.1f} s or more. The longest decision: "
            f"{ms(max([*exposed, *speed['ask_next_s']]))}.")

