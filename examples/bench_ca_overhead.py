"""What Channel Access costs per point: the same smart scan over the IOC and on the in-process simulation.

    python examples/bench_ca_overhead.py [--size 48] [--rounds 3] [--max-fraction 0.25]

Starts ``sim.ioc`` (zero move and dwell time) and a CA repeater on private loopback ports, then runs
`smart_scan` into the embedded catalog, alternating between (1) the `devices` classes over Channel
Access (``ScanStage`` of two motor records, ``ScalerDetector``) and (2) the in-process
`SimulatedMicroscope` with the same sample, seed and stopping rule, so both measure the very same
points. It prints the per-point wall time of each (the sampler's decision time excluded), their
difference and ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=48, help="grid (and sample) size in pixels")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-fraction", type=float, default=0.25)
    args = ap.parse_args(argv)

    # Channel Access set-up must precede the first ophyd import (pyepics reads it once).
    from sim.ioc_process import IOCProcess, RepeaterProcess, configure_loopback, free_port

    server_port = free_port()
    configure_loopback(server_port=server_port, repeater_port=free_port(exclude=(server_port,)))
    n = args.size
    with tempfile.TemporaryDirectory() as folder, RepeaterProcess().start():
        from sim import default_sample

        sample = default_sample(n)
        np.save(Path(folder) / "sample.npy", sample)
        with IOCProcess("--image", Path(folder) / "sample.npy", "--prefix", "bench:", "--velocity", 0,
                        "--dwell", 0).start() as ioc:
            print(ioc.ready_line)
            from bluesky import RunEngine

            from devices import ScalerDetector, ScanStage
            from plans import Catalog, smart_scan
            from sim import SimulatedMicroscope
            from steering import Sampler, StopCriteria

            stage = ScanStage("bench:", y_pv="m2", x_pv="m1", name="stage")
            scaler = ScalerDetector("bench:scaler1", name="scaler")
            for device in (stage, scaler):
                device.wait_for_connection(timeout=10)
            scope = SimulatedMicroscope(sample, name="sim")
            setups = {"channel access": ([scaler], stage.y, stage.x),
                      "in-process": ([scope.det], scope.y, scope.x)}
            costs = {label: [] for label in setups}
            with Catalog(Path(folder) / "catalog") as catalog:
                for r in range(args.rounds):
                    points = {}
                    for label, (detectors, y_motor, x_motor) in setups.items():
                        RE = RunEngine({})
                        RE.subscribe(catalog.writer)
                        sampler = Sampler((n, n), seed=r, stop=StopCriteria(max_fraction=args.max_fraction))
                        t0 = time.perf_counter()
                        RE(smart_scan(detectors, y_motor, 0, n - 1, n, x_motor, 0, n - 1, n, sampler=sampler))
                        wall = time.perf_counter() - t0
                        decisions = sum(sampler.ask_times_) + sum(sampler.tell_times_)
                        points[label] = sampler.measured_points
                        costs[label].append((wall - decisions) / len(points[label]))
                        print(f"round {r + 1}, {label}: {len(points[label])} points, "
                              f"{1e3 * costs[label][-1]:.2f} ms/point (wall {wall:.1f} s, decisions {decisions:.1f} s "
                              "excluded)", flush=True)
                    if not np.array_equal(*points.values()):
                        print("warning: the two set-ups measured different points")
                if catalog.writer.errors_:
                    print(f"catalog errors: {catalog.writer.errors_}")
            import epics

            for device in (stage, scaler):
                device.destroy()
            epics.ca.finalize_libca()  # close our circuits before the IOC goes
    ca, local = (float(np.median(costs[label])) for label in setups)
    print(f"median per point over {args.rounds} rounds: Channel Access {1e3 * ca:.2f} ms, in-process "
          f"{1e3 * local:.2f} ms; difference {1e3 * (ca - local):.2f} ms, ratio {ca / local:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
