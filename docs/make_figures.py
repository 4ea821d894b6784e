"""Make the documentation's figures from real runs: ``python docs/make_figures.py``.

Every figure is drawn from a run that the real bluesky RunEngine made with `plans.smart_scan` on the
simulated microscope and stored in a catalog (a temporary one), read back as a scientist would:

- ``step_scan.png``: a step scan of the built-in sample at 64x64 (100 nm steps; the dry run's stage:
  20 um/s, 20 ms settle, 50 ms dwell) to 20% of the grid, drawn by `plans.plot_scan`;
- ``stop_signals.png``: that run's ``steering`` stream, each stop signal against the fraction measured;
- ``fly_scan.png``: the fly dry run (``bash examples/dry_run.sh --fly``): the built-in 128x128 sample
  (50 nm pixels), a fast stage and detector, a quarter of a full fly raster's beam time;
- ``two_channels.png``: a step scan of the 64x64 sample reading two detectors at every point, one of
  which steers: both channels reconstructed from the points the steering one chose.

The step scans are 64x64 so that the script runs in about 2 minutes (a step costs the RunEngine
tens of milliseconds of wall time; the fly scan's pixels come a line at a time).

The numbers each run printed are written to ``runs.txt`` beside the figures.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from bluesky import RunEngine  # noqa: E402
from ophyd import Component, Device, Kind, Signal  # noqa: E402
from ophyd.status import Status  # noqa: E402

from plans import Catalog, plot_scan, read_scan, smart_scan  # noqa: E402
from sim import SimulatedMicroscope, default_sample  # noqa: E402
from steering.fly import full_raster_time  # noqa: E402
from steering.metrics import quality  # noqa: E402
from steering.reconstruction import reconstruct_linear  # noqa: E402
from steering.synthetic import synthetic_image  # noqa: E402
from steering.timing import StageTiming  # noqa: E402

# xarray's notice about a stored 2-D map's repeated dimension names (the maps are read back whole).
warnings.filterwarnings("ignore", message="Duplicate dimension names", category=UserWarning)
FIGURES = Path(__file__).resolve().parent / "figures"
# The dry run's fast stage (examples/dry_run.py), in the simulated stage's units (um).
FLY_TIMING = StageTiming(pixel_size=0.05, dwell=0.01, velocity=200.0, acceleration=2000.0, settle=0.02,
                         line_overhead=0.3)


class SecondChannel(Device):
    """A second point detector at the same stage: another image (Bragg-like peaks) read at the
    stage's position, as a fluorescence line or a second diffraction peak would be."""

    value = Component(Signal, value=0.0, kind=Kind.hinted)

    def __init__(self, scope: SimulatedMicroscope, image: np.ndarray, *, name: str):
        super().__init__("", name=name)
        self.value.name = name
        self.scope, self.image = scope, image

    def trigger(self) -> Status:
        """Latch the second image's value at the stage position (the nearest pixel)."""
        (y0, _, x0, _), size = self.scope.extent(), self.scope.pixel_size
        size = np.broadcast_to(np.asarray(size, dtype=float), (2,))
        r = int(np.clip(round((self.scope.y.position - y0) / size[0]), 0, self.image.shape[0] - 1))
        c = int(np.clip(round((self.scope.x.position - x0) / size[1]), 0, self.image.shape[1] - 1))
        self.value.put(float(self.image[r, c]))
        status = Status(obj=self)
        status.set_finished()
        return status


def scan(RE, scope, detectors, sampler, **kwargs) -> str:
    """``RE(smart_scan(...))`` over the whole sample, on its own pixel grid; the run's uid."""
    (h, w), (y0, y1, x0, x1) = scope.shape, scope.extent()
    (uid,) = RE(smart_scan(detectors, scope.y, y0, y1, h, scope.x, x0, x1, w, sampler=sampler,
                           beam_clock=lambda: scope.clock.now, **kwargs))
    return uid


def report(log: list[str], name: str, data, truth, beam: float, raster: float, wall: float) -> None:
    """One line of ``runs.txt``: points, fraction, beam time, quality, stop reason."""
    n, total = int(np.isfinite(data.values).sum()), truth.size
    q = quality(truth, data.reconstruct())
    line = (f"{name}: {n} points ({100 * n / total:.1f}%), simulated beam time {beam:.1f} s of {raster:.1f} s "
            f"for a full raster, PSNR {q['psnr']:.2f} dB, SSIM {q['ssim']:.3f}, wall time {wall:.1f} s; "
            f"stop: {data.stop_reason}")
    print(line, flush=True)
    log.append(line)


def stop_signals_figure(run, path: Path) -> None:
    """Each stop signal of the run's ``steering`` stream against the fraction measured."""
    steering = run["steering"].read()
    fraction = np.asarray(steering["steering_fraction"])
    signals = [("erd_ratio", "falls"), ("prediction_error", "falls"), ("recon_change", "falls"),
               ("ssim_estimate", "rises")]
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
    for ax, (name, way) in zip(axes, signals, strict=True):
        values = np.asarray(steering[f"steering_{name}"], dtype=float)
        ax.plot(fraction, values, ".-", ms=3)
        if name != "ssim_estimate":
            ax.set_yscale("log")
        ax.set_xlabel("fraction measured")
        ax.set_title(f"{name} ({way})")
        ax.grid(alpha=0.3)
    fig.suptitle(f"the steering stream of run {run.metadata['start']['uid'][:8]}: one value per batch")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def two_channels_figure(run, second: str, truths: dict, path: Path, log: list[str]) -> None:
    """Both channels of a two-detector run, reconstructed from the same points, beside their truths."""
    data = read_scan(run)
    primary = run["primary"].read()
    steer = run.metadata["start"]["value_field"]
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.6))
    for row, field in enumerate((steer, second)):
        values = np.asarray(primary[field], dtype=float).reshape(-1)
        image = reconstruct_linear(data.shape, data.points, values)
        truth = truths[field]
        q = quality(truth, image)
        role = "steers" if field == steer else "read at the same points"
        axes[row, 0].imshow(truth, cmap="gray")
        axes[row, 0].set_title(f"{field}: truth")
        axes[row, 1].imshow(image, cmap="gray")
        axes[row, 1].set_title(f"{field} ({role})\nPSNR {q['psnr']:.1f} dB, SSIM {q['ssim']:.3f}")
        axes[row, 2].scatter(data.points[:, 1], data.points[:, 0], c=values, s=3, marker="s", linewidths=0)
        axes[row, 2].set_xlim(0, data.shape[1] - 1)
        axes[row, 2].set_ylim(data.shape[0] - 1, 0)
        axes[row, 2].set_aspect("equal")
        axes[row, 2].set_title(f"{field}: {len(values)} points measured")
        log.append(f"two channels, {field} ({role}): PSNR {q['psnr']:.2f} dB, SSIM {q['ssim']:.3f}")
        print(log[-1], flush=True)
    for ax in axes.flat:
        ax.set_xlabel("column (pixel)")
        ax.set_ylabel("row (pixel)")
    fig.suptitle(f"two detectors, one steers (value_field={steer!r}): run {run.metadata['start']['uid'][:8]}")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    """Run the scans, draw the figures into ``docs/figures``."""
    FIGURES.mkdir(exist_ok=True)
    log: list[str] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, Catalog(folder) as catalog:
        RE = RunEngine({})
        RE.subscribe(catalog.writer)

        # A step scan with the dry run's stage (examples/dry_run.py), on a 64x64 sample, to 20% of the grid.
        scope = SimulatedMicroscope(default_sample(64), name="sim", pixel_size=0.1, velocity=20.0, settle_time=0.02,
                                    dwell=0.05, seed=0)
        t = time.perf_counter()
        uid = scan(RE, scope, [scope.det], {"seed": 0, "stop": {"max_fraction": 0.2}})
        run = catalog.client[uid]
        report(log, "step scan", read_scan(run), scope.sample, scope.clock.now, scope.raster_time(),
               time.perf_counter() - t)
        plot_scan(run, truth=scope.sample, path=FIGURES / "step_scan.png")
        plt.close("all")
        stop_signals_figure(run, FIGURES / "stop_signals.png")

        # A fly scan as `dry_run.py --fly` makes it: a quarter of a full fly raster's beam time.
        scope = SimulatedMicroscope(None, name="sim", pixel_size=0.05, seed=0, timing=FLY_TIMING)
        t = time.perf_counter()
        uid = scan(RE, scope, [scope.det], {"seed": 0, "stop": {"max_fraction": 0.25}}, flyer=scope.flyer)
        run = catalog.client[uid]
        report(log, "fly scan", read_scan(run), scope.sample, scope.clock.now,
               full_raster_time(scope.shape, FLY_TIMING), time.perf_counter() - t)
        plot_scan(run, truth=scope.sample, path=FIGURES / "fly_scan.png")
        plt.close("all")

        # Two detectors read at every point; the first (the built-in sample) steers.
        scope = SimulatedMicroscope(default_sample(64), name="sim", pixel_size=0.1, velocity=20.0, settle_time=0.02,
                                    dwell=0.05, seed=0)
        peaks = synthetic_image("peaks", scope.shape[0], rng=np.random.default_rng(3))
        second = SecondChannel(scope, peaks, name="peaks")
        t = time.perf_counter()
        uid = scan(RE, scope, [scope.det, second], {"seed": 0, "stop": {"max_fraction": 0.2}})
        run = catalog.client[uid]
        report(log, "two channels (the steering one)", read_scan(run), scope.sample, scope.clock.now,
               scope.raster_time(), time.perf_counter() - t)
        two_channels_figure(run, "peaks", {"sim_det": scope.sample, "peaks": peaks}, FIGURES / "two_channels.png",
                            log)
    log.append(f"made by docs/make_figures.py in {time.perf_counter() - t0:.0f} s")
    (FIGURES / "runs.txt").write_text("\n".join(log) + "\n")
    print(log[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
