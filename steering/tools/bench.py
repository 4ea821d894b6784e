"""Benchmark: the Sampler against general adaptive and non-adaptive samplers, in one run.

``python -m steering.tools.bench`` (quick) or ``--full``; ``--beam-time`` compares at equal beam time
instead (`steering.tools.bench_beam_time`), ``--channels`` steers on several channels at once
(`steering.tools.bench_channels`). For every image, at each
measured fraction, it scores the reconstruction of

- ``sampler``: this package's `Sampler` with the shipped ERD model,
- ``grid``: a regular grid + Delaunay-linear interpolation,
- ``random``: uniform random points + Delaunay-linear interpolation,
- ``learner2d``: python-adaptive's ``Learner2D`` (default loss, points snapped to pixels) +
  Delaunay-linear interpolation,

with PSNR, SSIM and NRMSE on min-max normalised images (data range 1), and reports the median and
max time of the sampler's ``ask()`` and ``tell()`` and the batch size. The table is printed and
written (CSV, JSON and Markdown) to ``--out``. Needs the ``bench`` extra (scikit-image, adaptive).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from ..images import load_image
from ..metrics import quality
from .baselines import decision_times, grid_points, reconstruct_from_points, run_learner2d, run_sampler

__all__ = ["benchmark_images", "grid_points", "run_sampler", "run_learner2d", "decision_times", "main"]

QUICK_FRACTIONS = (0.05, 0.10, 0.20)
# scikit-image's bundled images that are not used in training (see steering.train).
HELD_OUT_SKIMAGE = ("camera", "coins", "microaneurysms", "shepp_logan_phantom")


def default_data_dir() -> Path:
    """``$STEERING_DATA``, else ``shared/data`` beside the repository checkout."""
    env = os.environ.get("STEERING_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def benchmark_images(data_dir: Path, *, full: bool = False, skimage: bool = True) -> dict[str, np.ndarray]:
    """The benchmark set: every image in ``data_dir`` plus (``skimage``) held-out scikit-image images.

    In quick mode the scikit-image images are reduced to at most 256 pixels a side.
    """
    images: dict[str, np.ndarray] = {}
    if data_dir.is_dir():
        for f in sorted(data_dir.rglob("*")):
            if f.suffix.lower() in (".tif", ".tiff", ".png", ".npy"):
                images[f"{f.parent.name}/{f.stem}"] = load_image(f)
    else:
        print(f"warning: no data directory at {data_dir}; benchmarking scikit-image images only", file=sys.stderr)
    if not skimage:
        return images
    import skimage.data
    from skimage.transform import resize

    for name in HELD_OUT_SKIMAGE:
        img = np.asarray(getattr(skimage.data, name)(), dtype=np.float64)
        if not full and max(img.shape) > 256:
            f = 256 / max(img.shape)
            img = resize(img, (round(img.shape[0] * f), round(img.shape[1] * f)), anti_aliasing=True)
        images[f"skimage/{name}"] = img
    return images


def _fmt_table(rows: list[dict]) -> str:
    cols = ["image", "fraction", "method", "psnr", "ssim", "nrmse"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(
            f"| {r['image']} | {r['fraction']:.2f} | {r['method']} | {r['psnr']:.2f} | {r['ssim']:.4f} "
            f"| {r['nrmse']:.4f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="smart-scan-bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="full-size scikit-image images and more fractions")
    ap.add_argument("--data", type=Path, default=None, help="image folder (default: $STEERING_DATA or ../shared/data)")
    ap.add_argument("--model", default=None, help="ERD model file (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=Path("bench_results"), help="output folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-learner2d", action="store_true", help="skip the python-adaptive baseline")
    ap.add_argument("--only", default=None, help="substring: benchmark only matching images")
    ap.add_argument("--no-speed", action="store_true", help="skip the 512x512 / 1024x1024 decision-time check")
    ap.add_argument("--beam-time", action="store_true",
                    help="compare fly mode, point mode and coarse fly rasters at equal beam time on the data folder")
    ap.add_argument("--channels", action="store_true",
                    help="steer on several channels at once (pairs and triples of the data folder's images) against "
                         "steering on the first channel, on their sum, a grid and Learner2D on the sum")
    args = ap.parse_args(argv)
    if args.beam_time:
        return _main_beam_time(args)
    if args.channels:
        return _main_channels(args)

    from tqdm import tqdm

    fractions = (0.05, 0.10, 0.15, 0.20, 0.30) if args.full else QUICK_FRACTIONS
    images = benchmark_images(args.data or default_data_dir(), full=args.full)
    if args.only:
        images = {k: v for k, v in images.items() if args.only in k}
    from ..erd import load_model

    model = load_model(args.model)
    rows: list[dict] = []
    timing: list[dict] = []
    for name, truth in tqdm(images.items(), desc="images", file=sys.stderr):
        rng = np.random.default_rng(args.seed)
        res = {"sampler": run_sampler(truth, fractions, seed=args.seed, model=model)}
        if not args.no_learner2d:
            res["learner2d"] = run_learner2d(truth, fractions)
        for f in fractions:
            n = int(round(f * truth.size))
            recons = {m: r["recon"][f] for m, r in res.items()}
            recons["grid"] = reconstruct_from_points(truth, grid_points(truth.shape, f))
            flat = rng.choice(truth.size, n, replace=False)
            recons["random"] = reconstruct_from_points(truth, np.stack(np.divmod(flat, truth.shape[1]), axis=1))
            for m, img in recons.items():
                rows.append(
                    {"image": name, "shape": list(truth.shape), "fraction": f, "method": m, **quality(truth, img)}
                )
        s = res["sampler"]
        timing.append(
            {
                "image": name,
                "shape": list(truth.shape),
                "batch_size": s["batch_size"],
                "ask_median_ms": 1e3 * float(np.median(s["ask_times"])),
                "ask_max_ms": 1e3 * float(np.max(s["ask_times"])),
                "tell_median_ms": 1e3 * float(np.median(s["tell_times"])),
                "tell_max_ms": 1e3 * float(np.max(s["tell_times"])),
                "learner2d_ask_median_ms": 1e3 * float(np.median(res["learner2d"]["ask_times"]))
                if "learner2d" in res
                else None,
            }
        )
    summary = _summarise(rows, fractions)
    speed = []
    if not args.no_speed:
        for shape in ((512, 512), (1024, 1024)):
            speed.append(decision_times(shape, model=model, seed=args.seed))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(
        json.dumps({"rows": rows, "timing": timing, "summary": summary, "decision_times": speed}, indent=1)
    )
    with open(args.out / "bench.csv", "w") as fh:
        fh.write("image,height,width,fraction,method,psnr,ssim,nrmse\n")
        for r in rows:
            fh.write(
                f"{r['image']},{r['shape'][0]},{r['shape'][1]},{r['fraction']},{r['method']},{r['psnr']:.4f},{r['ssim']:.5f},{r['nrmse']:.5f}\n"
            )
    report = [_fmt_table(rows), "", _fmt_summary(summary), "", _fmt_timing(timing), "", _fmt_speed(speed)]
    (args.out / "bench.md").write_text("\n".join(report) + "\n")
    print("\n".join(report))
    return 0


def _main_beam_time(args) -> int:
    from ..erd import load_model
    from .bench_beam_time import beam_time_benchmark, fly_decision_times, format_beam_time, format_fly_decision_times

    data = args.data or default_data_dir()
    images = benchmark_images(data, full=False, skimage=False)
    if args.only:
        images = {k: v for k, v in images.items() if args.only in k}
    if not images:
        print(f"no images in {data}", file=sys.stderr)
        return 2
    model = load_model(args.model)
    rows = beam_time_benchmark(images, model=model, seed=args.seed)
    speed = None if args.no_speed else fly_decision_times(1024, model=model, seed=args.seed)
    return _write_report(args.out, "beam_time", {"rows": rows, "fly_decision_times": speed},
                         [format_beam_time(rows), speed and format_fly_decision_times(speed)])


def _main_channels(args) -> int:
    from tqdm import tqdm

    from ..erd import load_model
    from .bench_channels import (
        channel_decision_times,
        channel_sets,
        channels_benchmark,
        format_channel_decision_times,
        format_channels,
    )

    data = args.data or default_data_dir()
    sets = channel_sets(benchmark_images(data, full=False, skimage=False))
    if args.only:
        sets = {k: v for k, v in sets.items() if args.only in k}
    if not sets:
        print(f"no channel sets from the images in {data}", file=sys.stderr)
        return 2
    with tqdm(total=len(sets), desc="channel sets", file=sys.stderr) as bar:
        rows = channels_benchmark(sets, model=load_model(args.model), seed=args.seed,
                                  learner2d=not args.no_learner2d, progress=bar.update)
    speed = None if args.no_speed else channel_decision_times((512, 512), (1, 4), seed=args.seed)
    return _write_report(args.out, "channels", {"rows": rows, "decision_times": speed},
                         [format_channels(rows), speed and format_channel_decision_times(speed)])


def _write_report(out: Path, name: str, data: dict, parts: list[str]) -> int:
    """Write ``{name}.json`` (``data``) and ``{name}.md`` (the ``parts`` given, None left out, a blank line
    apart) to ``out``; print the report; return 0."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=1))
    report = "\n\n".join(part for part in parts if part)
    (out / f"{name}.md").write_text(report + "\n")
    print(report)
    return 0


def _fmt_speed(speed) -> str:
    if not speed:
        return ""
    lines = [
        "Decision time, batch of 50 at 10% measured (synthetic sample):",
        "| grid | ask median ms | ask max ms | tell median ms | tell max ms |",
        "|---|---|---|---|---|",
    ]
    for r in speed:
        lines.append(
            f"| {r['shape'][0]}x{r['shape'][1]} | {r['ask_median_ms']:.1f} | {r['ask_max_ms']:.1f} | "
            f"{r['tell_median_ms']:.1f} | {r['tell_max_ms']:.1f} |"
        )
    return "\n".join(lines)


def _summarise(rows, fractions) -> dict:
    methods = sorted({r["method"] for r in rows})
    if not rows:
        return {}
    out = {}
    for f in fractions:
        sel = [r for r in rows if r["fraction"] == f]
        mean = {
            m: {k: float(np.mean([r[k] for r in sel if r["method"] == m])) for k in ("psnr", "ssim", "nrmse")}
            for m in methods
        }
        per_image = {}
        for r in sel:
            per_image.setdefault(r["image"], {})[r["method"]] = r["psnr"]
        beats_grid = sum(1 for v in per_image.values() if v["sampler"] > v["grid"])
        out[str(f)] = {"mean": mean, "sampler_beats_grid": f"{beats_grid}/{len(per_image)}"}
        if "learner2d" in methods:
            diffs = np.array([v["sampler"] - v["learner2d"] for v in per_image.values()])
            out[str(f)]["sampler_minus_learner2d_psnr"] = mean["sampler"]["psnr"] - mean["learner2d"]["psnr"]
            # A mean of PSNRs is swayed by one near-perfect reconstruction (PSNR -> inf); the median
            # per-image gain and the count of wins are not.
            out[str(f)]["sampler_minus_learner2d_psnr_median"] = float(np.median(diffs))
            out[str(f)]["sampler_beats_learner2d"] = f"{int((diffs > 0).sum())}/{len(diffs)}"
    return out


def _fmt_summary(summary) -> str:
    lines = ["| fraction | method | mean PSNR | mean SSIM | mean NRMSE |", "|---|---|---|---|---|"]
    for f, s in summary.items():
        for m, v in s["mean"].items():
            lines.append(f"| {float(f):.2f} | {m} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['nrmse']:.4f} |")
    lines.append("")
    for f, s in summary.items():
        extra = ""
        if "sampler_minus_learner2d_psnr" in s:
            extra = (
                f", sampler - learner2d PSNR: mean {s['sampler_minus_learner2d_psnr']:+.2f} dB, "
                f"median per image {s['sampler_minus_learner2d_psnr_median']:+.2f} dB, "
                f"sampler better on {s['sampler_beats_learner2d']} images"
            )
        lines.append(f"fraction {float(f):.2f}: sampler beats grid on {s['sampler_beats_grid']} images{extra}")
    return "\n".join(lines)


def _fmt_timing(timing) -> str:
    lines = [
        "| image | shape | batch | ask median ms | ask max ms | tell median ms | tell max ms "
        "| learner2d ask median ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in timing:
        l2d = f"{t['learner2d_ask_median_ms']:.1f}" if t["learner2d_ask_median_ms"] is not None else "-"
        lines.append(
            f"| {t['image']} | {t['shape'][0]}x{t['shape'][1]} | {t['batch_size']} | {t['ask_median_ms']:.1f} | "
            f"{t['ask_max_ms']:.1f} | {t['tell_median_ms']:.1f} | {t['tell_max_ms']:.1f} | {l2d} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
