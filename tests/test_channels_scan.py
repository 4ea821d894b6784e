"""A smart scan steering on several channels (element maps of one fluorescence spectrum), with the real
RunEngine, the simulated multi-element microscope and the session's catalog."""

import numpy as np
import pytest
from bluesky import RunEngine

from plans import LiveSparseView, plot_scan, read_scan, smart_scan
from sim import SimulatedMicroscope, element_maps
from sim.faults import FaultyDetector
from steering import Sampler
from steering.metrics import psnr

FIELDS = ["sim_det_fe", "sim_det_zn", "sim_det_cu"]
N = 40


@pytest.fixture(scope="module")
def maps():
    return element_maps(N, seed=5)


def _events(docs, stream):
    streams = {d["uid"]: d["name"] for name, d in docs if name == "descriptor"}
    return [d for name, d in docs if name == "event" and streams[d["descriptor"]] == stream]


def _scan(scope, **kwargs):
    kwargs.setdefault("sampler", {"seed": 0, "stop": {"max_fraction": 0.2}})
    return smart_scan([scope.det], scope.y, 0, N - 1, N, scope.x, 0, N - 1, N, value_field=FIELDS, **kwargs)


def test_a_three_channel_scan_stores_every_channel_of_every_point_once_and_reads_each_back(maps, catalog, tmp_path):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    live = LiveSparseView(tmp_path / "live", truth=np.stack(list(maps.values())))
    RE.subscribe(live)
    scope = SimulatedMicroscope(maps, name="sim")
    (uid,) = RE(_scan(scope, channel_weights=[1, 2, 1]))
    assert catalog.writer.wait()
    stop = docs[-1][1]
    assert stop["exit_status"] == "success" and stop["reason"].startswith("max_fraction reached")
    start = docs[0][1]
    assert start["value_field"] == FIELDS and start["plan_args"]["channel_weights"] == [1, 2, 1]
    assert start["sampler"]["channels"] == 3 and start["sampler"]["channel_weights"] == [0.25, 0.5, 0.25]

    events = _events(docs, "primary")
    assert len(events) == round(0.2 * N * N) == stop["num_events"]["primary"]
    pixels = [(int(e["data"]["sim_y"]), int(e["data"]["sim_x"])) for e in events]
    assert len(set(pixels)) == len(pixels)  # each point once
    assert len(scope.det.exposures_) == len(pixels)  # and exposed once
    for e, (r, c) in zip(events, pixels, strict=True):
        for element, field in zip(maps, FIELDS, strict=True):
            assert e["data"][field] == pytest.approx(maps[element][r, c])  # every channel, as the sample has it

    data = read_scan(catalog.client[uid])
    assert data.fields == tuple(FIELDS) and data.values.shape == (len(pixels), 3)
    images = data.reconstruct()
    assert images.shape == (3, N, N)
    scores = [psnr(maps[e], images[k]) for k, e in enumerate(maps)]
    assert min(scores) > 18, scores
    stored_maps = catalog.client[uid]["steering_maps"].read()
    assert stored_maps["steering_maps_reconstruction"].shape[1:] == (3, N, N)
    assert stored_maps["steering_maps_erd"].shape[1:] == (N, N)  # the channels' combined ERD

    assert live.picture.reconstruction.shape == (3, N, N) and len(live.picture.values[0]) == 3
    titles = [ax.get_title() for ax in live.figure.axes if ax.get_title()]
    assert titles[:3] == [f"reconstruction: {f}" for f in FIELDS]
    assert "predicted ERD (channels combined)" in titles and titles[-3:] == [f"truth: {f}" for f in FIELDS]
    figure = plot_scan(catalog.client[uid], truth=np.stack(list(maps.values())), path=tmp_path / "scan.png")
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == titles
    print(f"\n3-channel scan of {N}x{N}: {len(pixels)} points, each stored once with all 3 channels; "
          f"read back and reconstructed per channel: PSNR {', '.join(f'{s:.2f}' for s in scores)} dB")


def test_a_value_missing_in_one_channel_keeps_the_point_and_one_missing_in_all_fails_it(maps, catalog):
    """Two detectors as two channels (a detector that reads NaN on demand: a dropped line cannot be made real)."""
    scope = SimulatedMicroscope(maps["fe"], name="sim")
    gap = {(r, c): ["nan"] * 3 for r in range(10, 20) for c in range(10, 20)}  # channel b gave nothing here
    dead = {(r, c) for r in range(30, 33) for c in range(30, 33)}  # neither channel gave anything here
    a = FaultyDetector(scope, {p: ["nan"] * 10 for p in dead}, name="a")
    b = FaultyDetector(scope, {**gap, **{p: ["nan"] * 10 for p in dead}}, name="b")
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    sampler = Sampler((N, N), seed=0, channels=2, initial_fraction=0.05)
    (uid,) = RE(smart_scan([a, b], scope.y, 0, N - 1, N, scope.x, 0, N - 1, N, value_field=["a", "b"],
                           sampler=sampler))
    assert catalog.writer.wait()
    events = _events(docs, "primary")
    pixels = np.array([(int(e["data"]["sim_y"]), int(e["data"]["sim_x"])) for e in events])
    read_b = np.array([e["data"]["b"] for e in events])
    in_gap = np.array([tuple(p) in gap for p in pixels.tolist()])
    assert in_gap.any() and np.isnan(read_b[in_gap]).all()  # stored as read
    failed = [(int(e["data"]["steering_failures_row"]), int(e["data"]["steering_failures_col"]))
              for e in _events(docs, "steering_failures")]
    # a value in one channel measures the point: one try, no failure, told with b filled in for steering
    assert not set(failed) & gap.keys()
    assert all(len(b.faults[p]) == 2 for p in map(tuple, pixels[in_gap].tolist()))  # one trigger each
    missing = sampler.missing_mask
    assert missing[1][pixels[in_gap, 0], pixels[in_gap, 1]].all() and not missing[0].any()
    assert np.isfinite(sampler.reconstruction).all()
    # a value in no channel fails the point: recorded as failed, never counted as measured
    assert failed and set(failed) <= dead and not dead & {tuple(p) for p in sampler.measured_points.tolist()}
    images = read_scan(catalog.client[uid]).reconstruct()
    assert images.shape == (2, N, N) and np.isfinite(images).all()  # each from the points where it is a number
    print(f"\n{in_gap.sum()} points without channel b kept (filled from b's reconstruction for steering), "
          f"{len(failed)} tries at points with nothing recorded as failed")


def test_bad_channel_arguments_are_refused_before_anything_moves(maps):
    scope = SimulatedMicroscope(maps, name="sim")
    RE = RunEngine({})
    cases = [
        (dict(value_field=["sim_det_fe", "sim_det_fe"]), ValueError, "names a field twice"),
        (dict(value_field=["sim_det_fe", 3]), TypeError, "value_field must be"),
        (dict(value_field="sim_det_fe", channel_weights=[1, 2]), ValueError, "channel_weights needs value_field"),
        (dict(value_field=["sim_det_fe", "sim_det_zn"], channel_weights=[1]), ValueError, "channel_weights must be 2"),
        (dict(value_field=["sim_det_fe", "nope"]), ValueError, "'nope' is not among the fields"),
        (dict(value_field=["sim_det_fe", "sim_det_zn"], sampler=Sampler((N, N))), ValueError, "1 channel"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            RE(smart_scan([scope.det], scope.y, 0, N - 1, N, scope.x, 0, N - 1, N, **kwargs))
    assert scope.det.triggers_ == 0


def test_a_scan_of_several_channels_resumes_on_the_same_fields_only(maps, catalog):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    scope = SimulatedMicroscope(maps, name="sim")
    (first,) = RE(_scan(scope, sampler={"seed": 0, "stop": {"max_fraction": 0.08}}))
    assert catalog.writer.wait()
    (second,) = RE(_scan(scope, sampler={"seed": 0, "stop": {"max_fraction": 0.16}},
                         resume_from=catalog.client[first]))
    assert catalog.writer.wait()
    data = read_scan(catalog.client[second])
    assert len(data.points) == round(0.16 * N * N) and len({tuple(p) for p in data.points.tolist()}) == len(data.points)
    with pytest.raises(ValueError, match="resume with the same value_field"):
        RE(smart_scan([scope.det], scope.y, 0, N - 1, N, scope.x, 0, N - 1, N, value_field=FIELDS[:2],
                      resume_from=catalog.client[second]))
