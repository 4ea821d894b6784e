"""A session that is killed or interrupted from outside: real processes, real signals, the real catalog.

The scan runs in a child process (`scan_in_child.py`) with its own embedded catalog; the test
presses Ctrl-C at it or kills it, then opens the same catalog directory as a new session would.
"""

import contextlib
import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from plans import Catalog, read_scan, read_scan_journal, smart_scan
from plans.catalog_server import UNCLOSED_REASON
from sim import SimulatedMicroscope

CHILD = Path(__file__).with_name("scan_in_child.py")
sys.path.insert(0, str(CHILD.parent))
import scan_in_child  # noqa: E402

BUDGET = round(scan_in_child.FRACTION * scan_in_child.SHAPE**2)


class ChildScan:
    """The child process and the lines it printed."""

    def __init__(self, directory: Path, *args: str):
        self.process = subprocess.Popen([sys.executable, str(CHILD), str(directory), *args], stdout=subprocess.PIPE,
                                        text=True, start_new_session=True)
        self.lines: list[str] = []

    def read_until(self, prefix: str) -> str:
        for line in self.process.stdout:
            self.lines.append(line.strip())
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"the child ended before printing {prefix!r}; it printed {self.lines[-5:]}")

    @property
    def exposures(self) -> list[tuple[float, float]]:
        """Stage positions of the detector's triggers in the child, in order."""
        return [tuple(map(float, line.split()[1:])) for line in self.lines if line.startswith("exposure ")]

    @property
    def uid(self) -> str:
        return next(line.split()[1] for line in self.lines if line.startswith("uid "))

    def wait(self) -> int:
        try:
            return self.process.wait(timeout=600)  # a hang guard, not a bound on speed
        finally:
            self.process.stdout.close()


def _await_catalog_process_end(directory: Path) -> None:
    """Until the catalog process of a killed session over ``directory`` has ended: it writes what it was
    sent and closes the run before it does (it sees the session go as the end of its stdin)."""

    def running() -> bool:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().split(b"\0")
            except OSError:
                continue
            if any(a.endswith(b"catalog_server.py") for a in args) and str(directory).encode() in args:
                return True
        return False

    while running():
        time.sleep(0.2)


def _scope():
    return SimulatedMicroscope(scan_in_child.sample_image(), name="sim")


def test_ctrl_c_twice_at_the_terminal_pauses_and_the_scan_goes_on_with_every_point_stored(tmp_path):
    child = ChildScan(tmp_path / "cat")
    child.read_until("event 100")
    for _ in range(2):  # as a terminal does: to the whole foreground process group, catalog process included
        os.killpg(child.process.pid, signal.SIGINT)
        time.sleep(0.3)  # a person's double press; bluesky ignores a second SIGINT within 100 ms
    child.read_until("paused")
    done = child.read_until("done")
    assert child.wait() == 0
    assert done == f"done success {BUDGET}"
    with Catalog(tmp_path / "cat") as cat:
        stored = read_scan(cat.client[child.uid])
    assert len(stored.points) == len({tuple(p) for p in stored.points.tolist()}) == BUDGET
    assert np.all(np.isfinite(stored.values))
    print(f"\nCtrl-C x2 at event 100: paused, resumed; {done.split()[-1]} points measured, "
          f"{len(stored.points)} in the catalog")


def test_a_killed_session_loses_no_point_and_the_scan_resumes_in_a_new_one(tmp_path):
    child = ChildScan(tmp_path / "cat")
    child.read_until("event 300")
    child.process.kill()  # kill -9 of the IPython session; its catalog process lives on to see it go
    assert child.wait() == -signal.SIGKILL
    printed = max(int(line.split()[1]) for line in child.lines if line.startswith("event "))
    journal = read_scan_journal(tmp_path / "cat" / "journal" / f"{child.uid}.jsonl")
    assert printed <= len(journal.points) < BUDGET
    _await_catalog_process_end((tmp_path / "cat").resolve())
    with Catalog(tmp_path / "cat") as cat:
        run = cat.client[child.uid]
        stored = read_scan(run)
        # the catalog holds every point the journal holds, in order, and says why the run ended
        np.testing.assert_array_equal(stored.points, journal.points)
        np.testing.assert_array_equal(stored.values, journal.values)
        stop = run.metadata["stop"]
        assert stop["exit_status"] == "abort" and stop["reason"] == UNCLOSED_REASON
        assert cat.recover(quiet_for=0) == {child.uid: "complete"}

        RE = RunEngine({})
        RE.subscribe(cat.writer)
        (second,) = RE(scan_in_child.scan(_scope(), resume_from=cat.client[child.uid]))
        assert cat.writer.wait()
        more = read_scan(cat.client[second], earlier=False)
        assert cat.client[second].metadata["start"]["resumed_from"] == child.uid
    before = {tuple(p) for p in journal.points.tolist()}
    after = {tuple(p) for p in more.points.tolist()}
    assert not before & after and len(before) + len(after) == BUDGET
    print(f"\nkill -9 after {printed} printed points: journal {len(journal.points)}, catalog {len(stored.points)}; "
          f"resumed run measured {len(after)} more, none twice ({len(before) + len(after)} = budget {BUDGET})")


def test_when_the_catalog_process_dies_too_recover_rewrites_the_run_from_the_journal(tmp_path):
    child = ChildScan(tmp_path / "cat")
    child.read_until("event 300")
    os.killpg(child.process.pid, signal.SIGKILL)  # the whole session at once: catalog process included
    child.wait()
    path = tmp_path / "cat" / "journal" / f"{child.uid}.jsonl"
    journal = read_scan_journal(path)
    with Catalog(tmp_path / "cat") as cat:
        run = cat.client[child.uid]
        assert not run.metadata.get("stop")
        partial = len(read_scan(run).points)
        assert partial <= len(journal.points)  # events since the last batch write were only journaled
        RE = RunEngine({})
        RE.subscribe(cat.writer)
        scope = _scope()
        # the unclosed, partial run is not resumed silently: the message says what to do
        with pytest.raises(ValueError, match=f"run {child.uid} was never closed .* Run catalog.recover"):
            RE(scan_in_child.scan(scope, resume_from=run))
        assert scope.det.triggers_ == scope.x.moves_ == 0
        # recover at once: the killed session's lock on its journal went with it
        assert cat.recover() == {child.uid: "rewritten" if partial < len(journal.points) else "closed"}
        run = cat.client[child.uid]
        stored = read_scan(run)
        np.testing.assert_array_equal(stored.points, journal.points)
        assert run.metadata["stop"]["exit_status"] == "abort"
        assert run.metadata["stop"]["num_events"]["primary"] == len(journal.points)
        assert cat.recover() == {child.uid: "complete"}  # a second call changes nothing

        (second,) = RE(scan_in_child.scan(scope, resume_from=run))
        assert cat.writer.wait()
        more = read_scan(cat.client[second], earlier=False)
    before = {tuple(p) for p in journal.points.tolist()}
    assert not before & {tuple(p) for p in more.points.tolist()}
    assert len(before) + len(more.points) == BUDGET
    exposed = _pixels(child.exposures + scope.det.exposures_)
    stored_pixels = _pixels(np.concatenate([journal.positions, more.positions]))
    assert max(stored_pixels.values()) == 1 and set(exposed) == set(stored_pixels)
    # only a point in flight when the session was killed (exposed, never saved) can be exposed again
    assert sum((exposed - stored_pixels).values()) <= 1
    print(f"killed at {len(journal.points)} journaled points; catalog held {partial} before recover; "
          f"{len(more.points)} more measured after recover, exposures {sum(exposed.values())} for {BUDGET} points")


def _pixels(positions) -> Counter:
    return Counter((round(float(y)), round(float(x))) for y, x in positions)


def test_a_chain_of_five_runs_with_aborts_pauses_a_kill_and_resumes_measures_every_pixel_once(tmp_path):
    """1: killed with its catalog (kill -9 of the session); 2: resumed from the recovered run, paused and
    resumed, then aborted; 3: resumed, paused twice between a read and its save, then stopped; 4: resumed
    from run 3's journal file, aborted; 5: resumed, runs to the stop rule."""
    from test_nothing_twice import PausingReader, _pause_after, _resume_until_done

    child = ChildScan(tmp_path / "cat")
    child.read_until("event 100")
    os.killpg(child.process.pid, signal.SIGKILL)
    child.wait()
    uids, extra_exposures = [child.uid], 1  # the point in flight at the kill may be exposed again
    with Catalog(tmp_path / "cat") as cat:
        assert cat.recover()[child.uid] in ("rewritten", "closed")
        RE = RunEngine({})
        RE.subscribe(cat.writer)
        scope = _scope()
        docs = []
        RE.subscribe(lambda name, doc: docs.append((name, doc)))

        def run(resume_from, pause_after=None, detectors=None, then=None):
            token = RE.subscribe(_pause_after(RE, pause_after)) if pause_after else None
            try:
                RE(smart_scan(detectors or [scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64,
                              sampler={"seed": 0, "stop": {"max_fraction": scan_in_child.FRACTION}},
                              resume_from=resume_from))
            except RunEngineInterrupted:
                then()
            if token is not None:
                RE.unsubscribe(token)
            assert cat.writer.wait()
            uids.append(next(d["uid"] for name, d in reversed(docs) if name == "start"))

        def pause_resume_then_abort():  # a pause and a resume, then another pause and an abort
            with contextlib.suppress(RunEngineInterrupted):
                RE.resume()
            RE.abort("beam lost")

        token = RE.subscribe(_pause_after(RE, 60))
        run(cat.client[uids[-1]], pause_after=150, then=pause_resume_then_abort)
        RE.unsubscribe(token)
        pauser = PausingReader(RE, {20, 70})

        def resume_through_the_pauses_then_stop():
            while RE.state == "paused" and len(pauser.paused_at) < 2:
                with contextlib.suppress(RunEngineInterrupted):
                    RE.resume()
            RE.stop()

        run(cat.client[uids[-1]], detectors=[scope.det, pauser], then=resume_through_the_pauses_then_stop)
        extra_exposures += len(pauser.paused_at)
        run(str(cat.journal.path(uids[-1])), pause_after=80, then=lambda: RE.abort("operator abort"))
        run(cat.client[uids[-1]], then=lambda: _resume_until_done(RE))
        stops = [cat.client[uid].metadata["stop"] for uid in uids]
        whole = read_scan(cat.client[uids[-1]])
        parts = [len(read_scan(cat.client[uid], earlier=False).points) for uid in uids]
    assert whole.runs == uids and len(set(uids)) == 5
    assert [s["exit_status"] for s in stops] == ["abort", "abort", "success", "abort", "success"]
    assert [s["reason"] for s in stops[1:4]] == ["beam lost", "stopped with RE.stop(), before the sampler's stop "
                                                 "criteria fired", "operator abort"]
    assert stops[4]["reason"].startswith("max_fraction reached")
    stored = _pixels(whole.positions)
    assert len(whole.points) == len(stored) == BUDGET and max(stored.values()) == 1  # every pixel once
    exposed = _pixels(child.exposures + scope.det.exposures_)
    assert set(exposed) == set(stored) and sum((exposed - stored).values()) <= extra_exposures
    image = whole.reconstruct()
    assert image.shape == (64, 64) and np.isfinite(image).all()
    print(f"\nfive runs {parts} points = {sum(parts)} = budget {BUDGET}, each pixel stored once; "
          f"{sum(exposed.values())} exposures ({sum((exposed - stored).values())} second exposures: "
          f"a kill mid-point and {len(pauser.paused_at)} pauses before a save); "
          f"exits {[s['exit_status'] for s in stops]}")


def test_recover_writes_a_run_the_catalog_never_saw_and_refuses_unknown_uids(tmp_path, caplog):
    scope = _scope()
    with Catalog(tmp_path / "first") as first:
        RE = RunEngine({})
        RE.subscribe(first.writer)
        (uid,) = RE(smart_scan([scope.det], scope.y, 0, 23, 24, scope.x, 0, 23, 24,
                               sampler={"seed": 0, "stop": {"max_fraction": 0.1}}))
        path = first.journal.path(uid)
    with Catalog(tmp_path / "second", journal_directory=path.parent) as second:
        with open(path, "a") as held:  # as a live session writing the run would hold it
            fcntl.flock(held.fileno(), fcntl.LOCK_EX)
            with caplog.at_level(logging.WARNING, logger="plans.storage"):
                assert second.recover() == {uid: "in use"}
            assert f"skipped {path}: a live session is still writing it" in caplog.text
        assert second.recover() == {uid: "written"}  # at once: the lock went with its holder
        assert len(read_scan(second.client[uid]).points) == round(0.1 * 24 * 24)
        assert second.client[uid].metadata["stop"]["exit_status"] == "success"  # the journal's own stop
        with pytest.raises(ValueError, match="uids"):
            second.recover(["no-such-run"])
