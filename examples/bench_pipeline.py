"""Beam time with and without decisions hidden behind the motion: a fly scan in real time.

    python examples/bench_pipeline.py [--share 0.25] [--time-scale 1.0]

The simulated microscope spends its moves and flights in real time (``time_scale``), so the wall
time of ``RE(smart_scan(...))`` is what the beam would cost: the timing model's time for the route,
plus whatever the stage waits for the sampler. The same fly scan of the built-in 128x128 sample runs
with ``pipeline=False`` (the plan waits for each decision) and ``pipeline=True`` (the next batch is
asked for while one is flown), and the script prints both against the model's time.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from bluesky import RunEngine

from plans import smart_scan
from sim import SimulatedMicroscope
from steering.fly import full_raster_time
from steering.timing import StageTiming

TIMING = StageTiming(pixel_size=0.05, dwell=0.01, velocity=200.0, acceleration=2000.0, settle=0.02, line_overhead=0.3)


def fly_once(pipeline: bool, share: float, time_scale: float, per_message: dict | None = None) -> dict:
    """One fly scan; with ``per_message``, the wall time spent from each message to the next, by command."""
    scope = SimulatedMicroscope(None, name="sim", pixel_size=0.05, timing=TIMING, time_scale=time_scale)
    (h, w), (y0, y1, x0, x1) = scope.shape, scope.extent()
    budget = share * full_raster_time(scope.shape, TIMING)
    RE = RunEngine({})
    if per_message is not None:
        last = {}

        def hook(msg):
            now = time.perf_counter()
            if last:
                per_message[last["command"]] = per_message.get(last["command"], 0.0) + now - last["time"]
            last.update(command=msg.command, time=now)

        RE.msg_hook = hook
    steering = []
    RE.subscribe(lambda name, doc: steering.append(doc["data"]) if name == "event" and
                 "steering_decision_time" in doc["data"] else None)
    t0 = time.perf_counter()
    RE(smart_scan([scope.det], scope.y, y0, y1, h, scope.x, x0, x1, w, flyer=scope.flyer, pipeline=pipeline,
                  sampler={"seed": 0, "stop": {"max_fraction": None, "max_beam_time": budget}},
                  beam_clock=lambda: scope.clock.now))
    wall = time.perf_counter() - t0
    decisions = float(np.sum([d["steering_decision_time"] for d in steering]))
    return {"wall": wall, "model": scope.clock.now, "decisions": decisions, "batches": len(steering)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--share", type=float, default=0.25, help="beam time budget, share of a full fly raster's")
    ap.add_argument("--time-scale", type=float, default=1.0, help="real seconds per simulated second")
    args = ap.parse_args(argv)
    for pipeline in (False, True):
        r = fly_once(pipeline, args.share, args.time_scale)
        real = r["wall"] / args.time_scale
        excess = 100 * (real / r["model"] - 1)
        print(f"pipeline={pipeline!s:5}: {r['batches']} batches, scan took {real:.2f} s of beam time (wall / "
              f"time_scale) for a route the model prices at {r['model']:.2f} s ({excess:+.1f}%); "
              f"decisions {r['decisions']:.2f} s in all")
    per_message: dict = {}
    r = fly_once(True, args.share, 0.0, per_message)
    top = sorted(per_message.items(), key=lambda item: -item[1])[:5]
    print(f"the plan's own work (time_scale=0): {r['wall']:.2f} s of wall time; by message: "
          + ", ".join(f"{command} {seconds:.2f} s" for command, seconds in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
