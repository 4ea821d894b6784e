"""Per-element (X-ray fluorescence) scaler channels over real Channel Access: `python -m sim.ioc --elements`
read by `devices.ElementScalerDetector`.

The IOC runs as a child process on loopback (conftest sets private CA ports and owns the repeater).
"""

import csv
import subprocess
import sys

import epics
import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import list_scan

from devices import ElementScalerDetector, ScanStage
from sim.ioc import SimulatedMotorRecord, build_ioc
from sim.ioc_process import IOCProcess
from sim.sample import ELEMENTS, SampleImage, element_maps

PREFIX = "telem:"
PIXEL = 0.1  # um between sample pixels
ORIGIN = (2.0, -1.0)


@pytest.fixture(scope="module")
def maps():
    """The element maps the IOC serves, placed on its stage coordinates."""
    return {name: SampleImage(image, pixel_size=PIXEL, origin=ORIGIN) for name, image in element_maps().items()}


@pytest.fixture(scope="module")
def ioc(tmp_path_factory):
    served = tmp_path_factory.mktemp("ioc_elements") / "served.csv"
    proc = IOCProcess("--elements", "--prefix", PREFIX, "--pixel-size", PIXEL, "--origin", *ORIGIN,
                      "--velocity", 0, "--dwell", 0, "--served-log", served).start()
    proc.served_log = served
    yield proc
    proc.stop()
    assert not proc.running()


@pytest.fixture(scope="module")
def stage(ioc):
    dev = ScanStage(PREFIX, y_pv="m2", x_pv="m1", name="stage")
    dev.wait_for_connection(timeout=10)
    return dev


@pytest.fixture(scope="module")
def xrf(ioc):
    dev = ElementScalerDetector(PREFIX + "scaler1", elements=ELEMENTS, name="xrf")
    dev.wait_for_connection(timeout=10)
    return dev


def _positions(maps):
    """Three stage positions: the brightest zinc particle, the brightest copper streak, and between pixels."""
    zn = np.unravel_index(np.argmax(maps["zn"].image), maps["zn"].shape)
    cu = np.unravel_index(np.argmax(maps["cu"].image), maps["cu"].shape)
    pixels = [zn, cu, (40.5, 77.25)]
    return [(ORIGIN[0] + r * PIXEL, ORIGIN[1] + c * PIXEL) for r, c in pixels]


def test_the_ready_line_and_the_pv_list_name_the_elements(ioc):
    assert "elements fe, zn, cu" in ioc.ready_line
    listed = subprocess.run([sys.executable, "-m", "sim.ioc", "--elements", "--prefix", "p:", "--list-pvs"],
                            capture_output=True, text=True, check=True).stdout.split()
    for k in (3, 4, 5):
        assert f"p:scaler1.S{k}" in listed and f"p:scaler1.NM{k}" in listed
    plain = subprocess.run([sys.executable, "-m", "sim.ioc", "--prefix", "p:", "--list-pvs"],
                           capture_output=True, text=True, check=True).stdout.split()
    assert "p:scaler1.S2" in plain and "p:scaler1.S3" not in plain
    assert [epics.caget(f"{PREFIX}scaler1.NM{k}", as_string=True) for k in (3, 4, 5)] == ["fe", "zn", "cu"]


def test_the_device_names_a_field_per_element(xrf):
    fields = ["xrf_fe", "xrf_zn", "xrf_cu"]
    assert xrf.hints == {"fields": fields}
    assert list(xrf.describe()) == ["xrf", *fields]
    assert xrf.describe()["xrf_zn"]["source"] == f"PV:{PREFIX}scaler1.S4"
    config = xrf.read_configuration()
    assert [config[f"xrf_channel_names_{e}"]["value"] for e in ELEMENTS] == ["fe", "zn", "cu"]


def test_each_element_is_counted_at_the_stage_position(stage, xrf, maps, ioc):
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    positions = _positions(maps)
    xrf.preset_time.put(0.05, wait=True)
    try:
        RE(list_scan([xrf], stage.y, [y for y, _ in positions], stage.x, [x for _, x in positions]))
    finally:
        xrf.preset_time.put(0.0, wait=True)
    events = [doc["data"] for name, doc in docs if name == "event"]
    assert len(events) == 3
    for data, (y, x) in zip(events, positions, strict=True):
        assert (data["stage_y"], data["stage_x"]) == pytest.approx((y, x), abs=1e-9)
        expected = {e: maps[e].value_at(y, x) for e in ELEMENTS}
        for element in ELEMENTS:
            assert data[f"xrf_{element}"] == pytest.approx(expected[element], abs=1e-9)
        assert data["xrf"] == pytest.approx(sum(expected.values()), abs=1e-9)
    assert events[0]["xrf_zn"] == pytest.approx(1.0, abs=1e-9)  # the brightest zinc particle
    assert events[1]["xrf_cu"] == pytest.approx(1.0, abs=1e-9)
    assert epics.caget(PREFIX + "scaler1.S1") == pytest.approx(0.05 * 1e7)
    # the served log holds each element's channel, with the value served
    with open(ioc.served_log) as f:
        rows = list(csv.DictReader(f))
    for k, element in enumerate(ELEMENTS, start=3):
        served = [float(r["value"]) for r in rows if r["detector"] == f"{PREFIX}scaler1.S{k}"][-3:]
        assert served == [data[f"xrf_{element}"] for data in events]
    sums = [float(r["value"]) for r in rows if r["detector"] == f"{PREFIX}scaler1"][-3:]
    assert sums == [data["xrf"] for data in events]


def test_channels_named_otherwise_are_refused(ioc):
    swapped = ElementScalerDetector(PREFIX + "scaler1", elements=("fe", "cu", "zn"), name="swapped")
    with pytest.raises(ValueError, match=r"\.NM4 is 'zn', expected 'cu'.*\.NM5 is 'cu', expected 'zn'"):
        swapped.wait_for_connection(timeout=10)
    with pytest.raises(ValueError, match="not the elements"):
        swapped.stage()
    shifted = ElementScalerDetector(PREFIX + "scaler1", elements=("zn", "cu"), first_channel=4, name="shifted")
    shifted.wait_for_connection(timeout=10)  # a subset, from the right channel on, is fine
    assert shifted.hints == {"fields": ["shifted_zn", "shifted_cu"]}


def test_bad_element_layouts_are_refused_before_connecting():
    for kwargs, message in ((dict(elements=()), "at least one"), (dict(elements="fe"), "sequence"),
                            (dict(elements=("fe", "fe")), "differ"), (dict(elements=("Fe K",)), "identifier"),
                            (dict(elements=("fe", "zn"), first_channel=1), "the sum"),
                            (dict(elements=("fe",), first_channel=65), "1..64")):
        with pytest.raises(ValueError, match=message):
            ElementScalerDetector("nowhere:scaler1", name="bad", **kwargs)
    layout = type(ElementScalerDetector("nowhere:scaler1", elements=("fe", "zn"), name="a"))
    assert type(layout("nowhere:scaler1", elements=("fe", "zn"), name="b")) is layout
    with pytest.raises(TypeError, match="make other layouts"):
        layout("nowhere:scaler1", elements=("cu",), name="c")


def test_the_beam_counts_each_element_with_its_own_poisson_draw():
    # in process, no Channel Access: the IOC's parts, with the stage at rest at (0, 0)
    arrays = {name: np.full((8, 8), value) for name, value in (("fe", 0.5), ("zn", 0.1), ("cu", 0.25))}
    for array in arrays.values():
        array[7, 7] = 1.0  # each map's brightest value: flux photons/s there
    images = {name: SampleImage(array) for name, array in arrays.items()}
    parts, pvdb = build_ioc(SampleImage(sum(arrays.values())), elements=images, flux=400.0, seed=3, prefix="q:")
    assert {"q:scaler1.S3", "q:scaler1.NM5"} <= set(pvdb) and "q:scaler1.S6" not in pvdb
    assert parts["scaler"].channels == ("fe", "zn", "cu")
    assert isinstance(parts["y"], SimulatedMotorRecord) and parts["y"].position == parts["x"].position == 0.0
    draws = []
    for _ in range(600):
        values, y, x = parts["beam"].count_elements(0.5)
        draws.append([values[e] for e in ELEMENTS])
    fe, zn, cu = np.array(draws).T
    for counts, value in ((fe, 0.5), (zn, 0.1), (cu, 0.25)):
        assert np.all(counts == np.round(counts))
        assert counts.mean() == pytest.approx(value * 400.0 * 0.5, rel=0.1)
        assert counts.var() == pytest.approx(value * 400.0 * 0.5, rel=0.3)
    assert abs(np.corrcoef(fe, cu)[0, 1]) < 0.15
