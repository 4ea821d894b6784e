"""Bluesky suspenders (beam current, shutter) pause a smart scan and resume it; no point lost or doubled."""

import threading
import time

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.suspenders import SuspendFloor
from ophyd import Signal

from plans import read_scan, smart_scan
from sim import SimulatedMicroscope
from steering import Sampler, StopCriteria


def _beam_loss(beam: Signal, seconds: float) -> None:
    """The ring current drops to 5 mA and comes back after ``seconds`` (from another thread, as CA would)."""

    def lose():
        beam.put(5.0)
        time.sleep(seconds)
        beam.put(500.0)

    threading.Thread(target=lose, daemon=True).start()


def test_beam_loss_suspends_the_scan_mid_point_and_while_the_sampler_thinks(blobs, catalog):
    beam = Signal(name="ring_current", value=500.0)
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    RE.install_suspender(SuspendFloor(beam, 100.0, resume_thresh=400.0, sleep=0.1))
    states = []
    RE.state_hook = lambda new, old: states.append(new)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    scope = SimulatedMicroscope(blobs, name="sim")

    class ThinkingSampler(Sampler):
        """Loses the beam while it computes its third batch."""

        asks = 0

        def ask(self, n=None, *, start=None):
            ThinkingSampler.asks += 1
            if ThinkingSampler.asks == 3:
                _beam_loss(beam, 0.3)
                time.sleep(0.2)
            return super().ask(n, start=start)

    def lose_beam_mid_scan(name, doc):
        if name == "event" and doc["seq_num"] in (60, 200) and "sim_det" in doc["data"]:
            _beam_loss(beam, 0.3)

    RE.subscribe(lose_beam_mid_scan)
    sampler = ThinkingSampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.1))
    (uid,) = RE(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, sampler=sampler))
    assert catalog.writer.wait()

    assert states.count("suspending") == 3
    assert docs[-1][1]["exit_status"] == "success"
    descriptors = {d["uid"]: d["name"] for name, d in docs if name == "descriptor"}
    events = [d for name, d in docs if name == "event"]
    primary = [e for e in events if descriptors[e["descriptor"]] == "primary"]
    steering = [e for e in events if descriptors[e["descriptor"]] == "steering"]
    seen = [(e["data"]["sim_y"], e["data"]["sim_x"]) for e in primary]
    assert len(seen) == len(set(seen)) == sampler.n_measured == round(0.1 * 4096)  # none lost, none doubled
    assert [e["seq_num"] for e in primary] == list(range(1, len(primary) + 1))
    assert [e["seq_num"] for e in steering] == list(range(1, len(steering) + 1))
    stored = read_scan(catalog.client[uid])
    assert len(stored.points) == len(primary) and np.all(np.isfinite(stored.values))
    print(f"3 suspensions; {len(primary)} points emitted and stored, detector triggered {scope.det.triggers_} times")


def test_the_replay_guard_forbids_a_replay_only_between_a_saved_event_and_the_next_checkpoint():
    from bluesky.utils import NoReplayAllowed

    from plans.replay_guard import ReplayGuard

    guard = ReplayGuard()
    guard.pause()  # nothing saved yet: the RunEngine may replay from its checkpoint
    guard("descriptor", {"uid": "d1", "name": "primary"})
    guard("descriptor", {"uid": "d2", "name": "steering"})
    guard.pause()
    assert guard.saved_data() == {}
    guard("event", {"seq_num": 1, "descriptor": "d1", "data": {"det": 41000.41}})
    guard("event", {"seq_num": 1, "descriptor": "d2", "data": {"batch": 1}})
    assert guard.saved_data() == {"det": 41000.41} and guard.saved_data("steering") == {"batch": 1}
    with pytest.raises(NoReplayAllowed):
        guard.pause()
    msgs = list(guard.checkpoint())
    assert [m.command for m in msgs] == ["checkpoint"] and not guard.saved
    guard.pause()
