"""Dry run on a simulated beamline: ``RE(smart_scan(...))`` into the embedded catalog.

    python examples/dry_run.py [--sample IMAGE] [--catalog DIR] [--max-fraction 0.25] [--flux 0] [--seed 0] [--fly]

A simulated scanning microscope (stage speed and settling, dwell, optional counting noise) holds a
known sample; the real bluesky RunEngine runs `smart_scan` on it and stores the run in a persistent
local tiled catalog. The run is then read back from the catalog and scored against the sample.
With ``--fly`` the stage flies (a fast detector, 10 ms per pixel, 0.3 s per flown line) and the scan
spends ``--max-fraction`` of a full fly raster's beam time.
"""

from __future__ import annotations

import argparse
import sys
import time

from bluesky import RunEngine
from scan_report import print_scan_report, read_back

from plans import BatchProgress, Catalog, LiveSparseView, smart_scan
from sim import SimulatedMicroscope
from steering.fly import full_raster_time
from steering.timing import StageTiming

# The benchmark's fast stage in the simulated stage's units (um): 50 nm pixels, 0.2 mm/s, 2 mm/s^2,
# 20 ms settle, 0.3 s per flown line, 10 ms dwell.
FLY_TIMING = StageTiming(pixel_size=0.05, dwell=0.01, velocity=200.0, acceleration=2000.0, settle=0.02,
                         line_overhead=0.3)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", default=None, help="image file (TIFF/PNG/NPY); default: the built-in sample")
    ap.add_argument("--catalog", default="smart_scan_data", help="embedded catalog directory, or a tiled URI")
    ap.add_argument("--max-fraction", type=float, default=0.25, help="stop at this fraction of the grid")
    ap.add_argument("--erd-ratio", type=float, default=None, help="also stop when the total ERD falls to this ratio")
    ap.add_argument("--flux", type=float, default=0.0, help="photons/s at the brightest pixel (0: no noise)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--figures", default=".", help="where the live view saves its PNG")
    ap.add_argument("--fly", action="store_true", help="fly the stage: a fly scan with a fast detector")
    args = ap.parse_args(argv)

    if args.fly:
        scope = SimulatedMicroscope(args.sample, name="sim", pixel_size=0.05, flux=args.flux, seed=args.seed,
                                    timing=FLY_TIMING)
    else:
        # A hard-X-ray nanoprobe in step mode: 50 nm steps, piezo stages at 20 um/s settling 20 ms, 50 ms dwell.
        scope = SimulatedMicroscope(args.sample, name="sim", pixel_size=0.05, velocity=20.0, settle_time=0.02,
                                    dwell=0.05, flux=args.flux, seed=args.seed)
    truth = scope.sample
    (h, w), (y0, y1, x0, x1) = scope.shape, scope.extent()
    print(f"sample: {args.sample or 'built-in'} ({h}x{w} pixels, {y1 - y0:.2f} x {x1 - x0:.2f} um)")

    t0 = time.perf_counter()
    with Catalog(args.catalog) as catalog:
        print(f"catalog: {catalog!r} (ready in {time.perf_counter() - t0:.1f} s)")
        RE = RunEngine({})
        RE.subscribe(catalog.writer)
        RE.subscribe(BatchProgress(every=5))
        view = LiveSparseView(args.figures, truth=truth)
        RE.subscribe(view)

        stop = {"max_fraction": args.max_fraction}
        if args.erd_ratio is not None:
            stop["erd_ratio"] = args.erd_ratio
        t1 = time.perf_counter()
        (uid,) = RE(smart_scan([scope.det], scope.y, y0, y1, h, scope.x, x0, x1, w,
                               sampler={"seed": args.seed, "stop": stop}, beam_clock=lambda: scope.clock.now,
                               flyer=scope.flyer if args.fly else None, md={"purpose": "dry run"}))
        wall = time.perf_counter() - t1
        data, steering = read_back(catalog, uid)

    beam = scope.clock.now
    raster = full_raster_time(scope.shape, FLY_TIMING) if args.fly else scope.raster_time()
    kind = "fly raster" if args.fly else "raster"
    print_scan_report(uid, data, steering, truth, args.catalog,
                      f"simulated beam time: {beam:.1f} s vs {raster:.1f} s for a full {kind} ({beam / raster:.2f}x); "
                      f"wall time {wall:.1f} s", view.saved_[-1] if view.saved_ else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
