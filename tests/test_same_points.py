"""The same seed gives the same points, values and images as before the core was taken apart.

`data/before_refactor.json` was recorded with commit eaa0ca1, the last one before `smart_scan` and
`Sampler` were split into their parts: the points in the order measured, sha256 digests of the
float64 bytes of reconstructions and values (equal digests: equal to the last bit), and the stop
signals batch by batch. The signals are compared to a relative 1e-6: they sum the network's float32
output, whose last bits depend on how many threads torch uses.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from bluesky import RunEngine

from plans import smart_scan
from sim import SimulatedMicroscope
from steering import Sampler, StopCriteria, run
from steering.tools.bench import run_sampler

BEFORE = json.loads((Path(__file__).parent / "data" / "before_refactor.json").read_text())


def _digest(values) -> str:
    return hashlib.sha256(np.ascontiguousarray(values, dtype=np.float64).tobytes()).hexdigest()


def _same_signal(sampler, name, before):
    np.testing.assert_allclose([h.get(name, np.nan) for h in sampler.history_],
                               [np.nan if v is None else v for v in before], rtol=1e-6, err_msg=name)


def test_the_sampler_measures_the_same_points_and_signals(blobs):
    s = run(Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.2)), lambda p: blobs[p[:, 0], p[:, 1]])
    before = BEFORE["direct"]
    np.testing.assert_array_equal(s.measured_points, before["points"])
    assert _digest(s.reconstruction) == before["reconstruction_sha256"]
    for name in ("erd_ratio", "prediction_error", "ssim_estimate"):
        _same_signal(s, name, before[name])


def test_random_probes_fall_where_they_fell(blobs):
    s = Sampler((64, 64), seed=5, batch_size=20, stop=StopCriteria(max_fraction=0.3), probe_fraction=0.1)
    while not s.done:  # without a start, as it was recorded
        points = s.ask()
        s.tell(points, blobs[points[:, 0], points[:, 1]])
    before = BEFORE["probes"]
    np.testing.assert_array_equal(s.measured_points, before["points"])
    assert _digest(s.reconstruction) == before["reconstruction_sha256"]
    _same_signal(s, "ssim_estimate", before["ssim_estimate"])


def test_smart_scan_moves_to_the_same_points_and_reads_the_same_values(blobs):
    scope = SimulatedMicroscope(blobs, name="sim")
    sampler = Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.2))
    docs = []
    RE = RunEngine({})
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, sampler=sampler))
    primary = {d["uid"] for name, d in docs if name == "descriptor" and d["name"] == "primary"}
    events = [d["data"] for name, d in docs if name == "event" and d["descriptor"] in primary]
    before = BEFORE["plan"]
    np.testing.assert_array_equal([[e["sim_y"], e["sim_x"]] for e in events], before["points"])
    assert _digest([e["sim_det"] for e in events]) == before["values_sha256"]
    assert _digest(sampler.reconstruction) == before["reconstruction_sha256"]


def test_the_benchmark_loop_gives_the_same_images(blobs):
    result = run_sampler(blobs, (0.05, 0.1), seed=0)
    assert _digest(result["recon"][0.05]) == BEFORE["bench"]["reconstruction_05_sha256"]
    assert _digest(result["recon"][0.1]) == BEFORE["bench"]["reconstruction_10_sha256"]
