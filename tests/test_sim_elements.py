"""A multi-element (X-ray fluorescence) sample on the simulated microscope: the maps, the fields, the noise."""

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import grid_scan
from scipy import ndimage

from sim import SimulatedMicroscope, element_maps
from sim.sample import ELEMENTS
from steering.timing import StageTiming


def _gradient(image):
    """Mean absolute difference between neighbouring pixels, both axes."""
    return np.abs(np.diff(image, axis=0)).mean() + np.abs(np.diff(image, axis=1)).mean()


def _corr(a, b):
    return np.corrcoef(a.ravel(), b.ravel())[0, 1]


def test_element_maps_are_deterministic_and_in_range():
    maps = element_maps()
    assert list(maps) == ["fe", "zn", "cu"] == list(ELEMENTS)
    again = element_maps(seed=2023)
    other = element_maps(seed=7)
    for name, image in maps.items():
        assert image.shape == (128, 128) and image.dtype == np.float64
        assert image.min() >= 0.0 and image.max() == 1.0
        np.testing.assert_array_equal(image, again[name])
        assert not np.allclose(image, other[name])
    small = element_maps(48, seed=3)
    assert all(image.shape == (48, 48) and 0 <= image.min() <= image.max() <= 1 for image in small.values())
    with pytest.raises(ValueError, match="size"):
        element_maps(4)


@pytest.mark.parametrize("seed", [2023, 0, 11])
def test_the_three_elements_differ_as_a_fluorescence_sample_does(seed):
    maps = element_maps(seed=seed)
    fe, zn, cu = maps["fe"], maps["zn"], maps["cu"]
    # zn: sparse, a handful of small bright particles on a near-zero background
    assert (zn < 0.05).mean() > 0.9
    particles, count = ndimage.label(zn > 0.3)
    assert 5 <= count <= 15
    sizes = ndimage.sum_labels(np.ones_like(zn), particles, range(1, count + 1))
    assert sizes.max() < 60  # small: a few pixels across
    # ... some on the iron-richest spots, some not
    peaks = [np.unravel_index(np.argmax(np.where(particles == i, zn, -1)), zn.shape) for i in range(1, count + 1)]
    on_fe = [fe[p] >= np.quantile(fe, 0.8) for p in peaks]
    assert any(on_fe) and not all(on_fe)
    # fe: a matrix over most of the field, smooth
    assert (fe > 0.3).mean() > 0.75
    assert _gradient(fe) < 0.03
    assert _gradient(fe) / fe.mean() < 0.25 * _gradient(cu) / cu.mean()
    assert fe.std() > 0.1  # not flat: a slowly varying level with grains
    # cu: thin structure of its own, unlike the other two
    assert 0.005 < (cu > 0.3).mean() < 0.1
    assert abs(_corr(cu, fe)) < 0.3 and abs(_corr(cu, zn)) < 0.3
    assert _corr(fe, zn) < 0.5


def _scan(scope, rows, cols):
    """A real RunEngine grid scan over pixel indices ``rows`` x ``cols``; the events' data."""
    (y0, _, x0, _), (py, px) = scope.extent(), scope.optics.pixel_yx
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    RE(grid_scan([scope.det], scope.y, y0 + rows[0] * py, y0 + rows[-1] * py, len(rows),
                 scope.x, x0 + cols[0] * px, x0 + cols[-1] * px, len(cols)))
    descriptor = next(doc for name, doc in docs if name == "descriptor")
    return descriptor, [doc["data"] for name, doc in docs if name == "event"]


def test_a_grid_scan_stores_each_element_and_their_sum():
    maps = element_maps(32, seed=5)
    scope = SimulatedMicroscope(maps, name="sim", pixel_size=0.5, origin=(1.0, -2.0))
    assert scope.elements == ("fe", "zn", "cu")
    assert list(scope.element_samples) == ["fe", "zn", "cu"]
    np.testing.assert_array_equal(scope.sample, maps["fe"] + maps["zn"] + maps["cu"])
    fields = ["sim_det_fe", "sim_det_zn", "sim_det_cu"]
    assert scope.det.hints == {"fields": fields}
    assert list(scope.det.describe()) == list(scope.det.read()) == ["sim_det", *fields]
    assert list(scope.det.read_configuration()) == list(scope.det.describe_configuration())
    descriptor, events = _scan(scope, [3, 4, 5], [10, 12])
    for field in ["sim_det", *fields]:
        assert descriptor["data_keys"][field]["dtype"] == "number"
    assert descriptor["hints"]["sim_det"] == {"fields": fields}
    assert len(events) == 6
    for data in events:
        row = round((data["sim_y"] - 1.0) / 0.5)
        col = round((data["sim_x"] + 2.0) / 0.5)
        for element in ELEMENTS:
            assert data[f"sim_det_{element}"] == pytest.approx(maps[element][row, col], abs=1e-12)
        assert data["sim_det"] == pytest.approx(sum(maps[e][row, col] for e in ELEMENTS), abs=1e-12)
    # between pixels: the same bilinear optics as a single image
    scope.y.set(1.0 + 3.25 * 0.5).wait()
    scope.x.set(-2.0 + 7.5 * 0.5).wait()
    scope.det.trigger().wait()
    for element in ELEMENTS:
        single = SimulatedMicroscope(maps[element], pixel_size=0.5, origin=(1.0, -2.0))
        expected = single.sample_at(1.0 + 3.25 * 0.5, -2.0 + 7.5 * 0.5)
        assert getattr(scope.det.elements, element).get() == pytest.approx(expected, abs=1e-12)
        assert scope.elements_at(1.0 + 3.25 * 0.5, -2.0 + 7.5 * 0.5)[element] == pytest.approx(expected, abs=1e-12)


def test_with_flux_each_element_is_an_independent_poisson_count():
    maps = {"fe": np.full((4, 4), 0.5), "zn": np.full((4, 4), 0.1), "cu": np.full((4, 4), 0.25)}
    for m in maps.values():
        m[0, 0] = 1.0  # each map's brightest value: flux photons/s there
    scope = SimulatedMicroscope(maps, flux=400.0, dwell=0.5, seed=1)
    descriptor, events = _scan(scope, [1, 2], [1, 3])
    for data in events:
        counts = [data[f"sim_det_{e}"] for e in ELEMENTS]
        assert all(c >= 0 and c == int(c) for c in counts)
        assert data["sim_det"] == sum(counts)
    scope.y.set(2.0).wait()
    scope.x.set(2.0).wait()
    draws = []
    for _ in range(600):
        scope.det.trigger().wait()
        draws.append([scope.det.value.get(), *(getattr(scope.det.elements, e).get() for e in ELEMENTS)])
    total, fe, zn, cu = np.array(draws).T
    for counts, value in ((fe, 0.5), (zn, 0.1), (cu, 0.25)):
        mean = value * 400.0 * 0.5
        assert counts.mean() == pytest.approx(mean, rel=0.1)
        assert counts.var() == pytest.approx(mean, rel=0.3)  # Poisson: variance = mean
    np.testing.assert_array_equal(total, fe + zn + cu)
    assert abs(np.corrcoef(fe, cu)[0, 1]) < 0.15 and abs(np.corrcoef(fe, zn)[0, 1]) < 0.15  # drawn independently
    # the same seed draws the same counts
    twin = SimulatedMicroscope(maps, flux=400.0, dwell=0.5, seed=1)
    _, twin_events = _scan(twin, [1, 2], [1, 3])
    assert [d["sim_det_zn"] for d in twin_events] == [d["sim_det_zn"] for d in events]


def _fly(scope, y, xs):
    """One flight along row ``y`` over ``xs``; its page's data."""
    scope.y.set(y).wait()
    scope.x.set(xs[0]).wait()
    scope.flyer.prepare({"y": y, "x": xs}).wait()
    scope.flyer.kickoff().wait()
    (page,) = scope.flyer.collect_pages()
    return page["data"]


def test_the_flyer_records_every_element():
    maps = element_maps(32, seed=2)
    timing = StageTiming(pixel_size=1.0, dwell=0.01, velocity=100.0, acceleration=1000.0, settle=0.001,
                         line_overhead=0.01)
    scope = SimulatedMicroscope(maps, name="sim", timing=timing)
    keys = scope.flyer.describe_collect()["primary"]
    assert {"sim_det", "sim_det_fe", "sim_det_zn", "sim_det_cu"} <= set(keys)
    data = _fly(scope, 7.0, [3.0, 4.0, 5.0, 6.0])
    assert set(data) == set(keys)
    for element in ELEMENTS:  # what a microscope of that element's map alone records on the same flight
        alone = _fly(SimulatedMicroscope(maps[element], name="sim", timing=timing), 7.0, [3.0, 4.0, 5.0, 6.0])
        np.testing.assert_allclose(data[f"sim_det_{element}"], alone["sim_det"], rtol=1e-12)
    np.testing.assert_allclose(data["sim_det"], np.sum([data[f"sim_det_{e}"] for e in ELEMENTS], axis=0),
                               rtol=1e-12)
    noisy = _fly(SimulatedMicroscope(maps, name="sim", timing=timing, flux=3000.0, seed=0), 7.0, [3.0, 4.0, 5.0])
    counts = np.array([noisy[f"sim_det_{e}"] for e in ELEMENTS])
    assert np.all(counts == np.round(counts)) and counts.sum() > 0
    np.testing.assert_array_equal(noisy["sim_det"], counts.sum(axis=0))


def test_a_single_image_keeps_its_one_field():
    scope = SimulatedMicroscope(np.arange(16.0).reshape(4, 4), name="sim")
    assert scope.elements == () and scope.element_samples == {}
    assert scope.det.hints == {"fields": ["sim_det"]}
    assert list(scope.det.describe()) == ["sim_det"]
    assert scope.elements_at(1.0, 1.0) == {}


def test_bad_element_dicts_are_refused():
    good = np.zeros((4, 4))
    with pytest.raises(ValueError, match="empty"):
        SimulatedMicroscope({})
    with pytest.raises(ValueError, match=r"differ in shape.*fe \(4, 4\).*zn \(5, 5\)"):
        SimulatedMicroscope({"fe": good, "zn": np.zeros((5, 5))})
    for name in ("Fe K-alpha", "1fe", "_fe", "for", 3):
        with pytest.raises(ValueError, match="not a Python identifier"):
            SimulatedMicroscope({"fe": good, name: good})
    with pytest.raises(ValueError, match="reserved"):
        SimulatedMicroscope({"read": good})
    with pytest.raises(ValueError, match="'zn'.*2-D"):
        SimulatedMicroscope({"fe": good, "zn": np.zeros(16)})
    with pytest.raises(ValueError, match="'cu'.*NaN"):
        SimulatedMicroscope({"fe": good, "cu": np.full((4, 4), np.nan)})
