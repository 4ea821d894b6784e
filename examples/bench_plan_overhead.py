"""What the plan layer costs per point, next to a bare bluesky loop over the same devices.

    python examples/bench_plan_overhead.py [--size 128] [--rounds 3]

On the simulated microscope with zero move and dwell time, it runs (1) `smart_scan` with the
embedded catalog subscribed (RunEngine, documents, journal and catalog writes; the sampler's own
decision time is subtracted) and (2) a bare ``bps.mv`` + ``bps.trigger_and_read`` loop over the
very same points with no storage, alternating, and prints the median per-point cost of each and
their ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import bluesky.plan_stubs as bps
import bluesky.preprocessors as bpp
import numpy as np
from bluesky import RunEngine

from plans import Catalog, smart_scan
from sim import SimulatedMicroscope, default_sample
from steering import Sampler


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    n = args.size
    scope = SimulatedMicroscope(default_sample(n), name="sim")
    plan_costs, bare_costs = [], []
    with tempfile.TemporaryDirectory() as folder, Catalog(folder) as catalog:
        for r in range(args.rounds):
            RE = RunEngine({})
            RE.subscribe(catalog.writer)
            sampler = Sampler((n, n), seed=r)
            t0 = time.perf_counter()
            RE(smart_scan([scope.det], scope.y, 0, n - 1, n, scope.x, 0, n - 1, n, sampler=sampler))
            wall = time.perf_counter() - t0
            decisions = sum(sampler.ask_times_) + sum(sampler.tell_times_)
            points = sampler.measured_points
            plan_costs.append((wall - decisions) / len(points))

            @bpp.run_decorator()
            def bare(points=points):
                for i, j in points:
                    yield from bps.mv(scope.y, float(i), scope.x, float(j))
                    yield from bps.trigger_and_read([scope.det, scope.y, scope.x])

            bare_RE = RunEngine({})
            t0 = time.perf_counter()
            bare_RE(bare())
            bare_costs.append((time.perf_counter() - t0) / len(points))
            print(f"round {r + 1}: {len(points)} points; smart_scan + catalog {1e3 * plan_costs[-1]:.3f} ms/point "
                  f"(decisions {decisions:.1f} s excluded), bare loop {1e3 * bare_costs[-1]:.3f} ms/point", flush=True)
        if catalog.writer.errors_:
            print(f"catalog errors: {catalog.writer.errors_}")
    plan, bare = float(np.median(plan_costs)), float(np.median(bare_costs))
    print(f"median per point: smart_scan with journal + catalog {1e3 * plan:.3f} ms, bare mv + trigger_and_read "
          f"{1e3 * bare:.3f} ms, ratio {plan / bare:.2f} (target < 1.5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
