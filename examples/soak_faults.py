"""Soak test: many smart scans in a row with faults injected at random points; nothing may be lost.

    python examples/soak_faults.py [--scans 20] [--size 48] [--rate 0.02] [--seed 0]

Each scan runs `smart_scan` on the simulated microscope into one embedded catalog, with a detector
that, at a random ``rate`` of its triggers, raises, hangs (past the plan's timeout) or reads NaN.
After every scan it checks that the catalog holds exactly the readings the RunEngine emitted and
that no failed reading became a number, and it prints the process's memory. Exit code 1 if a
reading was lost or memory kept growing. Not part of CI (it takes a few minutes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
from bluesky import RunEngine
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.status import Status

from plans import Catalog, read_scan, smart_scan
from sim import SimulatedMicroscope, default_sample


class RandomlyFailingDetector(Device):
    """The microscope's sample, except that a random ``rate`` of triggers raise, hang or read NaN."""

    value = Cpt(Signal, value=0.0, kind=Kind.hinted)

    def __init__(self, scope, rate: float, rng: np.random.Generator, *, name="det", **kwargs):
        super().__init__("", name=name, **kwargs)
        self.value.name = self.name
        self.scope, self.rate, self.rng = scope, rate, rng
        self.injected_ = 0

    def trigger(self):
        status = Status(obj=self)
        if self.rng.random() < self.rate:
            self.injected_ += 1
            kind = self.rng.choice(["raise", "hang", "nan"])
            if kind == "raise":
                raise RuntimeError("injected detector fault")
            if kind == "hang":
                return status
            self.value.put(np.nan)
        else:
            self.value.put(self.scope.sample_at(self.scope.y.position, self.scope.x.position))
        status.set_finished()
        return status


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
    lost, memory = 0, []
    with tempfile.TemporaryDirectory() as folder, Catalog(folder) as catalog:
        for k in range(args.scans):
            scope = SimulatedMicroscope(default_sample(n), name="sim")
            det = RandomlyFailingDetector(scope, args.rate, rng)
            RE = RunEngine({})
            RE.subscribe(catalog.writer)
            docs = []
            RE.subscribe(lambda name, doc, docs=docs: docs.append((name, doc)))
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
            memory.append(rss_mib())
            print(f"scan {k + 1:2d}: {len(emitted)} readings emitted, {len(data.values)} in the catalog, "
                  f"{int(np.isnan(data.values).sum())} failed (kept as NaN), {det.injected_} faults injected, "
                  f"{time.perf_counter() - t0:.1f} s, RSS {memory[-1]:.0f} MiB, {docs[-1][1]['exit_status']}",
                  flush=True)
    growth = memory[-1] - memory[len(memory) // 2] if len(memory) > 2 else 0.0
    print(f"readings lost or invented: {lost}; memory {memory[0]:.0f} -> {memory[-1]:.0f} MiB "
          f"(second half grew {growth:.0f} MiB)")
    return 1 if lost or growth > 100 else 0


if __name__ == "__main__":
    sys.exit(main())
