"""The simulated IOC's motor acceleration (``.ACCL``) and its multichannel scaler (``{prefix}mcs:``).

In-process tests check the motor's analytic trajectory (`SimulatedMotorRecord.position_at`); the others
talk Channel Access to ``python -m sim.ioc`` as a child process (conftest sets private CA ports).
No assert bounds a wall-clock time: timing only enters through the IOC's own clock, which the tests
recover from the data (the move's start time is fitted from the bins' positions).
"""

import asyncio
import csv
import subprocess
import sys
import time

import epics
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from sim.ioc import MAX_BINS, SimulatedMotorRecord, build_ioc
from sim.ioc_process import IOCProcess
from sim.sample import SampleImage

PREFIX = "tmcs:"
MCS = PREFIX + "mcs:"
PIXEL = 0.1  # um between sample pixels
ORIGIN = (2.0, -1.0)
GUARD = 120.0  # seconds: a hang guard only, never a timing assertion


def trapezoid(tau, distance, velocity, accel_time):
    """Textbook distance of a rest-to-rest move with linear ramps (written apart from sim.ioc's)."""
    tau = np.asarray(tau, dtype=float)
    if accel_time <= 0:
        return np.clip(velocity * tau, 0.0, distance)
    a = velocity / accel_time
    if distance < velocity * accel_time:  # triangle
        t_half = np.sqrt(distance / a)
        total = 2 * t_half
        up = 0.5 * a * tau**2
        down = distance - 0.5 * a * (total - tau) ** 2
        return np.where(tau <= 0, 0.0, np.where(tau < t_half, up, np.where(tau < total, down, distance)))
    total = distance / velocity + accel_time
    out = np.empty_like(tau)
    for i, t in np.ndenumerate(tau):
        if t <= 0:
            out[i] = 0.0
        elif t < accel_time:
            out[i] = 0.5 * a * t * t
        elif t < total - accel_time:
            out[i] = 0.5 * velocity * accel_time + velocity * (t - accel_time)
        elif t < total:
            out[i] = distance - 0.5 * a * (total - t) ** 2
        else:
            out[i] = distance
    return out


# ---------------------------------------------------------------- the motor's trajectory, in process

def _motor_run(scenario):
    async def main():
        motor = SimulatedMotorRecord("inproc:m1", velocity=2.0, limits=(-100.0, 100.0))
        await motor.initialise()
        return await scenario(motor)

    return asyncio.run(main())


def test_motor_acceleration_is_zero_by_default_and_the_move_then_runs_at_velocity_throughout():
    async def scenario(motor):
        assert motor.fields.seconds_to_velocity.value == 0.0  # caproto's own default is 0.2
        await motor.motor.write(3.0)
        move = motor.current_move
        offsets = np.array([-1.0, 0.0, 0.25, 0.75, 1.5, 3.0])
        positions = [motor.position_at(move.t0 + d) for d in offsets]
        while motor.fields.done_moving_to_value.value != 1 or motor.position != 3.0:
            await asyncio.sleep(0.01)
        return positions

    np.testing.assert_allclose(_motor_run(scenario), [0.0, 0.0, 0.5, 1.5, 3.0, 3.0], atol=1e-12)


@pytest.mark.parametrize("distance", [3.0, -3.0, 0.2])
def test_motor_follows_a_trapezoid_or_a_triangle_and_its_readback_ends_on_target(distance):
    accl = 0.5

    async def scenario(motor):
        await motor.fields.seconds_to_velocity.write(accl)
        readbacks = []
        await motor.motor.write(distance)
        move = motor.current_move
        times = move.t0 + np.linspace(-0.5, 3.0, 71)
        positions = [motor.position_at(t) for t in times]
        while motor.moves_ == 0:  # moves completed
            readbacks.append(motor.position)
            await asyncio.sleep(0.005)
        return times - move.t0, positions, readbacks, motor.position

    tau, positions, readbacks, final = _motor_run(scenario)
    expected = np.sign(distance) * trapezoid(tau, abs(distance), 2.0, accl)
    np.testing.assert_allclose(positions, expected, atol=1e-12)
    if abs(distance) == 3.0:  # in the first ACCL seconds it covers half of what cruising would (0.5 of 1.0)
        assert abs(positions[np.searchsorted(tau, accl)]) == pytest.approx(0.5)
    assert final == distance
    assert np.all(np.diff(np.array(readbacks) * np.sign(distance)) >= 0)  # the readback never goes back


def test_stop_ends_the_trajectory_where_the_motor_is():
    async def scenario(motor):
        await motor.fields.seconds_to_velocity.write(0.5)
        await motor.motor.write(3.0)
        move = motor.current_move
        await asyncio.sleep(0.2)
        await motor.fields.stop.write(1)
        stop_time, stop_position = move.stopped
        while motor.moves_ == 0:
            await asyncio.sleep(0.01)
        after = [motor.position_at(stop_time + d) for d in (0.0, 0.5, 10.0)]
        return move.t0, stop_time, stop_position, after, motor.position, motor.motor.value

    t0, stop_time, stop_position, after, final, setpoint = _motor_run(scenario)
    assert stop_position == pytest.approx(float(trapezoid(stop_time - t0, 3.0, 2.0, 0.5)), abs=1e-12)
    assert 0.0 < stop_position < 3.0
    assert after == [stop_position] * 3
    assert final == stop_position and setpoint == stop_position


def test_mcs_bins_count_photons_with_the_sample_noise_model_when_the_ioc_has_a_flux():
    sample = SampleImage(np.random.default_rng(3).random((8, 8)))
    parts, _ = build_ioc(sample, flux=1e5, seed=5)
    bins = parts["mcs"].bins(t0=0.0, dwell=0.01, first=0, stop=2000)  # the motors at rest at (0, 0)
    signal = bins[1]
    assert np.all(signal == np.round(signal))  # photon counts
    expected = sample.value_at(0.0, 0.0) / sample.peak * 1e5 * 0.01
    assert signal.mean() == pytest.approx(expected, rel=0.02)
    assert signal.var() == pytest.approx(expected, rel=0.1)  # Poisson
    np.testing.assert_allclose(bins[0], 1e5)
    np.testing.assert_array_equal(bins[2:], 0.0)


# ---------------------------------------------------------------- over Channel Access

@pytest.fixture(scope="module")
def sample_image():
    return SampleImage(np.random.default_rng(7).random((48, 48)), pixel_size=PIXEL, origin=ORIGIN)


@pytest.fixture(scope="module")
def ioc(tmp_path_factory, sample_image):
    folder = tmp_path_factory.mktemp("ioc_mcs")
    np.save(folder / "sample.npy", sample_image.image)
    served = folder / "served.csv"
    proc = IOCProcess("--image", folder / "sample.npy", "--prefix", PREFIX, "--pixel-size", PIXEL,
                      "--origin", *ORIGIN, "--velocity", 0, "--served-log", served).start()
    proc.served_log = served
    yield proc
    proc.stop()
    assert not proc.running()


def _get(name, **kw):
    value = epics.caget(name, timeout=10, use_monitor=False, **kw)  # the IOC's value now, not the last monitor
    assert value is not None, f"no reply from {name}"
    return value


def _put(name, value):
    assert epics.caput(name, value, wait=True, timeout=GUARD) == 1, f"put {name} = {value} failed"


def _wait(condition, what):
    for _ in range(int(GUARD / 0.01)):  # polls, a guard against a hang, not a time limit
        if condition():
            return
        time.sleep(0.01)
    pytest.fail(f"hang guard: {what}")


def _move(motor, target):
    _put(PREFIX + motor + ".VAL", target)
    _wait(lambda: _get(PREFIX + motor + ".RBV") == target and _get(PREFIX + motor + ".DMOV") == 1,
          f"{motor} reaching {target}")


def _arrays():
    n = int(_get(MCS + "CurrentChannel"))
    nords = [int(_get(f"{MCS}mca{i}.NORD")) for i in range(1, 5)]
    arrays = [np.atleast_1d(_get(f"{MCS}mca{i}", count=n) if n else np.zeros(0)) for i in range(1, 5)]
    return n, nords, arrays


def _acquire(nuse, dwell):
    _put(MCS + "Dwell", dwell)
    _put(MCS + "NuseAll", nuse)
    _put(MCS + "EraseStart", 1)
    assert _get(MCS + "EraseStart") == 0  # the put returned at once, and the value went back to 0


def _served(ioc):
    with open(ioc.served_log) as f:
        return [row for row in csv.DictReader(f) if row["detector"] == MCS + "mca2"]


def test_mcs_with_the_motors_at_rest_bins_the_clock_and_the_sample_there(ioc, sample_image):
    _move("m2", ORIGIN[0] + 7 * PIXEL)
    _move("m1", ORIGIN[1] + 11 * PIXEL)
    assert _get(PREFIX + "m1.ACCL") == 0.0 and _get(PREFIX + "m2.ACCL") == 0.0
    before = len(_served(ioc))
    _acquire(20, 0.01)
    _wait(lambda: _get(MCS + "Acquiring") == 0, "the acquisition ending")
    n, nords, (clock, signal, x, y) = _arrays()
    assert n == 20 and nords == [20] * 4
    assert len(clock) == len(signal) == len(x) == len(y) == 20
    np.testing.assert_allclose(clock, 1e5, rtol=1e-12)
    np.testing.assert_allclose(signal, sample_image.image[7, 11], rtol=1e-12)
    np.testing.assert_allclose(x, ORIGIN[1] + 11 * PIXEL, rtol=1e-12)
    np.testing.assert_allclose(y, ORIGIN[0] + 7 * PIXEL, rtol=1e-12)
    served = _served(ioc)[before:]
    assert len(served) == 20
    np.testing.assert_array_equal([float(r["value"]) for r in served], signal)
    np.testing.assert_array_equal([float(r["x"]) for r in served], x)
    np.testing.assert_array_equal([float(r["y"]) for r in served], y)


def test_mcs_during_an_accelerated_move_bins_the_trapezoid_and_the_sample_swept(ioc, sample_image):
    velocity, accl, dwell = 10.0, 0.2, 0.01
    y_row, x_a, x_b = ORIGIN[0] + 10 * PIXEL, ORIGIN[1] + 5 * PIXEL, ORIGIN[1] + 45 * PIXEL  # 4 um
    _move("m2", y_row)
    _move("m1", x_a)
    readbacks = []
    rbv = epics.PV(PREFIX + "m1.RBV", callback=lambda value, **kw: readbacks.append(value))
    assert rbv.wait_for_connection(10)
    before = len(_served(ioc))
    try:
        _put(PREFIX + "m1.VELO", velocity)
        _put(PREFIX + "m1.ACCL", accl)
        _acquire(MAX_BINS, dwell)
        _wait(lambda: _get(MCS + "CurrentChannel") >= 5, "bins before the move")
        _move("m1", x_b)
        done = _get(MCS + "CurrentChannel")
        _wait(lambda: _get(MCS + "CurrentChannel") >= done + 5, "bins after the move")
        _put(MCS + "StopAll", 1)
    finally:
        rbv.clear_callbacks()
        _put(PREFIX + "m1.VELO", 0.0)
        _put(PREFIX + "m1.ACCL", 0.0)
    assert _get(MCS + "Acquiring") == 0
    n, nords, (clock, signal, x, y) = _arrays()
    assert nords == [n] * 4 and len(x) == n
    assert x[0] == x_a and x[-1] == x_b  # the whole move is inside the acquisition
    np.testing.assert_allclose(y, y_row, rtol=1e-12)
    assert np.all(np.diff(x) >= 0)
    moving = np.flatnonzero((x > x_a) & (x < x_b))
    assert len(moving) >= 20 and np.all(np.diff(x[moving[0]:moving[-1] + 1]) > 0)  # increasing while moving

    # bin k averages x at its 8 sub-times; the move's start time is the one unknown: fit it
    sub = (np.arange(n)[:, None] + (np.arange(8) + 0.5) / 8) * dwell

    def model(t_start, accel_time):
        return x_a + trapezoid(sub - t_start, x_b - x_a, velocity, accel_time)

    def fit(accel_time):
        lo, hi = (moving[0] - 1) * dwell, (moving[0] + 1) * dwell
        best = minimize_scalar(lambda ts: np.sum((model(ts, accel_time).mean(axis=1) - x) ** 2), bounds=(lo, hi),
                               method="bounded", options={"xatol": 1e-12})
        return best.x, np.max(np.abs(model(best.x, accel_time).mean(axis=1) - x))

    t_start, error = fit(accl)
    assert error < 1e-6, error  # the bins' x follow the trapezoid of VELO and ACCL
    assert fit(0.0)[1] > 0.05  # ... and no constant-velocity move fits them
    # in the first ACCL seconds the motor covers half what cruising would (0.5 um, not 1)
    assert float(trapezoid(accl, x_b - x_a, velocity, accl)) == pytest.approx(0.5 * velocity * accl)

    # mca2: the mean of the sample along the stretch each bin swept
    path_x = model(t_start, accl)
    expected = sample_image.values_at(np.full(path_x.size, y_row), path_x.ravel()).reshape(path_x.shape).mean(axis=1)
    np.testing.assert_allclose(signal, expected, atol=1e-5)
    at_mean = sample_image.values_at(np.full(n, y_row), x)
    assert np.max(np.abs(signal - at_mean)[moving]) > 1e-3  # integrating along the path differs from a point
    np.testing.assert_allclose(clock, 1e5, rtol=1e-12)

    readbacks = np.array(readbacks)
    assert np.all(np.diff(readbacks) >= 0) and readbacks[-1] == x_b
    assert np.count_nonzero((readbacks > x_a) & (readbacks < x_b)) >= 3  # the readback follows it as it goes
    served = _served(ioc)[before:]
    assert len(served) == n
    np.testing.assert_array_equal([float(r["value"]) for r in served], signal)
    np.testing.assert_array_equal([float(r["x"]) for r in served], x)


def test_stop_all_ends_the_acquisition_with_every_completed_bin(ioc):
    before = len(_served(ioc))
    _acquire(5000, 0.01)  # 50 s unless stopped
    assert _get(MCS + "Acquiring") == 1
    _wait(lambda: _get(MCS + "CurrentChannel") >= 3, "a few bins")
    _put(MCS + "StopAll", 1)  # its put returns once Acquiring is 0
    assert _get(MCS + "Acquiring") == 0
    n, nords, arrays = _arrays()
    assert 3 <= n < 5000 and nords == [n] * 4
    assert [len(a) for a in arrays] == [n] * 4
    time.sleep(0.1)
    assert _get(MCS + "CurrentChannel") == n  # nothing after the stop
    assert len(_served(ioc)) - before == n
    _put(MCS + "StopAll", 1)  # stopping again is harmless
    assert _get(MCS + "Acquiring") == 0


def test_external_channel_advance_only_erases(ioc):
    _acquire(5, 0.01)
    _wait(lambda: _get(MCS + "Acquiring") == 0, "the acquisition ending")
    assert _get(MCS + "CurrentChannel") == 5
    _put(MCS + "ChannelAdvance", 1)
    try:
        assert _get(MCS + "ChannelAdvance", as_string=True) == "External"
        _acquire(5, 0.01)
        assert _get(MCS + "Acquiring") == 0
        assert _get(MCS + "CurrentChannel") == 0 and _get(MCS + "mca1.NORD") == 0
    finally:
        _put(MCS + "ChannelAdvance", 0)


def test_mcs_refuses_a_dwell_of_zero_and_too_many_bins(ioc):
    _put(MCS + "Dwell", 0.02)
    epics.caput(MCS + "Dwell", 0.0, wait=True, timeout=10)
    epics.caput(MCS + "NuseAll", MAX_BINS + 1, wait=True, timeout=10)
    assert _get(MCS + "Dwell") == 0.02
    assert _get(MCS + "NuseAll") <= MAX_BINS


def test_list_pvs_shows_the_mcs_and_the_acceleration_option():
    out = subprocess.run([sys.executable, "-m", "sim.ioc", "--list-pvs", "--acceleration", "0.1"],
                         capture_output=True, text=True, check=True).stdout.split()
    names = ["EraseStart", "StopAll", "Acquiring", "Dwell", "ChannelAdvance", "NuseAll", "CurrentChannel"]
    names += [f"mca{i}{field}" for i in range(1, 5) for field in ("", ".NORD")]
    assert {"sim:mcs:" + name for name in names} <= set(out)
    assert "sim:m1" in out and "sim:m2" in out


def test_a_move_to_where_the_motor_is_takes_no_time_with_acceleration_set():
    from sim.ioc import Move, move_phases

    assert move_phases(0.0, 100.0, 0.02) == (0.0, 0.0, 100.0)  # no division by a zero ramp time
    move = Move(0.0, 5.0, 5.0, 100.0, 0.02)
    assert move.duration == 0.0 and float(move.at(1.0)) == 5.0
