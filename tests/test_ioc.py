"""The beamline code path over real Channel Access: `devices` (ophyd + pyepics) against `sim.ioc`.

The IOC runs as a child process on loopback (conftest sets private CA ports and owns the repeater).
"""

import csv
import os
import time

import epics
import numpy as np
import pytest
from bluesky import RunEngine
from ophyd.utils import LimitError

from devices import ROISumDetector, ScalerDetector, ScanStage
from plans import read_scan, smart_scan
from sim.ioc_process import IOCProcess
from sim.sample import SampleImage
from steering import Sampler, StopCriteria
from steering.images import load_image
from steering.tools.bench import default_data_dir

PREFIX = "tioc:"
PIXEL = 0.1  # um between sample pixels


@pytest.fixture(scope="module")
def sample_image():
    """A 48x48 crop of a real SEM image (random values where the shared data are missing)."""
    path = default_data_dir() / "sem" / "sem_set3.tif"
    image = load_image(path)[100:148, 100:148] if path.exists() else np.random.default_rng(0).random((48, 48))
    return SampleImage(image, pixel_size=PIXEL, origin=(2.0, -1.0))


@pytest.fixture(scope="module")
def ioc(tmp_path_factory, sample_image):
    folder = tmp_path_factory.mktemp("ioc")
    np.save(folder / "sample.npy", sample_image.image)
    served = folder / "served.csv"
    proc = IOCProcess("--image", folder / "sample.npy", "--prefix", PREFIX, "--pixel-size", PIXEL,
                      "--origin", 2.0, -1.0, "--velocity", 0, "--dwell", 0, "--served-log", served).start()
    proc.served_log = served
    yield proc
    code = proc.stop()
    assert not proc.running()
    assert code is not None


@pytest.fixture(scope="module")
def stage(ioc):
    dev = ScanStage(PREFIX, y_pv="m2", x_pv="m1", name="stage")
    dev.wait_for_connection(timeout=10)
    return dev


@pytest.fixture(scope="module")
def scaler(ioc):
    dev = ScalerDetector(PREFIX + "scaler1", name="scaler")
    dev.wait_for_connection(timeout=10)
    return dev


@pytest.fixture(scope="module")
def roi(ioc):
    dev = ROISumDetector(PREFIX, name="roi")
    dev.wait_for_connection(timeout=10)
    return dev


def _served(ioc, detector):
    with open(ioc.served_log) as f:
        return [row for row in csv.DictReader(f) if row["detector"] == detector]


def test_motor_record_moves_at_its_velocity_with_a_live_readback(stage):
    motor = stage.x
    motor.move(0.0, wait=True)
    motor.velocity.put(10.0, wait=True)
    readbacks, done = [], []
    tokens = (motor.user_readback.subscribe(lambda value, **kw: readbacks.append(value), run=False),
              motor.motor_done_move.subscribe(lambda value, **kw: done.append(value), run=False))
    try:
        motor.move(3.0, wait=True)
    finally:
        motor.velocity.put(0.0, wait=True)
        motor.user_readback.unsubscribe(tokens[0])
        motor.motor_done_move.unsubscribe(tokens[1])
    assert motor.position == 3.0
    inside = [v for v in readbacks if 0.0 < v < 3.0]
    assert len(inside) >= 3, (readbacks, done)  # the readback changes while moving, at its velocity
    assert readbacks == sorted(readbacks)
    assert done[0] == 0 and done[-1] == 1
    assert stage.y.egu == "um"


def test_stop_halts_a_move_where_it_is(stage):
    motor = stage.y
    motor.move(2.0, wait=True)
    motor.velocity.put(0.5, wait=True)  # a 4 s move: stopped well before its end, however loaded the machine
    try:
        status = motor.move(4.0, wait=False)
        time.sleep(0.15)
        motor.stop()
        status.wait(timeout=600)  # a hang guard: the move's status ends when stopped (it does not hang)
        time.sleep(0.1)
        assert 2.0 < motor.position < 4.0
        assert motor.motor_done_move.get() == 1
    finally:
        motor.velocity.put(0.0, wait=True)
    motor.move(2.0, wait=True)
    assert motor.position == 2.0


def test_soft_limits_are_refused_by_ophyd_and_by_the_ioc(stage):
    low, high = stage.x.limits
    assert low < -1.0 and high > -1.0 + 47 * PIXEL
    with pytest.raises(LimitError):
        stage.x.move(high + 1.0)
    raw = epics.PV(PREFIX + "m1.VAL")
    assert raw.wait_for_connection(5)
    before = stage.x.position
    raw.put(high + 1.0, wait=True, timeout=5)
    time.sleep(0.2)
    assert stage.x.position == before


def test_scaler_counts_for_its_preset_time_at_the_stage_position(stage, scaler, sample_image):
    stage.y.move(2.0 + 3 * PIXEL, wait=True)
    stage.x.move(-1.0 + 5 * PIXEL, wait=True)
    scaler.preset_time.put(0.2, wait=True)
    scaler.stage()
    try:
        assert scaler.count_mode.get() == "OneShot"
        scaler.trigger().wait(600)  # a hang guard
        reading = scaler.read()
    finally:
        scaler.unstage()
        scaler.preset_time.put(0.0, wait=True)
    assert list(reading) == ["scaler"]
    assert reading["scaler"]["value"] == pytest.approx(sample_image.image[3, 5], abs=1e-9)
    assert epics.caget(PREFIX + "scaler1.S1") == pytest.approx(0.2 * 1e7)


def test_roi_detector_sums_its_region_of_the_frame(stage, roi, sample_image):
    stage.y.move(2.0 + 10 * PIXEL, wait=True)
    stage.x.move(-1.0 + 20 * PIXEL, wait=True)
    roi.stage()
    try:
        assert roi.image_mode.get() == "Single" and roi.wait_for_plugins.get() == "Yes"
        before = roi.array_counter.get()
        roi.trigger().wait(5)
        full = roi.read()["roi"]["value"]
        assert roi.array_counter.get() == before + 1
        epics.caput(PREFIX + "ROIStat1:1:SizeX", 8, wait=True)  # left half of the 16x16 spot
        roi.trigger().wait(5)
        half = roi.read()["roi"]["value"]
    finally:
        epics.caput(PREFIX + "ROIStat1:1:SizeX", 16, wait=True)
        roi.unstage()
    assert full == pytest.approx(sample_image.image[10, 20], rel=1e-9)
    assert half == pytest.approx(full / 2, rel=1e-9)


@pytest.mark.parametrize("detector", ["scaler", "roi"])
def test_48x48_smart_scan_over_channel_access_stores_what_the_ioc_served(
        detector, ioc, stage, scaler, roi, sample_image, catalog):
    det = {"scaler": scaler, "roi": roi}[detector]
    served_name = {"scaler": PREFIX + "scaler1", "roi": PREFIX + "cam1"}[detector]
    already = len(_served(ioc, served_name))
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    n = 48
    y0, x0 = 2.0, -1.0
    sampler = Sampler((n, n), seed=1, stop=StopCriteria(max_fraction=0.2 if detector == "scaler" else 0.05))
    (uid,) = RE(smart_scan([det], stage.y, y0, y0 + (n - 1) * PIXEL, n, stage.x, x0, x0 + (n - 1) * PIXEL, n,
                           sampler=sampler))
    assert catalog.writer.wait()
    data = read_scan(catalog.client[uid])
    served = _served(ioc, served_name)[already:]
    assert len(served) == len(data.values) == sampler.n_measured
    assert data.stop_reason.startswith("max_fraction reached")
    # the catalog holds exactly what the IOC served, where it served it
    np.testing.assert_array_equal(data.values, [float(r["value"]) for r in served])
    np.testing.assert_array_equal(data.positions, [[float(r["y"]), float(r["x"])] for r in served])
    # ... on the grid, each point once, and the value is the sample's pixel there
    assert len({tuple(p) for p in data.points.tolist()}) == len(data.points)
    np.testing.assert_array_equal(np.sort(data.points[:, 0] * n + data.points[:, 1]),
                                  np.sort(sampler.measured_points[:, 0] * n + sampler.measured_points[:, 1]))
    np.testing.assert_allclose(data.values, sample_image.image[data.points[:, 0], data.points[:, 1]],
                               rtol=1e-9, atol=1e-12)


def test_the_ioc_dying_mid_scan_ends_the_run_with_every_point_kept(ioc, stage, scaler, catalog):
    # Last in this module: it kills the module's IOC. (A second IOC would share the CA search port,
    # and the kernel hands each search to only one of two servers bound to it.)
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))

    def kill_at_100(name, doc):
        if name == "event" and doc["seq_num"] == 100 and "scaler" in doc["data"]:
            ioc.process.kill()  # the IOC dies, as a crashed IOC does

    RE.subscribe(kill_at_100)
    with pytest.raises(RuntimeError, match="could not be measured"):
        RE(smart_scan([scaler], stage.y, 2.0, 2.0 + 47 * PIXEL, 48, stage.x, -1.0, -1.0 + 47 * PIXEL, 48,
                      sampler={"seed": 0, "stop": {"max_fraction": 0.5}}, retries=0, timeout=2.0))
    assert catalog.writer.wait()
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail" and "could not be measured" in stop["reason"]
    data = read_scan(catalog.client[docs[0][1]["uid"]])
    events = [d for name, d in docs if name == "event" and "scaler" in d["data"]]
    assert len(data.values) == len(events) >= 100  # every point read before the death is stored
    print(f"\nIOC killed: points measured {len(events)}, in the catalog {len(data.values)}; {stop['reason']}")
    assert np.all(np.isfinite(data.values))  # and none after it was invented


def test_the_repeater_confirms_both_kinds_of_registration():
    import socket
    import struct

    port = int(os.environ["EPICS_CA_REPEATER_PORT"])  # conftest's repeater
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(5)
        for message in (b"", struct.pack(">HHHHII", 24, 0, 0, 0, 0, 0)):  # libca's empty datagram, REPEATER_REGISTER
            client.sendto(message, ("127.0.0.1", port))
            reply, _ = client.recvfrom(64)
            assert struct.unpack(">HHHHII", reply)[0] == 17  # REPEATER_CONFIRM
