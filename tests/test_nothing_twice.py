"""Nothing measured twice, no run mislabelled: resume chains, pauses before a save, dead detectors, stop reasons.

Each test counts the sample's exposures per pixel (the simulated detector's ``exposures_``) as well
as the events stored per pixel, with the real RunEngine and the real catalog.
"""

import asyncio
import threading
from collections import Counter

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from plans import FAILURES_STREAM, read_scan, smart_scan
from sim import FaultyDetector, SimulatedMicroscope
from steering import Sampler, StopCriteria

FRACTION = 0.2
BUDGET = round(FRACTION * 64 * 64)


def _scan(scope, resume_from=None, sampler=None, detectors=None, **kwargs):
    sampler = sampler or {"seed": 0, "stop": {"max_fraction": FRACTION}}
    return smart_scan(detectors or [scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, sampler=sampler,
                      resume_from=resume_from, **kwargs)


def _pixels(positions) -> Counter:
    return Counter((round(y), round(x)) for y, x in positions)


def _pause_after(RE, points: int):
    """A callback that asks the RunEngine to pause, from another thread as Ctrl-C would, once ``points``
    points of the current run are saved."""
    seen = {"points": 0}

    def callback(name, doc):
        if name == "start":
            seen["points"] = 0
        elif name == "event" and "sim_det" in doc["data"]:
            seen["points"] += 1
            if seen["points"] == points:
                threading.Thread(target=RE.request_pause, kwargs={"defer": False}).start()

    return callback


class PausingReader:
    """A readable device whose read is awaited (as an ophyd-async device's is) and which, at chosen reads,
    asks the RunEngine to pause while it reads: the pause falls after the detector's read and before the
    event's save, and the RunEngine replays the point (moves, triggers and reads it again)."""

    def __init__(self, RE, pause_at_reads, name="pauser"):
        self.RE, self.pause_at_reads, self.name, self.parent = RE, set(pause_at_reads), name, None
        self.reads = 0
        self.paused_at: list[int] = []

    def describe(self):
        return {self.name: {"source": "test:pauser", "dtype": "integer", "shape": []}}

    async def read(self):
        self.reads += 1
        if self.reads in self.pause_at_reads:
            self.paused_at.append(self.reads)
            threading.Thread(target=self.RE.request_pause, kwargs={"defer": False}).start()
            await asyncio.sleep(0.5)
        return {self.name: {"value": self.reads, "timestamp": 0.0}}


def _resume_until_done(RE):
    while RE.state == "paused":
        try:
            RE.resume()
        except RunEngineInterrupted:
            continue


def test_a_scan_resumed_twice_measures_none_of_the_first_runs_points_again(blobs, catalog):
    """Run 1 aborted at 200 points, run 2 resumed from it and aborted at 200 more, run 3 resumed from run 2."""
    scope = SimulatedMicroscope(blobs, name="sim")
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    uids = []
    for k in range(3):
        docs = []
        tokens = [RE.subscribe(lambda name, doc, docs=docs: docs.append((name, doc)))]
        if k < 2:
            tokens.append(RE.subscribe(_pause_after(RE, 200)))
        try:
            RE(_scan(scope, resume_from=catalog.client[uids[-1]] if uids else None))
        except RunEngineInterrupted:
            RE.abort(f"operator abort {k + 1}")
        for token in tokens:
            RE.unsubscribe(token)
        assert catalog.writer.wait()
        uids.append(docs[0][1]["uid"])
        assert docs[-1][1]["exit_status"] == ("abort" if k < 2 else "success")
    whole = read_scan(catalog.client[uids[-1]])
    assert whole.runs == uids
    stored = _pixels(whole.positions)
    exposed = _pixels(scope.det.exposures_)
    assert len(whole.points) == len(stored) == BUDGET and max(stored.values()) == 1
    assert exposed == stored  # the sample was exposed once at each stored point, and nowhere else
    runs = [read_scan(catalog.client[uid], earlier=False) for uid in uids]
    print(f"\nthree runs of a resume chain: {[len(r.points) for r in runs]} points, union {len(stored)} = budget "
          f"{BUDGET}; exposures {sum(exposed.values())}, at most {max(exposed.values())} per pixel")


def test_a_pause_between_the_read_and_the_save_steers_on_what_was_stored(blobs, catalog):
    """The replay reads the point again: the sampler must be told the stored reading, not the first one."""
    # counting noise on a sample bright everywhere: a second exposure reads another value
    scope = SimulatedMicroscope(blobs - blobs.min() + 0.5, name="sim", flux=1e5, seed=0)
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    pauser = PausingReader(RE, {30, 150, 301})
    sampler = Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.1))
    with pytest.raises(RunEngineInterrupted):
        RE(_scan(scope, sampler=sampler, detectors=[scope.det, pauser]))
    _resume_until_done(RE)
    assert catalog.writer.wait()
    assert len(pauser.paused_at) == 3 and docs[-1][1]["exit_status"] == "success"
    events = [d["data"] for name, d in docs if name == "event" and "sim_det" in d["data"]]
    stored = {(round(e["sim_y"]), round(e["sim_x"])): e["sim_det"] for e in events}
    told = dict(zip(map(tuple, sampler.measured_points.tolist()), sampler.measured_values.tolist(), strict=True))
    assert len(events) == len(stored) == len(told) == round(0.1 * 4096)  # each point stored once
    differ = {p: (stored[p], told[p]) for p in stored if stored[p] != told[p]}
    assert differ == {}
    exposed = _pixels(scope.det.exposures_)
    twice = sorted(p for p, n in exposed.items() if n == 2)
    # the price of a pause before the save: the point being measured is exposed a second time
    assert sorted(exposed.values()) == [1] * (len(stored) - 3) + [2] * 3 and set(twice) <= set(stored)
    print(f"\n3 pauses between read and save: {len(events)} points stored once each, the sampler told the stored "
          f"value at every one (0 differ); exposed twice at {twice}")


def test_a_detector_that_never_returns_a_value_ends_the_run_as_failed(blobs, catalog):
    """24x24 at 1%: the first batch has 6 points, fewer than the ten-in-a-row rule needs."""
    scope = SimulatedMicroscope(blobs[:24, :24], name="sim")
    det = FaultyDetector(scope, {(y, x): ["nan"] * 9 for y in range(24) for x in range(24)})
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    first = Sampler((24, 24), seed=0).ask()
    with pytest.raises(RuntimeError, match="none of the 6 points this scan has tried could be measured"):
        RE(smart_scan([det], scope.y, 0, 23, 24, scope.x, 0, 23, 24, sampler={"seed": 0}))
    assert catalog.writer.wait()
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail" and "the instrument looks down" in stop["reason"]
    assert len(first) == 6 and det.triggers_ == 6 * 3  # each point of the first batch tried three times
    data = read_scan(catalog.client[docs[0][1]["uid"]])
    assert sorted(map(tuple, data.failed.tolist())) == sorted(map(tuple, first.tolist()))
    assert stop["num_events"][FAILURES_STREAM] == 6 and np.isnan(data.values).all()
    print(f"\ndetector always NaN on 24x24: {det.triggers_} triggers, exit {stop['exit_status']}: {stop['reason']}")


def test_stop_and_abort_are_recorded_with_their_reasons(blobs, catalog):
    scope = SimulatedMicroscope(blobs, name="sim")
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    RE.subscribe(_pause_after(RE, 40))
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None)
    for interrupt in (RE.stop, lambda: RE.abort("beam dump at 03:12"), RE.abort):
        with pytest.raises(RunEngineInterrupted):
            RE(_scan(scope))
        interrupt()
    assert catalog.writer.wait()
    assert [(s["exit_status"], s["reason"]) for s in stops] == [
        ("success", "stopped with RE.stop(), before the sampler's stop criteria fired"),
        ("abort", "beam dump at 03:12"),
        ("abort", ""),  # bluesky records an abort without a reason as an empty one
    ]
    assert all(s["num_events"]["primary"] >= 40 for s in stops)
