"""Soak test: many smart scans in a row with faults injected at random points; nothing may be lost.

    python examples/soak_faults.py [--scans 20] [--size 48] [--rate 0.02] [--seed 0]

Each scan runs `smart_scan` on the simulated microscope into one embedded catalog, with a detector
that, at a random ``rate`` of its triggers, raises, hangs (past the plan's timeout) or reads NaN.
All scans share one RunEngine, as in a beamline session. After every scan it checks that the
catalog holds exactly the readings the RunEngine emitted and that no failed reading became a
number, and it prints the process's memory: the resident set (RSS) and the Python heap as
`tracemalloc` counts it. Exit code 1 if a reading was lost or memory kept growing over the second
half of the scans (Python heap by more than 2 MiB, RSS by more than 50 MiB: native allocators
hold on to freed pages, so RSS settles later than the heap). Not part of CI (a few minutes).
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
import tracemalloc

import numpy as np
from bluesky import RunEngine

from plans import Catalog, read_scan, smart_scan
from sim import FaultyDetector, SimulatedMicroscope, default_sample


def rss_mib() -> float:
    """Resident memory of this process (MiB)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=20)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--rate", type=float, default=0.02, help="share of triggers that fail")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    n = args.size
    lost, memory, heap = 0, [], []
    tracemalloc.start(1)
    with tempfile.TemporaryDirectory() as folder, Catalog(folder) as catalog:
        RE = RunEngine({})
        RE.subscribe(catalog.writer)
        docs = []
        RE.subscribe(lambda name, doc: docs.append((name, doc)))
        for k in range(args.scans):
            scope = SimulatedMicroscope(default_sample(n), name="sim")
            det = FaultyDetector(scope, rate=args.rate, seed=rng, name="det")
            docs.clear()
            t0 = time.perf_counter()
            (uid,) = RE(smart_scan([det], scope.y, 0, n - 1, n, scope.x, 0, n - 1, n, timeout=0.2,
                                   sampler={"seed": k, "stop": {"max_fraction": 0.2}}))
            catalog.writer.wait()
            emitted = [d for name, d in docs if name == "event" and "det" in d["data"]]
            data = read_scan(catalog.client[uid])
            emitted_values = np.array([e["data"]["det"] for e in emitted], dtype=float)
            missing = len(emitted) - len(data.values)
            invented = int(np.sum(np.isfinite(data.values) != np.isfinite(emitted_values))) if not missing else 0
            lost += max(missing, 0) + invented
            n_emitted, n_stored, n_failed = len(emitted), len(data.values), int(np.isnan(data.values).sum())
            del emitted, data
            gc.collect()
            memory.append(rss_mib())
            heap.append(tracemalloc.get_traced_memory()[0] / 2**20)
            print(f"scan {k + 1:2d}: {n_emitted} readings emitted, {n_stored} in the catalog, "
                  f"{n_failed} failed (kept as NaN), {len(det.injected_)} faults injected, "
                  f"{time.perf_counter() - t0:.1f} s, RSS {memory[-1]:.0f} MiB, Python heap {heap[-1]:.2f} MiB, "
                  f"{docs[-1][1]['exit_status']}", flush=True)
    half = len(memory) // 2
    growth = memory[-1] - memory[half] if len(memory) > 2 else 0.0
    heap_growth = heap[-1] - heap[half] if len(heap) > 2 else 0.0
    print(f"readings lost or invented: {lost}; RSS {memory[0]:.0f} -> {memory[-1]:.0f} MiB (second half "
          f"{growth:+.0f} MiB); Python heap {heap[0]:.2f} -> {heap[-1]:.2f} MiB (second half {heap_growth:+.2f} MiB)")
    return 1 if lost or growth > 50 or heap_growth > 2 else 0


if __name__ == "__main__":
    sys.exit(main())
