"""Dry run over real Channel Access: the beamline code path against the simulated IOC.

    python examples/dry_run_ioc.py [--sample IMAGE] [--detector scaler|roi] [--catalog DIR] [--max-fraction 0.25]
    python examples/dry_run_ioc.py --fly [--acceleration 0.05]   # fly: the motor flies rows, an MCS bins them
    python examples/dry_run_ioc.py --external --prefix sim:     # an IOC you started: python -m sim.ioc

By default it starts ``python -m sim.ioc`` (and a CA repeater) on private loopback ports, connects the
`devices` classes a beamline profile would define (``ScanStage`` of two EPICS motor records, a
``ScalerDetector`` or ``ROISumDetector``) through ophyd and pyepics, runs ``RE(smart_scan(...))``
into the embedded catalog, reads the run back and scores it against the sample. With ``--fly`` the
fast motor flies each line the sampler asks for while the IOC's MCS records one bin per pixel
(`devices.MCSFlyer`). Moves and counts take real time here (stage speed, settling and dwell are the
IOC's), so the default is a 64x64 sample.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scan_report import print_scan_report, read_back


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", default=None, help="image file (TIFF/PNG/NPY); default: the built-in 64x64 sample")
    ap.add_argument("--detector", choices=("scaler", "roi"), default="scaler")
    ap.add_argument("--catalog", default="smart_scan_data", help="embedded catalog directory, or a tiled URI")
    ap.add_argument("--max-fraction", type=float, default=0.25, help="stop at this fraction of the grid")
    ap.add_argument("--pixel-size", type=float, default=0.05, help="um between sample pixels")
    ap.add_argument("--velocity", type=float, default=20.0, help="stage speed (um/s)")
    ap.add_argument("--settle-time", type=float, default=0.005, help="motor settle time .DLY (s)")
    ap.add_argument("--dwell", type=float, default=0.01, help="count time per point (s)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fly", action="store_true", help="fly scan: the motor flies rows, the IOC's MCS bins them")
    ap.add_argument("--acceleration", type=float, default=0.05, help="motor acceleration time .ACCL (s)")
    ap.add_argument("--prefix", default="sim:", help="PV prefix of the IOC")
    ap.add_argument("--external", action="store_true",
                    help="use an IOC already running with the default EPICS environment instead of starting one")
    ap.add_argument("--figures", default=".", help="where the live view saves its PNG")
    args = ap.parse_args(argv)

    # Channel Access set-up must precede the first ophyd import (pyepics reads it once).
    from sim.ioc_process import IOCProcess, RepeaterProcess, configure_loopback, free_port
    from sim.sample import SampleImage, default_sample

    sample = SampleImage(args.sample if args.sample else default_sample(64), pixel_size=args.pixel_size)
    (h, w), (y0, y1, x0, x1) = sample.shape, sample.extent()
    with contextlib.ExitStack() as stack:
        if args.external:
            configure_loopback()
            print(f"using the running IOC with prefix {args.prefix!r} (sample must match: {h}x{w} px, "
                  f"pixel {args.pixel_size} um)")
        else:
            server_port = free_port()
            configure_loopback(server_port=server_port, repeater_port=free_port(exclude=(server_port,)))
            stack.enter_context(RepeaterProcess().start())
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            np.save(folder / "sample.npy", sample.image)
            ioc = stack.enter_context(IOCProcess(
                "--image", folder / "sample.npy", "--prefix", args.prefix, "--pixel-size", args.pixel_size,
                "--velocity", args.velocity, "--settle-time", args.settle_time, "--dwell", args.dwell,
                "--acceleration", args.acceleration).start())
            print(ioc.ready_line)

        from bluesky import RunEngine

        from devices import MCSFlyer, ROISumDetector, ScalerDetector, ScanStage
        from plans import BatchProgress, Catalog, LiveSparseView, smart_scan

        # What a beamline profile defines (see examples/beamline_profile/startup/00-devices.py).
        stage = ScanStage(args.prefix, y_pv="m2", x_pv="m1", name="stage")
        if args.detector == "scaler":
            det = ScalerDetector(args.prefix + "scaler1", channel=2, name="scaler")
            dwell_signal = det.preset_time
        else:
            det = ROISumDetector(args.prefix, cam="cam1:", roi="ROIStat1:1:", name="roi")
            dwell_signal = det.acquire_time
        flyer = None
        if args.fly:
            from steering.timing import StageTiming

            # the model the sampler plans segments with: the motors' speed and acceleration, a pixel's dwell, and
            # about 0.5 s per flown line (as measured here) for the run-up, the MCS's set-up and its bins over CA
            timing = StageTiming(pixel_size=args.pixel_size, dwell=args.dwell, velocity=args.velocity,
                                 acceleration=args.velocity / max(args.acceleration, 1e-3), settle=args.settle_time,
                                 line_overhead=0.5)
            flyer = MCSFlyer(args.prefix + "mcs:", x_motor=stage.x, y_motor=stage.y, timing=timing, name="mcs")
            det = flyer
        t0 = time.perf_counter()
        for device in (stage, det if flyer is None else flyer.mcs):
            device.wait_for_connection(timeout=10)
        if flyer is None:
            dwell_signal.put(args.dwell, wait=True)
        print(f"connected {stage.y.prefix}, {stage.x.prefix}, {det.prefix or flyer.mcs.prefix} over Channel Access "
              f"in {time.perf_counter() - t0:.2f} s; stage limits {stage.x.limits} um")

        with Catalog(args.catalog) as catalog:
            RE = RunEngine({})
            RE.subscribe(catalog.writer)
            RE.subscribe(BatchProgress(every=5))
            view = LiveSparseView(args.figures, truth=sample.image)
            RE.subscribe(view)
            t1 = time.perf_counter()
            (uid,) = RE(smart_scan([det], stage.y, y0, y1, h, stage.x, x0, x1, w,
                                   sampler={"seed": args.seed, "stop": {"max_fraction": args.max_fraction}},
                                   flyer=flyer, md={"purpose": "dry run over Channel Access"}))
            wall = time.perf_counter() - t1
            data, steering = read_back(catalog, uid)
        # Close our Channel Access circuits before the IOC goes, so libca has nothing to complain about.
        import epics

        for device in (stage, det):  # in a fly scan, det is the flyer (with its MCS)
            device.destroy()
        epics.ca.finalize_libca()

    n = len(data.points)
    if flyer is not None:
        print(f"fly: {n} pixels in {flyer.flights_} flights, {1e3 * wall / n:.1f} ms of wall time per pixel against "
              f"a {1e3 * args.dwell:.0f} ms dwell: {(wall - n * args.dwell) / max(flyer.flights_, 1):.2f} s per "
              f"flight besides the dwells (moves, run-up, the MCS over Channel Access, the sampler)")
    print_scan_report(uid, data, steering, sample.image, args.catalog,
                      f"wall time: {wall:.1f} s, {1e3 * wall / n:.1f} ms per point (dwell {1e3 * args.dwell:.0f} ms, "
                      f"settle {1e3 * args.settle_time:.0f} ms, stage {args.velocity:g} um/s)",
                      view.saved_[-1] if view.saved_ else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
