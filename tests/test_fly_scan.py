"""Fly smart scans with the real RunEngine, the simulated flyer and the real catalog."""

import threading
from collections import Counter

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from ophyd import Device
from ophyd.status import Status

from plans import read_scan, smart_scan
from sim import SimulatedMicroscope
from sim.flyer import SimulatedFlyer
from steering.fly import full_raster_time
from steering.timing import StageTiming

# the benchmark's fast stage, in the simulated stage's units (1 unit per pixel, as 50 nm are one pixel there)
TIMING = StageTiming(pixel_size=1.0, dwell=0.01, velocity=4000.0, acceleration=40000.0, settle=0.02,
                     line_overhead=0.3)


def _fly(scope, share=0.2, **kwargs):
    budget = share * full_raster_time((64, 64), TIMING)
    return smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, flyer=scope.flyer,
                      beam_clock=lambda: scope.clock.now,
                      sampler={"seed": 0, "stop": {"max_fraction": None, "max_beam_time": budget}}, **kwargs)


def _pixels(positions) -> Counter:
    return Counter((round(y), round(x)) for y, x in positions)


def test_a_fly_scan_stores_every_pixel_it_crossed_once_and_the_models_beam_time(blobs, catalog):
    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    (uid,) = RE(_fly(scope))
    assert catalog.writer.wait()
    run = catalog.client[uid]
    data = read_scan(run)
    stored = _pixels(data.positions)
    exposed = _pixels(scope.det.exposures_)
    assert max(stored.values()) == 1 and exposed == stored  # each pixel crossed is stored, once
    assert run.metadata["stop"]["exit_status"] == "success"
    assert run.metadata["start"]["sampler"]["scan_mode"] == "fly"
    # the route as flown, pixel by pixel, priced by the timing model from where the stage stood
    route = data.points
    model = TIMING.route_time(route, mode="fly", start=(0, 0))
    assert data.beam_time == pytest.approx(model, rel=1e-9) and data.beam_time == pytest.approx(scope.clock.now)
    assert data.beam_time <= 0.2 * full_raster_time((64, 64), TIMING)
    assert np.isfinite(data.reconstruct()).all()
    print(f"\nfly scan 64x64: {len(stored)} pixels in {scope.flyer.flights_} flights, beam time "
          f"{data.beam_time:.3f} s, timing model {model:.3f} s")


class PausingFlyer(SimulatedFlyer):
    """Asks the RunEngine to pause, from another thread as Ctrl-C would, during chosen flights."""

    def __init__(self, scope, RE, pause_at, *, name):
        super().__init__(scope, name=name)
        self.RE, self.pause_at, self.paused = RE, set(pause_at), 0

    def kickoff(self):
        super().kickoff()
        status = Status()
        if self.flights_ in self.pause_at:
            self.pause_at.discard(self.flights_)
            self.paused += 1
            threading.Thread(target=self.RE.request_pause, kwargs={"defer": False}).start()
            threading.Timer(0.5, status.set_finished).start()  # the flight lasts until the pause has landed
        else:
            status.set_finished()
        return status


def test_a_pause_mid_flight_flies_that_line_again_and_stores_it_once(blobs, catalog):
    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    scope.flyer = PausingFlyer(scope, RE, {3, 10, 18}, name="sim_flyer")
    with pytest.raises(RunEngineInterrupted):
        RE(_fly(scope))
    while RE.state == "paused":
        try:
            RE.resume()
        except RunEngineInterrupted:
            continue
    assert catalog.writer.wait()
    uid = catalog.client.values().last().metadata["start"]["uid"]
    data = read_scan(catalog.client[uid])
    stored = _pixels(data.positions)
    exposed = _pixels(scope.det.exposures_)
    assert scope.flyer.paused == 3 and max(stored.values()) == 1 and set(exposed) == set(stored)
    twice = sum(n - 1 for n in exposed.values())
    # the three interrupted lines were flown again: their pixels were exposed twice, stored once
    assert 0 < twice == sum(exposed.values()) - len(stored)
    assert catalog.client[uid].metadata["stop"]["exit_status"] == "success"
    print(f"\n3 pauses mid-flight: {len(stored)} pixels stored once each, {twice} pixel exposures repeated "
          f"({scope.flyer.flights_} flights)")


def test_a_fly_scan_resumes_where_it_stopped(blobs, catalog):
    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None)
    (first,) = RE(_fly(scope, share=0.1))
    (second,) = RE(_fly(scope, share=0.2, resume_from=catalog.client[first]))
    assert catalog.writer.wait()
    before = read_scan(catalog.client[first])
    whole = read_scan(catalog.client[second])
    after = read_scan(catalog.client[second], earlier=False)
    assert not {tuple(p) for p in before.points.tolist()} & {tuple(p) for p in after.points.tolist()}
    assert len(whole.points) == len(before.points) + len(after.points) == len(_pixels(scope.det.exposures_))
    assert whole.beam_time <= 0.2 * full_raster_time((64, 64), TIMING) + 1e-9


def test_a_fly_scan_needs_a_flyer_with_a_timing_model(blobs):
    scope = SimulatedMicroscope(blobs, name="sim")  # no timing model
    RE = RunEngine({})
    with pytest.raises(ValueError, match="a fly scan needs a timing model"):
        RE(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, flyer=scope.flyer))
    assert scope.x.moves_ == scope.y.moves_ == 0
    with pytest.raises(ValueError, match="scan_mode must be 'fly'"):
        RE(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, flyer=scope.flyer,
                      sampler={"scan_mode": "point", "timing": {"pixel_size": 1.0, "dwell": 0.01, "velocity": 1.0,
                                                                "acceleration": 1.0}}))


class RecordingSampler:
    """Wraps a `Sampler`'s ask to record how many points were pending (asked, not told) at each ask."""

    def __init__(self, sampler):
        self.sampler, self.pending_at_ask = sampler, []
        ask = sampler.ask

        def recording_ask(*args, **kwargs):
            self.pending_at_ask.append(len(sampler.pending_points))
            return ask(*args, **kwargs)

        sampler.ask = recording_ask


@pytest.mark.parametrize("fly", [True, False])
def test_the_next_batch_is_asked_for_while_one_is_measured_and_nothing_is_measured_twice(blobs, fly):
    from steering import Sampler, StopCriteria

    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    budget = 0.6 * full_raster_time((64, 64), TIMING)
    if fly:
        sampler = Sampler((64, 64), seed=0, timing=TIMING, scan_mode="fly",
                          stop=StopCriteria(max_fraction=None, max_beam_time=budget))
    else:
        sampler = Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.15))
    recorder = RecordingSampler(sampler)
    RE = RunEngine({})
    events = []
    RE.subscribe(lambda name, doc: events.append(name))
    RE(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, flyer=scope.flyer if fly else None,
                  sampler=sampler, beam_clock=lambda: scope.clock.now, pipeline=True))
    stored = _pixels(scope.det.exposures_)
    assert max(stored.values()) == 1 and len(stored) == sampler.n_measured
    assert not sampler.pending_points.size  # what was asked ahead and not measured was released
    # after the initial pattern, each batch was asked for while the one before it was still pending
    ahead = [n for n in recorder.pending_at_ask[2:] if n > 0]
    assert len(ahead) >= 2, recorder.pending_at_ask
    if fly:
        assert scope.clock.now <= budget
        # every ask but the first (and a last one that finds the budget spent) while a batch was flown:
        # the maps were built while the raster's tail was
        assert all(n > 0 for n in recorder.pending_at_ask[1:-1]), recorder.pending_at_ask
    print(f"\npipelined ({'fly' if fly else 'step'}): pending points at each ask {recorder.pending_at_ask}")


class GlitchingFlyer(SimulatedFlyer):
    """Reads NaN at chosen pixels (y, x), as a detector that drops a frame would."""

    def __init__(self, scope, bad, *, name):
        super().__init__(scope, name=name)
        self.bad = set(bad)

    def kickoff(self):
        status = super().kickoff()
        data = self._page["data"]
        for i, (y, x) in enumerate(zip(data["sim_y"], data["sim_x"], strict=True)):
            if (round(y), round(x)) in self.bad:
                data["sim_det"][i] = float("nan")
        return status


class EventFlyer(Device):
    """The simulated flyer, collecting one event per pixel (``collect``) instead of a page per line."""

    def __init__(self, scope, *, name):
        super().__init__("", name=name)
        self.inner = SimulatedFlyer(scope, name=name)
        self.timing = self.inner.timing
        self.prepare, self.kickoff, self.complete = self.inner.prepare, self.inner.kickoff, self.inner.complete
        self.describe_collect = self.inner.describe_collect

    def collect(self):
        for page in self.inner.collect_pages():
            for i, when in enumerate(page["time"]):
                yield {"data": {key: values[i] for key, values in page["data"].items()},
                       "timestamps": {key: stamps[i] for key, stamps in page["timestamps"].items()}, "time": when}


def test_a_flyer_that_collects_events_is_stored_as_one_that_collects_pages(blobs, catalog):
    stored = []
    for flyer in (SimulatedFlyer, EventFlyer):
        scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
        scope.flyer = flyer(scope, name="sim_flyer")
        RE = RunEngine({})
        RE.subscribe(catalog.writer)
        (uid,) = RE(_fly(scope))
        assert catalog.writer.wait()
        stored.append(read_scan(catalog.client[uid]))
    pages, events = stored
    assert len(pages.points) > 400
    np.testing.assert_array_equal(events.points, pages.points)
    np.testing.assert_array_equal(events.values, pages.values)
    assert events.beam_time == pages.beam_time


def test_a_pixel_that_reads_nan_in_flight_is_stored_as_read_and_recorded_as_failed(blobs, catalog):
    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    scope.flyer = GlitchingFlyer(scope, {(0, 0), (0, 63), (63, 63)}, name="sim_flyer")
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    (uid,) = RE(_fly(scope))
    assert catalog.writer.wait()
    data = read_scan(catalog.client[uid])
    nan_at = {tuple(p) for p, v in zip(data.points.tolist(), data.values, strict=True) if not np.isfinite(v)}
    assert nan_at == {(0, 0), (0, 63), (63, 63)}  # the readings taken are stored as they came
    assert {tuple(p) for p in data.failed.tolist()} == nan_at  # and each has an event in steering_failures
    assert catalog.client[uid].metadata["stop"]["exit_status"] == "success"


def _failing_fly_scan(scope, catalog, error: str) -> dict:
    """Run a fly scan that must raise ``error``; return its stop document, once the catalog holds the run."""
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None)
    with pytest.raises(RuntimeError, match=error):
        RE(_fly(scope))
    assert catalog.writer.wait()
    return stops[-1]


def test_a_flyer_that_reads_only_nan_ends_the_run_as_failed(blobs, catalog):
    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    scope.flyer = GlitchingFlyer(scope, {(y, x) for y in range(64) for x in range(64)}, name="sim_flyer")
    stop = _failing_fly_scan(scope, catalog, "in a row could not be measured")
    assert stop["exit_status"] == "fail" and "the instrument looks down" in stop["reason"]


class BrokenFlyer(SimulatedFlyer):
    """Raises at its third flight, as a controller that loses its trigger would."""

    def kickoff(self):
        if self.flights_ == 2:
            raise RuntimeError("sim_flyer: position trigger lost")
        return super().kickoff()


def test_a_flyer_that_raises_ends_the_run_as_failed_and_keeps_the_lines_flown(blobs, catalog):
    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    scope.flyer = BrokenFlyer(scope, name="sim_flyer")
    stop = _failing_fly_scan(scope, catalog, "position trigger lost")
    assert stop["exit_status"] == "fail" and "position trigger lost" in stop["reason"]
    data = read_scan(catalog.client[stop["run_start"]])
    assert len(data.points) == len(_pixels(scope.det.exposures_)) > 0  # the two lines flown are stored


@pytest.mark.parametrize("flight, message", [
    ({"y": 1.0, "x": []}, "a flight needs a finite y and at least one finite x"),
    ({"y": float("nan"), "x": [0.0, 1.0]}, "a flight needs a finite y"),
    ({"y": 1.0, "x": [0.0, 1.0, 3.0]}, "equally spaced in one direction"),
    ({"y": 1.0, "x": [2.0, 2.0]}, "equally spaced in one direction"),
])
def test_both_flyers_refuse_a_flight_that_cannot_be_flown(blobs, flight, message):
    from devices import MCSFlyer, ScanStage

    scope = SimulatedMicroscope(blobs, name="sim", timing=TIMING)
    stage = ScanStage("nowhere:", y_pv="m2", x_pv="m1", name="stage")
    epics_flyer = MCSFlyer("nowhere:mcs:", x_motor=stage.x, y_motor=stage.y, timing=TIMING, name="mcs")
    for flyer in (scope.flyer, epics_flyer):
        with pytest.raises(ValueError, match=message):
            flyer.prepare(flight)
    assert scope.flyer.prepare({"y": 1.0, "x": [3.0, 2.0, 1.0]}).done  # a row flown backwards is fine
