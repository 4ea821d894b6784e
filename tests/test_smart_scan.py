"""smart_scan end to end: real RunEngine, simulated microscope, embedded tiled catalog."""

import inspect
import json
import threading

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from plans import STEERING_STREAM, BatchProgress, LiveSparseView, plot_scan, read_scan, replay_journal, smart_scan
from sim import SimulatedMicroscope
from steering import Sampler, StopCriteria
from steering.metrics import psnr


def _scan(scope, n, **kwargs):
    return smart_scan([scope.det], scope.y, 0, n - 1, n, scope.x, 0, n - 1, n, **kwargs)


def _primary(docs):
    streams = {d["uid"]: d["name"] for name, d in docs if name == "descriptor"}
    return [d for name, d in docs if name == "event" and streams[d["descriptor"]] == "primary"]


def _stream_events(docs, stream):
    streams = {d["uid"]: d["name"] for name, d in docs if name == "descriptor"}
    return [d for name, d in docs if name == "event" and streams[d["descriptor"]] == stream]


def test_64x64_scan_runs_to_its_stop_rule_and_is_stored_once_per_point(blobs, catalog):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    scope = SimulatedMicroscope(blobs, name="sim")
    sampler = Sampler((64, 64), seed=0)
    (uid,) = RE(_scan(scope, 64, sampler=sampler))

    stop = docs[-1][1]
    assert stop["exit_status"] == "success"
    assert stop["reason"].startswith("max_fraction reached")
    assert sampler.n_measured == round(0.25 * 64 * 64) == stop["num_events"]["primary"]
    # one steering event per batch (every tell of the sampler)
    assert stop["num_events"][STEERING_STREAM] == len(sampler.history_) == len(sampler.tell_times_)

    run = catalog.client[uid]
    data = read_scan(run)
    assert len(data.points) == sampler.n_measured
    assert len({tuple(p) for p in data.points.tolist()}) == len(data.points)  # each point once
    assert np.array_equal(np.sort(data.points[:, 0] * 64 + data.points[:, 1]),
                          np.sort(sampler.measured_points[:, 0] * 64 + sampler.measured_points[:, 1]))
    np.testing.assert_allclose(data.values, blobs[data.points[:, 0], data.points[:, 1]])
    assert data.stop_reason == stop["reason"]
    start = run.metadata["start"]
    assert start["shape"] == [64, 64] and start["extents"] == [[0.0, 63.0], [0.0, 63.0]]
    assert start["hints"]["dimensions"] == [[["sim_y"], "primary"], [["sim_x"], "primary"]]
    assert "gridding" not in start["hints"]
    assert start["sampler"]["model"]["sha256"] and start["sampler"]["stop"]["max_fraction"] == 0.25
    steering = run[STEERING_STREAM].read()
    assert len(steering["steering_batch"]) == stop["num_events"][STEERING_STREAM]
    maps = run["steering_maps"].read()
    assert maps["steering_maps_reconstruction"].shape[1:] == (64, 64)
    # offline reconstruction from the catalog is as good as the sampler's own (triangulations of
    # co-circular grid points may differ, so the pixels need not match exactly)
    offline, online = psnr(blobs, data.reconstruct()), psnr(blobs, sampler.reconstruction)
    assert abs(offline - online) < 0.5 and offline > 25


def test_plan_quality_equals_driving_the_sampler_directly(blobs):
    RE = RunEngine({})
    scope = SimulatedMicroscope(blobs, name="sim")
    in_plan = Sampler((64, 64), seed=3, stop=None)
    RE(_scan(scope, 64, sampler=in_plan))

    direct = Sampler((64, 64), seed=3, stop=None)
    start = (0, 0)  # where the simulated stage starts
    while True:
        pts = direct.ask(start=start)
        if len(pts) == 0:
            break
        direct.tell(pts, blobs[pts[:, 0], pts[:, 1]])
        start = tuple(pts[-1])
    assert np.array_equal(in_plan.measured_points, direct.measured_points)
    assert np.array_equal(in_plan.reconstruction, direct.reconstruction)
    assert in_plan.stop_reason == direct.stop_reason


def test_pause_and_resume_measure_no_point_twice(blobs, catalog):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    pause_at = {60, 250}

    def pause_mid_scan(name, doc):
        if name == "event" and doc["seq_num"] in pause_at and "sim_det" in doc["data"]:
            pause_at.discard(doc["seq_num"])
            # as a user's Ctrl-C would: from another thread, while the scan goes on
            threading.Thread(target=RE.request_pause, kwargs={"defer": False}).start()

    RE.subscribe(pause_mid_scan)
    scope = SimulatedMicroscope(blobs, name="sim")
    sampler = Sampler((64, 64), seed=1, stop=None)
    sampler.stop_ = sampler.stop_.__class__(max_fraction=0.12)
    pauses = 0
    with pytest.raises(RunEngineInterrupted):
        RE(_scan(scope, 64, sampler=sampler))
    pauses += 1
    while RE.state == "paused":
        try:
            RE.resume()
        except RunEngineInterrupted:
            pauses += 1
    assert pauses == 2
    events = _primary(docs)
    seen = [(e["data"]["sim_y"], e["data"]["sim_x"]) for e in events]
    assert len(seen) == len(set(seen)) == sampler.n_measured == round(0.12 * 4096)
    assert [e["seq_num"] for e in events] == list(range(1, len(events) + 1))
    assert scope.det.triggers_ == len(events)  # the detector was not exposed twice either
    run = catalog.client[docs[0][1]["uid"]]
    assert len(read_scan(run).points) == len(events)


def test_network_inference_does_not_block_a_pause(blobs):
    """A pause requested while the sampler thinks takes effect while it still thinks, not when it finishes."""
    thinking, release, finished = threading.Event(), threading.Event(), threading.Event()

    class SlowSampler(Sampler):
        calls = 0

        def ask(self, n=None, *, start=None):
            SlowSampler.calls += 1
            if SlowSampler.calls == 2:  # the first adaptive batch: think until the test says so
                thinking.set()
                release.wait(timeout=600)  # a hang guard only: the test releases it once paused
                finished.set()
            return super().ask(n, start=start)

    RE = RunEngine({})
    scope = SimulatedMicroscope(blobs, name="sim")
    sampler = SlowSampler((64, 64), seed=0, stop=None)
    n_initial = round(0.01 * 4096)
    sampler.stop_ = sampler.stop_.__class__(max_points=n_initial + 20)
    threading.Thread(target=lambda: thinking.wait(600) and RE.request_pause(defer=False), daemon=True).start()
    with pytest.raises(RunEngineInterrupted):
        RE(_scan(scope, 64, sampler=sampler))
    paused_while_thinking = not finished.is_set()
    release.set()
    assert paused_while_thinking
    RE.resume()
    assert sampler.n_measured == n_initial + 20
    assert SlowSampler.calls == 3  # initial, one adaptive batch, the empty last one: none replayed


def test_two_dimensional_detector_is_reduced_to_a_scalar(blobs):
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim", frame_shape=(6, 8))
    sampler = Sampler((32, 32), seed=0, stop=None)
    sampler.stop_ = sampler.stop_.__class__(max_fraction=0.1)
    RE(_scan(scope, 32, sampler=sampler, value_field="sim_det_frame", reduce="sum"))
    events = _primary(docs)
    assert np.asarray(events[0]["data"]["sim_det_frame"]).shape == (6, 8)
    np.testing.assert_allclose(sampler.measured_values, [e["data"]["sim_det"] for e in events])


def test_journal_holds_every_document_before_the_catalog(blobs, catalog):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim")
    (uid,) = RE(_scan(scope, 32, sampler={"seed": 0, "stop": {"max_fraction": 0.2}}))
    replayed = []
    n = replay_journal(catalog.journal.path(uid), lambda name, doc: replayed.append((name, doc)))
    assert n == len(docs) == len(replayed)
    assert [name for name, _ in replayed] == [name for name, _ in docs]
    assert _primary(replayed)[-1]["data"] == json.loads(json.dumps(_primary(docs)[-1]["data"]))


def test_catalog_is_written_at_every_batch(blobs, catalog):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    in_catalog = []

    def check(name, doc):
        if name == "event" and "steering_batch" in doc["data"] and doc["data"]["steering_batch"] in (2, 4):
            assert catalog.writer.wait()
            run = catalog.client[doc_start["uid"]]
            in_catalog.append((len(run["primary"].read()["sim_det"]), doc["data"]["steering_n_measured"]))

    doc_start = {}
    RE.subscribe(lambda name, doc: doc_start.update(doc) if name == "start" else None)
    RE.subscribe(check)
    scope = SimulatedMicroscope(blobs[:40, :40], name="sim")
    RE(_scan(scope, 40, sampler={"seed": 0, "stop": {"max_fraction": 0.15}}))
    assert len(in_catalog) == 2
    for stored, measured in in_catalog:
        assert stored == measured


def test_live_view_writes_a_figure_without_a_display(blobs, tmp_path, capsys):
    RE = RunEngine({})
    view = LiveSparseView(tmp_path, truth=blobs[:32, :32])
    RE.subscribe(view)
    RE.subscribe(BatchProgress())
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim")
    RE(_scan(scope, 32, sampler={"seed": 0, "stop": {"max_fraction": 0.2}}))
    assert len(view.saved_) == 1 and view.saved_[0].stat().st_size > 10_000
    out = capsys.readouterr().out
    assert out.count("batch ") >= 3 and "max_fraction reached" in out


def test_bad_input_is_refused_before_anything_moves(blobs):
    RE = RunEngine({})
    scope = SimulatedMicroscope(blobs[:16, :16], name="sim")
    with pytest.raises(ValueError, match="y_num"):
        RE(smart_scan([scope.det], scope.y, 0, 1, 1, scope.x, 0, 1, 16))
    with pytest.raises(ValueError, match="unknown sampler settings"):
        RE(_scan(scope, 16, sampler={"batchsize": 3}))
    with pytest.raises(ValueError, match="16, 16"):
        RE(_scan(scope, 16, sampler=Sampler((8, 8))))
    with pytest.raises(ValueError, match="reduce"):
        RE(_scan(scope, 16, reduce="median"))
    assert scope.x.moves_ == 0 and scope.det.triggers_ == 0
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    with pytest.raises(ValueError, match="value_field 'nope' is not among the fields the detectors read"):
        RE(_scan(scope, 16, value_field="nope"))
    assert docs == [] and scope.x.moves_ == scope.y.moves_ == scope.det.triggers_ == 0


def test_parameters_are_queueserver_friendly():
    sig = inspect.signature(smart_scan)
    for name, p in sig.parameters.items():
        assert p.annotation is not inspect.Parameter.empty, name
        # objects, not strings: a queue server reads Readable/Movable/Flyable to know which strings name devices
        assert not isinstance(p.annotation, str), name
        if p.default is not inspect.Parameter.empty:
            json.dumps(p.default)  # literal, JSON-friendly defaults
    assert list(sig.parameters)[:9] == [
        "detectors", "y_motor", "y_start", "y_stop", "y_num", "x_motor", "x_start", "x_stop", "x_num"]


def test_every_stop_signal_is_in_the_steering_stream_and_beam_time_can_stop_the_scan(blobs):
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    # 0.1 s dwell per point on the simulated clock: 20 s of beam time is about 200 points
    scope = SimulatedMicroscope(blobs, name="sim", dwell=0.1, velocity=1000.0)
    RE(_scan(scope, 64, sampler={"seed": 0, "stop": {"max_fraction": 0.9, "max_beam_time": 20.0, "error_window": 50}},
             beam_clock=scope.beam_time))  # a signal (a callable works the same: see the fly-scan tests)
    stop = docs[-1][1]
    assert stop["reason"].startswith("max_beam_time reached")
    events = _stream_events(docs, STEERING_STREAM)
    beam = [e["data"]["steering_beam_time"] for e in events]
    wall = [e["data"]["steering_wall_time"] for e in events]
    assert beam == sorted(beam) and 20.0 <= beam[-1] < 20.0 + 0.1 * 64 + 1.0
    assert beam[-1] == pytest.approx(scope.clock.now, abs=1e-6)
    assert wall == sorted(wall) and np.all(np.isfinite(wall))
    last = events[-1]["data"]
    for key in ("erd_ratio", "prediction_error", "recon_change", "ssim_estimate"):
        assert np.isfinite(last[f"steering_{key}"]) and last[f"steering_{key}"] > 0
    with pytest.raises(ValueError, match="beam_clock"):
        list(_scan(scope, 64, beam_clock=3.0))


def _paused_scan(blobs, catalog, at: int):
    """A 64x64 scan into ``catalog``, paused (as by a user, from another thread) at point ``at``.

    Returns the RunEngine (paused, the pausing callback removed), the documents and the microscope.
    """
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))

    def pause_at(name, doc):
        if name == "event" and doc["seq_num"] == at and "sim_det" in doc["data"]:
            threading.Thread(target=RE.request_pause, kwargs={"defer": False}).start()

    token = RE.subscribe(pause_at)
    scope = SimulatedMicroscope(blobs, name="sim")
    with pytest.raises(RunEngineInterrupted):
        RE(_scan(scope, 64, sampler={"seed": 0, "stop": {"max_fraction": 0.2}}))
    RE.unsubscribe(token)
    return RE, docs, scope


def test_resume_from_an_aborted_run_measures_no_stored_point_again(blobs, catalog):
    RE, docs, scope = _paused_scan(blobs, catalog, at=150)
    RE.abort("beam lost")
    assert catalog.writer.wait()
    first = docs[0][1]["uid"]
    assert docs[-1][1]["exit_status"] == "abort"
    stored = read_scan(catalog.client[first])
    assert len(stored.points) == len(_primary(docs)) >= 150  # every point measured reached the catalog

    (second,) = RE(_scan(scope, 64, sampler={"seed": 0, "stop": {"max_fraction": 0.2}},
                         resume_from=catalog.client[first]))
    assert catalog.writer.wait()
    run = catalog.client[second]
    more = read_scan(run, earlier=False)
    start = run.metadata["start"]
    assert start["resumed_from"] == first and start["resumed_points"] == len(stored.points)
    before = {tuple(p) for p in stored.points.tolist()}
    after = {tuple(p) for p in more.points.tolist()}
    assert not before & after  # nothing measured twice
    assert len(before) + len(after) == round(0.2 * 64 * 64)
    assert more.stop_reason.startswith("max_fraction reached")
    # another grid is refused before anything moves
    with pytest.raises(ValueError, match="same grid"):
        list(smart_scan([scope.det], scope.y, 0, 31, 32, scope.x, 0, 31, 32, resume_from=catalog.client[first]))
    with pytest.raises(ValueError, match="resume_from"):
        list(_scan(scope, 64, resume_from="not a run"))


def test_stop_after_a_pause_closes_the_run_as_a_success_with_every_point_stored(blobs, catalog):
    RE, docs, _ = _paused_scan(blobs, catalog, at=80)
    RE.stop()
    assert catalog.writer.wait()
    stop = docs[-1][1]
    assert stop["exit_status"] == "success"
    events = _primary(docs)
    stored = read_scan(catalog.client[docs[0][1]["uid"]])
    assert len(stored.points) == len(events) == stop["num_events"]["primary"] >= 80
    print(f"\nRE.stop() after a pause at point 80: exit {stop['exit_status']}, points measured {len(events)}, "
          f"in the catalog {len(stored.points)}")


def test_every_scan_of_a_session_thinks_in_the_same_sampler_thread(blobs):
    """One thread for the session: a new thread per scan cost a few MiB of memory per scan."""
    threads = []

    class RecordingSampler(Sampler):
        def ask(self, n=None, *, start=None):
            threads.append(threading.current_thread())
            return super().ask(n, start=start)

    RE = RunEngine({})
    for seed in (0, 1, 2):
        scope = SimulatedMicroscope(blobs[:16, :16], name="sim")
        sampler = RecordingSampler((16, 16), seed=seed, stop=StopCriteria(max_fraction=0.2))
        RE(_scan(scope, 16, sampler=sampler))
    assert len(threads) > 6 and len(set(threads)) == 1 and threads[0] is not threading.main_thread()


def test_reduce_is_recorded_and_applied_when_read_back_and_drawn(blobs, catalog, tmp_path):
    """With reduce="max", what is read back and drawn is what the sampler steered on (it was summed before)."""
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    view = LiveSparseView(tmp_path)
    RE.subscribe(view)
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim", frame_shape=(6, 8))
    sampler = Sampler((32, 32), seed=0, stop=StopCriteria(max_fraction=0.1))
    (uid,) = RE(_scan(scope, 32, sampler=sampler, value_field="sim_det_frame", reduce="max"))
    assert catalog.writer.wait()
    run = catalog.client[uid]
    assert run.metadata["start"]["reduce"] == "max"
    np.testing.assert_allclose(read_scan(run).values, sampler.measured_values)
    np.testing.assert_allclose(view.picture.values, sampler.measured_values)
    assert view.picture.labels[2] == "sim_det_frame (max)"


def test_a_resumed_scan_reads_back_whole_and_its_signals_go_on(blobs, catalog):
    RE, docs, scope = _paused_scan(blobs, catalog, at=300)
    RE.abort("beam lost")
    assert catalog.writer.wait()
    first = docs[0][1]["uid"]
    before = _stream_events(docs, STEERING_STREAM)[-1]["data"]
    docs.clear()
    (second,) = RE(_scan(scope, 64, sampler={"seed": 0, "stop": {"max_fraction": 0.2}},
                         resume_from=catalog.client[first]))
    assert catalog.writer.wait()
    after = _stream_events(docs, STEERING_STREAM)[0]["data"]
    whole, alone = read_scan(catalog.client[second]), read_scan(catalog.client[second], earlier=False)
    assert whole.runs == [first, second] and alone.runs == [second]
    assert len(whole.points) == len({tuple(p) for p in whole.points.tolist()}) == round(0.2 * 4096)
    assert psnr(blobs, whole.reconstruct()) > psnr(blobs, alone.reconstruct()) + 3
    # the batches go on counting (the aborted batch too), and the stop signals go on from where they were
    assert after["steering_batch"] == read_scan(catalog.client[first]).batches.max() + 1 > before["steering_batch"]
    for signal in ("erd_ratio", "prediction_error"):
        assert 0.5 < after[f"steering_{signal}"] / before[f"steering_{signal}"] < 1.5, signal
    print(f"\nerd_ratio {before['steering_erd_ratio']:.4f} at the end of the first run, "
          f"{after['steering_erd_ratio']:.4f} at the first batch of the resumed one; PSNR read back "
          f"{psnr(blobs, whole.reconstruct()):.2f} dB whole, {psnr(blobs, alone.reconstruct()):.2f} dB alone")


def test_plot_scan_draws_a_stored_run_with_units_and_colour_bars(blobs, catalog, tmp_path):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim", pixel_size=0.05)
    (uid,) = RE(smart_scan([scope.det], scope.y, 0, 1.55, 32, scope.x, 0, 1.55, 32,
                           sampler={"seed": 0, "stop": {"max_fraction": 0.2}}))
    assert catalog.writer.wait()
    figure = plot_scan(catalog.client[uid], truth=blobs[:32, :32], path=tmp_path / "scan.png")
    panels = [ax for ax in figure.axes if ax.get_title()]
    bars = [ax for ax in figure.axes if not ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["reconstruction", "measured: 205 points", "predicted ERD", "truth"]
    assert len(bars) == 4 and all(bar.get_ylabel() for bar in bars)
    assert all(ax.get_xlabel() == "sim_x (um)" and ax.get_ylabel() == "sim_y (um)" for ax in panels)
    assert (tmp_path / "scan.png").stat().st_size > 10_000
    assert "max_fraction reached" in figure._suptitle.get_text()


def test_a_stored_run_replays_into_the_live_view(blobs, catalog, tmp_path):
    """``run.documents()`` from the catalog (it failed with HTTP 406 before) draws as the scan did live."""
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    live = LiveSparseView(tmp_path / "live")
    RE.subscribe(live)
    scope = SimulatedMicroscope(blobs[:24, :24], name="sim")
    (uid,) = RE(_scan(scope, 24, sampler={"seed": 0, "stop": {"max_fraction": 0.2}}))
    assert catalog.writer.wait()
    replayed = LiveSparseView(tmp_path / "replayed")
    for name, doc in catalog.client[uid].documents():
        replayed(name, doc)
    assert replayed.picture.values == live.picture.values and replayed.picture.caption == live.picture.caption
    np.testing.assert_array_equal(replayed.picture.erd, live.picture.erd)
    assert len(replayed.saved_) == 1
