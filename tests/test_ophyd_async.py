"""smart_scan with ophyd-async devices, in the same RunEngine and catalog as ophyd ones."""

import numpy as np
from bluesky import RunEngine
from bluesky.protocols import Triggerable
from ophyd import Signal
from ophyd_async.core import (
    AsyncStatus,
    StandardReadable,
    StandardReadableFormat,
    init_devices,
    soft_signal_r_and_setter,
)
from ophyd_async.sim import SimMotor

from plans import read_scan, smart_scan
from sim import SimulatedMicroscope
from steering import Sampler, StopCriteria


class SampleDetector(StandardReadable, Triggerable):
    """An ophyd-async detector built from a soft signal: on trigger, the image at the motors' readbacks."""

    def __init__(self, image: np.ndarray, motors, name: str = ""):
        self._image, self._motors = image, tuple(motors)  # a tuple: the motors are not children of it
        self.exposures_: list[tuple[float, float]] = []
        with self.add_children_as_readables(StandardReadableFormat.HINTED_SIGNAL):
            self.value, self._set_value = soft_signal_r_and_setter(float, 0.0)
        super().__init__(name=name)

    @AsyncStatus.wrap
    async def trigger(self):
        y, x = [await motor.user_readback.get_value() for motor in self._motors]
        self.exposures_.append((y, x))
        self._set_value(float(self._image[int(round(y)), int(round(x))]))


def _check_stored(run, sampler, truth, stop, points_field):
    """The storage checks of a step scan: every point once, at its pixel, with the value measured there."""
    assert stop["exit_status"] == "success" and stop["num_events"]["primary"] == sampler.n_measured
    data = read_scan(run)
    assert len(data.points) == sampler.n_measured
    assert len({tuple(p) for p in data.points.tolist()}) == len(data.points)  # each point once
    np.testing.assert_array_equal(np.sort(data.points[:, 0] * 64 + data.points[:, 1]),
                                  np.sort(sampler.measured_points[:, 0] * 64 + sampler.measured_points[:, 1]))
    np.testing.assert_allclose(data.values, truth[data.points[:, 0], data.points[:, 1]])
    assert run.metadata["start"]["hints"]["dimensions"] == [[[points_field[0]], "primary"],
                                                            [[points_field[1]], "primary"]]
    return data


def test_smart_scan_runs_ophyd_async_motors_and_detector_beside_ophyd_devices(blobs, catalog):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    stops = []
    RE.subscribe(lambda name, doc: stops.append(doc) if name == "stop" else None)
    with init_devices():
        y = SimMotor(units="um")  # instant moves
        x = SimMotor(units="um")
    with init_devices():
        det = SampleDetector(blobs, (y, x))
    ring_current = Signal(name="ring_current", value=102.5)  # an ophyd device read at every point

    # an ophyd scan first, in the same RunEngine
    scope = SimulatedMicroscope(blobs, name="sim")
    ophyd_sampler = Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.1))
    (ophyd_uid,) = RE(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64, sampler=ophyd_sampler))

    sampler = Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.1))
    (uid,) = RE(smart_scan([det, ring_current], y, 0, 63, 64, x, 0, 63, 64, sampler=sampler))
    assert catalog.writer.wait()

    _check_stored(catalog.client[ophyd_uid], ophyd_sampler, blobs, stops[0], ("sim_y", "sim_x"))
    run = catalog.client[uid]
    data = _check_stored(run, sampler, blobs, stops[1], ("y", "x"))
    assert len(det.exposures_) == sampler.n_measured  # nothing measured twice
    assert run.metadata["start"]["value_field"] == "det-value"  # the hinted field of the first detector
    primary = run["primary"].read()
    assert (np.asarray(primary["ring_current"]) == 102.5).all() and len(primary["ring_current"]) == len(data.points)
    # the same seed and image: the same points as the ophyd scan
    np.testing.assert_array_equal(data.points, read_scan(catalog.client[ophyd_uid]).points)
    print(f"\nophyd-async 64x64: {len(data.points)} points stored once each, {len(det.exposures_)} exposures")
