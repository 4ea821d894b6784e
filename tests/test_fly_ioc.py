"""Fly smart scans over Channel Access: `devices.MCSFlyer` (an EPICS motor record and an MCS) against
``python -m sim.ioc``, with the real RunEngine and the real catalog."""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from sim.ioc_process import IOCProcess
from sim.served import match_stored_bins, read_served_log
from steering.timing import StageTiming

PREFIX = "flyioc:"
SPEED = 100.0  # pixels per second: the motors' normal speed
ACCEL = 0.02  # seconds to reach it (.ACCL)
# 1 unit per pixel; a 5 ms pixel at 200 px/s top speed (the fly speed), 0.2 s per flown line
TIMING = StageTiming(pixel_size=1.0, dwell=0.005, velocity=200.0, acceleration=200.0 / ACCEL, settle=0.0,
                     line_overhead=0.2)


@pytest.fixture(scope="module")
def ioc(tmp_path_factory, blobs_module):
    folder = tmp_path_factory.mktemp("fly_ioc")
    np.save(folder / "sample.npy", blobs_module)
    served = folder / "served.csv"
    proc = IOCProcess("--image", folder / "sample.npy", "--prefix", PREFIX, "--pixel-size", 1.0,
                      "--velocity", SPEED, "--acceleration", ACCEL, "--dwell", 0, "--served-log", served).start()
    proc.served_log = served
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def blobs_module():
    from blob_image import blob_image

    return blob_image(64)


def _devices(name: str = "fly"):
    from devices import MCSFlyer, ScanStage

    stage = ScanStage(PREFIX, y_pv="m2", x_pv="m1", name="stage")
    flyer = MCSFlyer(PREFIX + "mcs:", x_motor=stage.x, y_motor=stage.y, timing=TIMING, timeout=5.0, name=name)
    stage.wait_for_connection(timeout=60)  # a bound for a loaded machine, not a timing requirement
    flyer.mcs.wait_for_connection(timeout=60)
    stage.x.velocity.put(SPEED, wait=True)
    return stage, flyer


def _fly(stage, flyer, beam_time: float = 20.0, **kwargs):
    """A fly scan of ``beam_time`` seconds (the plan's own clock: the real seconds it spends moving and reading)."""
    from plans import smart_scan

    return smart_scan([flyer], stage.y, 0, 63, 64, stage.x, 0, 63, 64, flyer=flyer,
                      sampler={"seed": 0, "stop": {"max_fraction": None, "max_beam_time": beam_time}}, **kwargs)


def _served_lines(ioc) -> int:
    with open(ioc.served_log) as f:
        return sum(1 for _ in f) - 1  # without the header


def test_a_fly_scan_over_channel_access_stores_each_pixels_bin_once_with_the_value_served(ioc, catalog):
    from plans import read_scan

    stage, flyer = _devices()
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    before = _served_lines(ioc)
    (uid,) = RE(_fly(stage, flyer))
    assert catalog.writer.wait()
    run = catalog.client[uid]
    data = read_scan(run)
    bins = read_served_log(ioc.served_log, PREFIX + "mcs:mca2", start=before)
    stored = Counter(map(tuple, data.points.tolist()))
    # each stored pixel holds a bin the IOC served on its row, within half the flight's pixel step of its centre,
    # with the value served; no bin is stored twice
    used, unmatched = match_stored_bins(data.points, data.values, data.batches, bins)
    print(f"\nfly scan over CA 64x64: {len(stored)} pixels in {flyer.flights_} flights; the IOC served {len(bins)} "
          f"bins, {used} of them stored, each once, at its pixel with its value (the rest: run-up and run-out); "
          f"speed restored: {flyer.velocity_restored_}, {stage.x.velocity.get()} px/s; stop: {data.stop_reason}")
    assert run.metadata["stop"]["exit_status"] == "success"
    assert max(stored.values()) == 1 and used == len(stored) and unmatched == 0
    assert np.isfinite(data.values).all()
    assert flyer.velocity_restored_ and stage.x.velocity.get() == pytest.approx(SPEED)


def test_the_motors_speed_is_put_back_when_a_flight_is_aborted(ioc):
    stage, flyer = _devices("fly_abort")
    RE = RunEngine({})
    slow = []

    def pause_mid_flight():
        for _ in range(20000):  # wait until a line flies at its fly speed, then interrupt as Ctrl-C would
            if flyer.flights_ >= 2 and flyer.flying_:
                slow.append(stage.x.velocity.get(use_monitor=False))
                RE.request_pause(defer=False)
                return
            time.sleep(0.001)

    watcher = threading.Thread(target=pause_mid_flight)
    watcher.start()
    with pytest.raises(RunEngineInterrupted):
        RE(_fly(stage, flyer, beam_time=60.0))
    watcher.join()
    RE.abort(reason="test: aborted mid-flight")
    for _ in range(2000):  # the flight thread ends once the stopped motor is done
        if flyer.complete().done:
            break
        time.sleep(0.005)
    print(f"\naborted mid-flight at fly speed {slow}: speed now {stage.x.velocity.get()} px/s")
    assert slow and flyer.velocity_restored_ and stage.x.velocity.get() == pytest.approx(SPEED)


def test_an_ioc_killed_mid_flight_ends_the_run_with_a_reason_and_nothing_hangs(ioc, tmp_path, blobs_module):
    """Kills the module's IOC (so it runs last here), then starts another on the same prefix and port."""
    import os
    import signal

    np.save(tmp_path / "sample.npy", blobs_module)
    stage, flyer = _devices("fly_kill")
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    killed, again = [], None

    def kill_mid_flight():
        for _ in range(20000):
            if flyer.flights_ >= 2 and flyer.flying_:
                os.kill(ioc.pid, signal.SIGKILL)
                killed.append(flyer.flights_)
                return
            time.sleep(0.001)

    watcher = threading.Thread(target=kill_mid_flight)
    watcher.start()
    try:
        with pytest.raises(Exception) as failure:
            RE(_fly(stage, flyer, beam_time=60.0))
        watcher.join()
        restored_at_failure = flyer.velocity_restored_
        # the IOC comes back with the fly speed (as autosave would restore it): the flyer puts the normal one back
        again = IOCProcess("--image", tmp_path / "sample.npy", "--prefix", PREFIX, "--pixel-size", 1.0,
                           "--velocity", 2 * SPEED, "--acceleration", ACCEL, "--dwell", 0).start()
        for _ in range(1200):  # a bound for a broken test, not a timing requirement
            if flyer.velocity_restored_:
                break
            time.sleep(0.1)
        after_restart = stage.x.velocity.get(use_monitor=False)
    finally:
        if again is not None:
            again.stop()
    stop = [doc for name, doc in docs if name == "stop"]
    print(f"\nIOC killed during flight {killed}: {type(failure.value).__name__}; "
          f"stop document: {stop[0]['exit_status'] if stop else None}, {stop[0]['reason'] if stop else None}; "
          f"speed put back then: {restored_at_failure}; the IOC restarted at {2 * SPEED:g} px/s, speed now "
          f"{after_restart:g} px/s")
    assert killed and stop and stop[0]["exit_status"] in ("fail", "abort")
    assert stop[0]["reason"].startswith("RuntimeError: fly_kill: the flight along y=")
    assert "the motor's speed could not be put back" in stop[0]["reason"]
    assert restored_at_failure is False  # the IOC was gone: the flight said it could not put it back
    assert flyer.velocity_restored_ and after_restart == pytest.approx(SPEED)  # ... and did once it was back
