"""The simulated microscope: positions, simulated time, noise, bad input."""

import numpy as np
import pytest
from ophyd.utils import LimitError

from sim import SimulatedMicroscope, default_sample


def test_detector_reads_the_sample_at_the_stage_position():
    img = np.arange(20.0).reshape(4, 5)
    scope = SimulatedMicroscope(img, pixel_size=0.5, origin=(10.0, -1.0))
    scope.y.set(10.0 + 2 * 0.5).wait()
    scope.x.set(-1.0 + 3 * 0.5).wait()
    scope.det.trigger().wait()
    assert scope.det.read()["sim_det"]["value"] == img[2, 3]
    assert scope.sample_at(10.25, -1.0) == pytest.approx((img[0, 0] + img[1, 0]) / 2)  # bilinear between rows
    assert scope.sample_at(-50, 99) == img[0, 4]  # outside: the nearest edge
    assert scope.extent() == (10.0, 11.5, -1.0, 1.0)


def test_moves_and_dwell_take_simulated_time_without_waiting():
    scope = SimulatedMicroscope(default_sample(32), velocity=10.0, settle_time=0.1, dwell=0.2)
    scope.x.set(5.0)
    scope.y.set(2.0)  # concurrent with the x move
    scope.det.trigger()
    assert scope.clock.now == pytest.approx(max(5 / 10, 2 / 10) + 0.1 + 0.2)
    scope.det.trigger()  # no move: dwell only
    assert scope.clock.now == pytest.approx(0.8 + 0.2)
    # a serpentine raster: 32x32 dwells, 32x31 one-pixel steps, 31 row changes
    assert scope.raster_time() == pytest.approx(1024 * 0.2 + 32 * 31 * 0.2 + 31 * 0.2)


def test_counting_noise_is_poisson_in_flux_times_dwell():
    img = np.full((4, 4), 0.5)
    img[0, 0] = 1.0
    scope = SimulatedMicroscope(img, flux=2000.0, dwell=0.5, seed=0)
    scope.y.set(2.0)
    scope.x.set(2.0)
    counts = []
    for _ in range(400):
        scope.det.trigger()
        counts.append(scope.det.value.get())
    assert np.mean(counts) == pytest.approx(2000.0 * 0.5 * 0.5, rel=0.02)  # flux is per second at the peak value 1.0
    assert np.var(counts) == pytest.approx(500.0, rel=0.2)


def test_bad_settings_and_moves_are_refused():
    with pytest.raises(ValueError, match="2-D"):
        SimulatedMicroscope(np.zeros(5))
    with pytest.raises(ValueError, match="velocity"):
        SimulatedMicroscope(np.zeros((4, 4)), velocity=0)
    with pytest.raises(ValueError, match="not found"):
        SimulatedMicroscope("/no/such/file.tif")
    scope = SimulatedMicroscope(np.zeros((4, 4)))
    scope.x.limits = (0.0, 3.0)
    with pytest.raises(LimitError):
        scope.x.set(3.5)
    with pytest.raises(ValueError, match="finite"):
        scope.y.set(float("nan"))


def test_extent_maps_the_image_onto_stage_coordinates():
    img = np.arange(12, dtype=float).reshape(3, 4)
    scope = SimulatedMicroscope(img, extent=((10.0, 12.0), (-3.0, 3.0)))
    assert scope.extent() == (10.0, 12.0, -3.0, 3.0)
    assert scope.optics.pixel_yx == (1.0, 2.0)
    assert scope.sample_at(11.0, 1.0) == img[1, 2]
    assert scope.sample_at(12.0, -2.0) == pytest.approx((img[2, 0] + img[2, 1]) / 2)
    with pytest.raises(ValueError, match="extent"):
        SimulatedMicroscope(img, extent=((1.0, 0.0), (0.0, 1.0)))


def test_faulty_detector_fails_at_its_rate_and_refuses_unknown_faults():
    import pytest

    from sim import FaultyDetector, SimulatedMicroscope

    scope = SimulatedMicroscope(np.ones((8, 8)), name="sim")
    det = FaultyDetector(scope, rate=0.3, seed=1)
    outcomes = []
    for _ in range(400):
        try:
            status = det.trigger()
            outcomes.append("ok" if status.done and np.isfinite(det.value.get()) else "fault")
        except RuntimeError:
            outcomes.append("fault")
    assert 0.22 < outcomes.count("fault") / 400 < 0.38
    assert {kind for _, kind in det.injected_} == {"raise", "hang", "nan"}
    with pytest.raises(ValueError, match="unknown kinds"):
        FaultyDetector(scope, {(0, 0): ["explode"]})
    with pytest.raises(ValueError, match="rate"):
        FaultyDetector(scope, rate=2)
