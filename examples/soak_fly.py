"""Soak of fly scans over Channel Access: many fly smart scans in a row against one simulated IOC.

    python examples/soak_fly.py [--scans 20] [--beam-time 15] [--catalog DIR]

Starts ``python -m sim.ioc`` (a 64x64 sample, motors with acceleration, the MCS) on private loopback
ports with a served log, then runs ``--scans`` fly smart scans (`devices.MCSFlyer`) into one catalog,
each with a beam-time budget of ``--beam-time`` seconds of the plan's own clock (fly mode picks the
same route whatever the seed, so a soak repeats one scan).
After each it checks what was stored against what the IOC served: every pixel stored holds a bin the
IOC served on its row, within half the flight's pixel step, with the value served, and no bin is
stored twice (a lost bin shows as a pixel without one). It prints, per scan, the pixels, the flights,
the bins served and stored, the beam time per pixel against the dwell and the overhead per flight,
and at the end the totals. Exit status 1 if a scan hung (``--timeout``), failed or lost a bin.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

PREFIX = "soak:"
SPEED, ACCEL = 100.0, 0.02  # the motors' speed (pixels/s) and .ACCL (s)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=20)
    ap.add_argument("--beam-time", type=float, default=15.0, help="seconds of beam time per scan")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds after which a scan counts as hung")
    ap.add_argument("--catalog", default=None, help="catalog directory (default: a temporary one)")
    args = ap.parse_args(argv)

    from sim.ioc_process import IOCProcess, RepeaterProcess, configure_loopback, free_port

    server_port = free_port()
    configure_loopback(server_port=server_port, repeater_port=free_port(exclude=(server_port,)))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from blob_image import blob_image

    with tempfile.TemporaryDirectory() as tmp, RepeaterProcess().start():
        folder = Path(tmp)
        np.save(folder / "sample.npy", blob_image(64))
        served = folder / "served.csv"
        with IOCProcess("--image", folder / "sample.npy", "--prefix", PREFIX, "--pixel-size", 1.0, "--velocity",
                        SPEED, "--acceleration", ACCEL, "--dwell", 0, "--served-log", served).start():
            from bluesky import RunEngine

            from devices import MCSFlyer, ScanStage
            from plans import Catalog, read_scan, smart_scan
            from sim.served import match_stored_bins, read_served_log
            from steering.timing import StageTiming

            timing = StageTiming(pixel_size=1.0, dwell=0.005, velocity=200.0, acceleration=200.0 / ACCEL,
                                 settle=0.0, line_overhead=0.3)
            stage = ScanStage(PREFIX, y_pv="m2", x_pv="m1", name="stage")
            flyer = MCSFlyer(PREFIX + "mcs:", x_motor=stage.x, y_motor=stage.y, timing=timing, name="mcs")
            for device in (stage, flyer.mcs):
                device.wait_for_connection(timeout=10)
            stage.x.velocity.put(SPEED, wait=True)
            failures, totals = 0, np.zeros(5)
            with Catalog(args.catalog or folder / "catalog") as catalog:
                RE = RunEngine({}, context_managers=[])  # run in a thread (to catch a hang): no SIGINT handler
                RE.subscribe(catalog.writer)
                for k in range(args.scans):
                    with open(served) as f:
                        before = sum(1 for _ in f) - 1  # lines served so far, without the header
                    flights = flyer.flights_
                    outcome: dict = {}

                    def scan(seed=k, outcome=outcome):
                        try:
                            t0 = time.perf_counter()
                            outcome["uid"] = RE(smart_scan(
                                [flyer], stage.y, 0, 63, 64, stage.x, 0, 63, 64, flyer=flyer,
                                sampler={"seed": seed, "stop": {"max_fraction": None,
                                                                "max_beam_time": args.beam_time}}))[0]
                            outcome["wall"] = time.perf_counter() - t0
                        except Exception as exc:
                            outcome["error"] = f"{type(exc).__name__}: {exc}"

                    worker = threading.Thread(target=scan, daemon=True)
                    worker.start()
                    worker.join(args.timeout)
                    if worker.is_alive():
                        print(f"scan {k + 1}: HUNG (no end after {args.timeout:.0f} s)")
                        return 1
                    if "error" in outcome:
                        print(f"scan {k + 1}: FAILED: {outcome['error']}")
                        failures += 1
                        continue
                    catalog.writer.wait()
                    data = read_scan(catalog.client[outcome["uid"]], earlier=False)
                    bins = read_served_log(served, PREFIX + "mcs:mca2", start=before)
                    matched, unmatched = match_stored_bins(data.points, data.values, data.batches, bins)
                    n, flown = len(data.points), flyer.flights_ - flights
                    beam = float(data.beam_time or outcome["wall"])
                    overhead = (beam - n * timing.dwell) / max(flown, 1)
                    totals += (n, flown, len(bins), matched, unmatched)
                    failures += unmatched > 0 or not flyer.velocity_restored_
                    print(f"scan {k + 1:2d}: {n:4d} pixels in {flown:3d} flights, {len(bins):5d} bins served, "
                          f"{matched:4d} stored at their pixels, {unmatched} without a bin; beam time {beam:5.1f} s: "
                          f"{1e3 * beam / max(n, 1):5.1f} ms per pixel against a {1e3 * timing.dwell:.0f} ms dwell, "
                          f"{overhead:.2f} s per flight besides the dwells; speed put back: {flyer.velocity_restored_}")
            n, flown, served_bins, matched, unmatched = totals.astype(int)
            print(f"{args.scans} scans: {n} pixels in {flown} flights, {served_bins} bins served, {matched} stored "
                  f"once at their pixels, {unmatched} pixels without a bin, {failures} scans failed or lost a bin")
            for device in (stage, flyer):
                device.destroy()
            import epics

            epics.ca.finalize_libca()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
