"""Record what commit eaa0ca1 (before the core was taken apart) measures; `test_same_points` compares.

Usage: ``python tests/record_before_refactor.py TREE`` prints the record as JSON, where ``TREE`` holds
eaa0ca1's ``steering``, ``plans``, ``sim`` and ``tests/blob_image.py`` (``git archive eaa0ca1 ...``).
Run it from a folder other than the repository's, so that ``TREE``'s packages are the ones imported.

The last bits of a reconstruction depend on the CPU's vector instructions (numpy and torch choose
their kernels at run time), and a near tie between two pixels' ERD then turns on those bits, so a
digest recorded on one machine does not hold on another. Recording the old code on the machine that
runs the test compares like with like.
"""

import hashlib
import json
import sys
from pathlib import Path


def _digest(values) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()


def _signals(sampler, *names) -> dict:
    return {name: [h.get(name) for h in sampler.history_] for name in names}


def record(tree: Path) -> dict:
    """Run the four recorded scans with the code in ``tree``; return their points, digests and signals."""
    sys.path[:0] = [str(tree), str(tree / "tests")]
    from blob_image import blob_image
    from bluesky import RunEngine
    from steering.bench import run_sampler

    import steering
    from plans import smart_scan
    from sim import SimulatedMicroscope
    from steering import Sampler, StopCriteria

    if Path(steering.__file__).resolve().parent != (tree / "steering").resolve():
        raise RuntimeError(f"imported {steering.__file__}, not the code in {tree}")
    blobs = blob_image(64)

    def scan_directly(sampler):
        position = None
        while not sampler.done:
            points = sampler.ask(None, start=position)
            if len(points) == 0:
                break
            sampler.tell(points, blobs[points[:, 0], points[:, 1]])
            position = tuple(points[-1])
        return sampler

    s = scan_directly(Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.2)))
    direct = {"points": s.measured_points.tolist(), "reconstruction_sha256": _digest(s.reconstruction),
              **_signals(s, "erd_ratio", "prediction_error", "ssim_estimate")}

    s = Sampler((64, 64), seed=5, batch_size=20, stop=StopCriteria(max_fraction=0.3, probe_fraction=0.1))
    while not s.done:  # without a start
        points = s.ask()
        s.tell(points, blobs[points[:, 0], points[:, 1]])
    probes = {"points": s.measured_points.tolist(), "reconstruction_sha256": _digest(s.reconstruction),
              **_signals(s, "ssim_estimate")}

    scope = SimulatedMicroscope(blobs, name="sim")
    s = Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.2))
    docs = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, sampler=s))
    primary = {d["uid"] for name, d in docs if name == "descriptor" and d["name"] == "primary"}
    events = [d["data"] for name, d in docs if name == "event" and d["descriptor"] in primary]
    plan = {"points": [[e["sim_y"], e["sim_x"]] for e in events],
            "values_sha256": _digest([e["sim_det"] for e in events]),
            "reconstruction_sha256": _digest(s.reconstruction)}

    result = run_sampler(blobs, (0.05, 0.1), seed=0)
    bench = {"reconstruction_05_sha256": _digest(result["recon"][0.05]),
             "reconstruction_10_sha256": _digest(result["recon"][0.1])}
    return {"recorded_with": f"commit eaa0ca1's code in {tree}, on this machine",
            "direct": direct, "probes": probes, "plan": plan, "bench": bench}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    json.dump(record(Path(sys.argv[1]).resolve()), sys.stdout, default=float)
