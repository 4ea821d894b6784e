"""Benchmark: steering on several channels at once, against steering on one channel or on their sum.

Multi-channel sets are built from ``../shared/data``: pairs and triples of images of one size as the
element maps of one field of view (a major, a minor and a trace element: each image scaled to a
peak of 1, 0.2 and 0.05 of the first), a setting fixed before any run. Each is sampled by
multi-channel steering (`Sampler` ``channels=C``, equal weights), by steering on the first
channel alone, by steering on the sum of the channels (what one field computed from the others
gives), by a regular grid and by python-adaptive's ``Learner2D`` on the sum; every channel is then
reconstructed from the points each method measured and scored against its own image (PSNR on the
channel's own range): the worst channel and the mean over channels, at 5%, 10% and 20%.
``smart-scan-bench --channels`` runs it.
"""

from __future__ import annotations

import numpy as np

from ..metrics import psnr
from ..reconstruction import reconstruct_linear
from .baselines import decision_times, grid_points, run_learner2d, run_sampler

__all__ = ["CHANNEL_SETS", "CHANNEL_LEVELS", "CHANNEL_FRACTIONS", "CHANNEL_METHODS", "channel_sets",
           "channels_benchmark", "format_channels", "channel_decision_times", "format_channel_decision_times"]

#: (name, images as ``folder/stem`` of the data folder); images larger than the set's smallest are cropped centrally.
CHANNEL_SETS = (
    ("sem 3+4", ("sem/sem_set3", "sem/sem_set4")),
    ("sem 5+6", ("sem/sem_set5", "sem/sem_set6")),
    ("sem 7+8", ("sem/sem_set7", "sem/sem_set8")),
    ("s26 91+95", ("s26/norm_log_sum_91_81x81", "s26/norm_log_sum_95_81x81")),
    ("sem 9+3+5", ("sem/sem_set9", "sem/sem_set3", "sem/sem_set5")),
    ("sem 4+6+8", ("sem/sem_set4", "sem/sem_set6", "sem/sem_set8")),
    ("s26 91+95+84", ("s26/norm_log_sum_91_81x81", "s26/norm_log_sum_95_81x81", "s26/norm_log_sum_84_101x101")),
)
#: Peak of each channel relative to the first: a major, a minor and a trace element.
CHANNEL_LEVELS = (1.0, 0.2, 0.05)
CHANNEL_FRACTIONS = (0.05, 0.10, 0.20)
CHANNEL_METHODS = ("multi", "first", "sum", "grid", "learner2d_sum")


def _crop(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    r0, c0 = (image.shape[0] - shape[0]) // 2, (image.shape[1] - shape[1]) // 2
    return image[r0:r0 + shape[0], c0:c0 + shape[1]]


def channel_sets(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The sets of `CHANNEL_SETS` whose images are all in ``images``, each an (H, W, C) stack at `CHANNEL_LEVELS`."""
    out = {}
    for name, members in CHANNEL_SETS:
        if not all(m in images for m in members):
            continue
        shape = tuple(min(images[m].shape[i] for m in members) for i in range(2))
        layers = []
        for level, m in zip(CHANNEL_LEVELS, members, strict=False):
            img = _crop(np.asarray(images[m], dtype=np.float64), shape)
            layers.append(level * (img - img.min()) / max(float(np.ptp(img)), 1e-12))
        out[name] = np.stack(layers, axis=-1)
    return out


def channels_benchmark(sets: dict[str, np.ndarray], *, fractions=CHANNEL_FRACTIONS, seed: int = 0, model=None,
                       learner2d: bool = True, progress=None) -> list[dict]:
    """One row per (set, fraction, method, channel): PSNR of the channel reconstructed from the method's points."""
    rows = []
    for name, stack in sets.items():
        C = stack.shape[-1]
        total = stack.sum(axis=-1)
        points = {
            "multi": run_sampler(stack, fractions, seed=seed, model=model, channels=C)["points"],
            "first": run_sampler(stack[..., 0], fractions, seed=seed, model=model)["points"],
            "sum": run_sampler(total, fractions, seed=seed, model=model)["points"],
            "grid": {f: grid_points(total.shape, f) for f in fractions},
        }
        if learner2d:
            points["learner2d_sum"] = run_learner2d(total, fractions)["points"]
        for method, by_fraction in points.items():
            for f in fractions:
                pts = by_fraction[f]
                for c in range(C):
                    truth = stack[..., c]
                    recon = reconstruct_linear(truth.shape, pts, truth[pts[:, 0], pts[:, 1]])
                    rows.append({"set": name, "channels": C, "fraction": f, "method": method, "channel": c,
                                 "points": len(pts), "psnr": psnr(truth, recon)})
        if progress is not None:
            progress()
    return rows


def format_channels(rows: list[dict]) -> str:
    """Markdown: per set and fraction the worst channel's and the mean PSNR of each method; then the means
    over sets of the worst channel, multi-channel steering's gain over the others, and the grid check."""
    methods = [m for m in CHANNEL_METHODS if any(r["method"] == m for r in rows)]
    keys = list(dict.fromkeys((r["set"], r["fraction"]) for r in rows))
    by = {}
    for r in rows:
        by.setdefault((r["set"], r["fraction"], r["method"]), []).append(r["psnr"])
    lines = ["| set | fraction | " + " | ".join(f"{m} worst / mean" for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for s, f in keys:
        cells = [f"{min(by[s, f, m]):.2f} / {np.mean(by[s, f, m]):.2f}" for m in methods]
        lines.append(f"| {s} | {f:.2f} | " + " | ".join(cells) + " |")
    lines += ["", "| fraction | " + " | ".join(f"mean worst {m}" for m in methods)
              + " | multi - first | multi - sum | channels where multi > grid |", "|---|" + "---|" * (len(methods) + 3)]
    for f in dict.fromkeys(r["fraction"] for r in rows):
        sets = [s for s, g in keys if g == f]
        worst = {m: np.mean([min(by[s, f, m]) for s in sets]) for m in methods}
        beats = [a > b for s in sets for a, b in zip(by[s, f, "multi"], by[s, f, "grid"], strict=True)]
        lines.append(f"| {f:.2f} | " + " | ".join(f"{worst[m]:.2f}" for m in methods)
                     + f" | {worst['multi'] - worst['first']:+.2f} | {worst['multi'] - worst['sum']:+.2f}"
                     f" | {sum(beats)} of {len(beats)} |")
    return "\n".join(lines)


def channel_decision_times(shape: tuple[int, int] = (512, 512), channels=(1, 4), *, rounds: int = 3, seed: int = 0,
                           model=None) -> dict:
    """Median seconds of a decision (an ``ask`` and the ``tell`` of its batch of 50, at 10% measured) for
    each channel count, measured in alternation over ``rounds`` so that a busy machine weighs on all alike.

    Returns
    -------
    dict
        ``shape``, and per channel count (as a string) the median decision ms of each round.
    """
    out: dict = {"shape": list(shape), "ms": {str(c): [] for c in channels}}
    for _ in range(rounds):
        for c in channels:
            out["ms"][str(c)].append(decision_times(shape, seed=seed, model=model, channels=c)["decision_median_ms"])
    return out


def format_channel_decision_times(speed: dict) -> str:
    """One line per channel count: median decision ms per round, and the ratio to one channel (median of rounds)."""
    base = np.median(speed["ms"]["1"]) if "1" in speed["ms"] else None
    lines = [f"Decision time at {speed['shape'][0]}x{speed['shape'][1]} (ask + tell, batch 50, 10% measured):"]
    for c, ms in speed["ms"].items():
        ratio = f", {np.median(ms) / base:.2f} times one channel's" if base else ""
        lines.append(f"- {c} channel(s): {', '.join(f'{m:.0f}' for m in ms)} ms (rounds){ratio}")
    return "\n".join(lines)
