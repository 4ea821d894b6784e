"""A fly scan over EPICS: an `EpicsMotor` flies a row while a multichannel scaler (MCS) records bins.

`MCSFlyer` is the flyer `smart_scan(..., flyer=...)` flies each line with, over Channel Access: the
fast axis (an EPICS motor record) and an MCS like the EPICS ``mca`` module's SIS3820 (``EraseStart``,
``StopAll``, ``Acquiring``, ``Dwell``, ``NuseAll``, ``CurrentChannel``, ``mca1``, ``mca2``, ...).
For one line it moves the motor to a run-up point at its normal speed, sets the fly speed (one
pixel per pixel time of the timing model), arms the MCS with internal channel advance (one bin per
pixel time), flies past the line's end, reads the bins and gives each pixel the bin whose mean
position (an encoder channel of the MCS) is nearest its centre. The motor's speed is always put
back, after the flight, an abort or a failure.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind, Signal
from ophyd import FormattedComponent as FCpt
from ophyd.status import Status

__all__ = ["MCS", "MCSFlyer", "read_flight"]

logger = logging.getLogger(__name__)


def read_flight(value: dict, name: str) -> tuple[float, np.ndarray]:
    """The row and the pixel centres of a flight a flyer is prepared with (``{"y": y, "x": [x0, ...]}``).

    Raises
    ------
    ValueError
        No finite y, no finite x, or pixels not equally spaced in one direction (``name`` says whose).
    """
    xs = np.asarray(value.get("x", ()), dtype=np.float64).reshape(-1)
    if len(xs) == 0 or not np.all(np.isfinite(xs)) or not np.isfinite(value.get("y", np.nan)):
        raise ValueError(f"{name}: a flight needs a finite y and at least one finite x, got {value!r}")
    steps = np.diff(xs)
    if len(steps) and (not np.allclose(steps, steps[0], rtol=1e-6, atol=1e-12) or steps[0] == 0):
        raise ValueError(f"{name}: the pixels of a flight must be equally spaced in one direction")
    return float(value["y"]), xs


class MCS(Device):
    """A multichannel scaler's records (the EPICS ``mca`` module's SIS3820 database), internal channel advance.

    Parameters
    ----------
    prefix : str
        The MCS prefix, e.g. ``"26idc:mcs:"``: PVs ``{prefix}EraseStart``, ``{prefix}mca2``, ...
    name : str
        Device name.
    """

    erase_start = Cpt(EpicsSignal, "EraseStart", kind=Kind.omitted)
    stop_all = Cpt(EpicsSignal, "StopAll", kind=Kind.omitted)
    acquiring = Cpt(EpicsSignalRO, "Acquiring", kind=Kind.omitted)
    dwell = Cpt(EpicsSignal, "Dwell", kind=Kind.config)
    channel_advance = Cpt(EpicsSignal, "ChannelAdvance", string=True, kind=Kind.config)
    bins = Cpt(EpicsSignal, "NuseAll", kind=Kind.config)
    current_bin = Cpt(EpicsSignalRO, "CurrentChannel", kind=Kind.omitted)

    mca1 = Cpt(EpicsSignalRO, "mca1", kind=Kind.omitted)
    mca2 = Cpt(EpicsSignalRO, "mca2", kind=Kind.omitted)
    mca3 = Cpt(EpicsSignalRO, "mca3", kind=Kind.omitted)
    mca4 = Cpt(EpicsSignalRO, "mca4", kind=Kind.omitted)
    mca1_nord = Cpt(EpicsSignalRO, "mca1.NORD", kind=Kind.omitted)
    mca2_nord = Cpt(EpicsSignalRO, "mca2.NORD", kind=Kind.omitted)
    mca3_nord = Cpt(EpicsSignalRO, "mca3.NORD", kind=Kind.omitted)
    mca4_nord = Cpt(EpicsSignalRO, "mca4.NORD", kind=Kind.omitted)

    def read_channel(self, n: int, timeout: float) -> np.ndarray:
        """The valid bins of channel ``n`` (1-4): ``mca{n}`` up to ``mca{n}.NORD``."""
        if n not in (1, 2, 3, 4):
            raise ValueError(f"{self.name}: channel must be 1-4, got {n}")
        # explicit reads, not the last monitor update, which may not have arrived yet
        count = int(getattr(self, f"mca{n}_nord").get(timeout=timeout, use_monitor=False))
        wave = getattr(self, f"mca{n}").get(timeout=timeout, use_monitor=False)
        return np.asarray(wave, dtype=np.float64).reshape(-1)[:count]


class MCSFlyer(Device):
    """Flies the fast axis along one row per flight and records one MCS bin per pixel.

    ``prepare({"y": y, "x": [x0, x1, ...], "tags": {...}})`` sets the next flight (the pixel centres
    in flying order, equally spaced in one direction; the stage is at ``(y, x0)``, where the plan
    moved it); ``kickoff`` starts it, ``complete`` waits for it, ``collect_pages`` gives one event
    page of its pixels. Its reading (``{name}``, hinted) is the last pixel's value: pass the flyer
    as the scan's detector, ``smart_scan([flyer], stage.y, ..., stage.x, ..., flyer=flyer)``.

    Parameters
    ----------
    mcs_prefix : str
        PV prefix of the MCS records (``"26idc:mcs:"``).
    x_motor, y_motor : EpicsMotor
        The fast axis it flies and the slow axis (read for the record).
    timing : steering.timing.StageTiming
        The scan's timing model, in the motors' units: the pixel time sets the MCS dwell and the fly
        speed; the scan plans its segments with it.
    signal_channel, x_channel : int
        MCS channels of the signal and of the fast axis's position (an encoder, mean per bin).
    timeout : float
        Seconds a Channel Access operation, and the slack of a flight beyond its expected time.
    max_bins : int
        Bins the MCS holds (its database's ``NCHAN``; an SIS3820's is usually 2048 to 16384).
    retry_for : float
        Seconds to keep trying, in the background, to put the motor's speed back where a flight could
        not (its IOC gone): an IOC that comes back, with the fly speed autosaved, gets its speed back.
    name : str
        Device name.

    Attributes
    ----------
    flights_ : int
        Flights completed.
    flying_ : bool
        Whether the MCS is counting a line now.
    velocity_restored_ : bool or None
        Whether the last flight put the motor's speed back (False: not yet, e.g. its IOC is gone; it
        turns True when a retry succeeds).
    """

    value = Cpt(Signal, value=float("nan"), kind=Kind.hinted)
    mcs = FCpt(MCS, "{_mcs_prefix}", kind=Kind.omitted)

    def __init__(self, mcs_prefix: str, *, x_motor, y_motor, timing, signal_channel: int = 2, x_channel: int = 3,
                 timeout: float = 10.0, retry_for: float = 3600.0, max_bins: int = 16384, name: str, **kwargs):
        if signal_channel not in (1, 2, 3, 4) or x_channel not in (1, 2, 3, 4) or signal_channel == x_channel:
            raise ValueError(f"signal_channel and x_channel must be two of the MCS channels 1-4, got "
                             f"{signal_channel} and {x_channel}")
        self._mcs_prefix = mcs_prefix
        super().__init__("", name=name, **kwargs)
        self.value.name = self.name
        self.x_motor, self.y_motor, self.timing = x_motor, y_motor, timing
        self.signal_channel, self.x_channel = int(signal_channel), int(x_channel)
        self.timeout = float(timeout)
        self.retry_for = float(retry_for)
        self.max_bins = int(max_bins)
        self.flights_ = 0
        self.velocity_restored_ = None  # after each flight: whether the motor's speed was put back
        self.flying_ = False  # whether the MCS is counting a line now
        self._next: dict | None = None
        self._page: dict | None = None
        self._done: Status | None = None
        self._thread: threading.Thread | None = None
        self._abort = threading.Event()

    def prepare(self, value: dict) -> Status:
        """Set the next flight (see the class docstring)."""
        y, xs = read_flight(value, self.name)
        self._next = {"y": y, "x": xs, "tags": dict(value.get("tags", {}))}
        status = Status()
        status.set_finished()
        return status

    def kickoff(self) -> Status:
        """Start the prepared flight in the background; done once it has started."""
        flight, self._next = self._next, None
        if flight is None:
            raise RuntimeError(f"{self.name}: kickoff without a prepared flight")
        if self._thread is not None:  # a flight cut short (a pause) puts the speed back before the next flies
            self._thread.join(timeout=3 * self.timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"{self.name}: the previous flight has not ended after {3 * self.timeout:g} s")
        started, self._done = Status(), Status()
        self._abort.clear()
        self._thread = threading.Thread(target=self._fly, args=(flight, started, self._done), daemon=True,
                                        name=f"{self.name}-flight")
        self._thread.start()
        return started

    def complete(self) -> Status:
        """Done when the flight is over and its bins are read."""
        if self._done is None:
            raise RuntimeError(f"{self.name}: complete without a kickoff")
        return self._done

    def stop(self, *, success: bool = False) -> None:
        """Stop a flight: the motor and the MCS stop, and the flight thread puts the speed back."""
        self._abort.set()
        try:
            self.x_motor.stop(success=success)
            self.mcs.stop_all.put(1)
        except Exception as exc:  # a dead IOC: the flight fails on its own timeout
            logger.warning("%s: stopping the flight failed: %s", self.name, exc)

    def _fly(self, flight: dict, started: Status, done: Status) -> None:
        motor, mcs, t = self.x_motor, self.mcs, self.timeout
        xs, n = flight["x"], len(flight["x"])
        step = float(xs[1] - xs[0]) if n > 1 else 0.0
        pixel_time = self.timing.pixel_time_over(step) if n > 1 else self.timing.dwell
        speed = abs(step) / pixel_time
        normal, self.velocity_restored_ = None, None
        try:
            normal = float(motor.velocity.get(timeout=t, use_monitor=False))
            accel_time = float(motor.acceleration.get(timeout=t, use_monitor=False)) if n > 1 else 0.0
            direction = math.copysign(1.0, step) if n > 1 else 0.0
            # at speed a little before the first pixel's edge, and until a little after the last's; within the
            # motor's limits (a line at the edge of travel then starts, or ends, on the ramp)
            run_up = speed * accel_time / 2 + 0.1 * abs(step)
            begin = self._within_limits(xs[0] - direction * (abs(step) / 2 + run_up))
            end = self._within_limits(xs[-1] + direction * (abs(step) / 2 + run_up))
            if n > 1:
                self._move(begin, timeout=t + abs(begin - xs[0]) / max(normal, 1e-9))
            flight_time = (abs(end - begin) / speed + accel_time) if n > 1 else pixel_time
            mcs.dwell.put(pixel_time, wait=True, timeout=t)
            # a lone pixel is one bin at rest; a line's bins run from the run-up until the motor has arrived and
            # one more bin has ended (`_stop_after`): bins for the flight and two seconds more, however late the
            # motor starts after the MCS on a loaded machine
            bins = min(int(math.ceil((flight_time + 2.0) / pixel_time)), self.max_bins) if n > 1 else 1
            mcs.bins.put(bins, wait=True, timeout=t)
            if n > 1:
                motor.velocity.put(speed, wait=True, timeout=t)
            mcs.erase_start.put(1, wait=True, timeout=t)
            started.set_finished()
            self.flying_ = True
            if n > 1:
                self._move(end, timeout=t + flight_time * 2)
                self._stop_after(pixel_time)
            self._wait_acquired(flight_time)
            self.flying_ = False
            if self._abort.is_set():
                raise RuntimeError(f"{self.name}: the flight was stopped")
            values = self._pixel_values(xs, step)
        except Exception as exc:
            self.flying_ = False
            kept = "" if self._restore(normal) else f"; the motor's speed could not be put back to {normal}"
            self._fail(started, done, RuntimeError(
                f"{self.name}: the flight along y={flight['y']:g} from x={xs[0]:g} to x={xs[-1]:g} failed: "
                f"{type(exc).__name__}: {exc}{kept}"))
            return
        if not self._restore(normal):
            self._fail(started, done, RuntimeError(f"{self.name}: the motor's speed could not be put back to "
                                                   f"{normal} after the flight"))
            return
        self._record(flight, values)
        self.flights_ += 1
        done.set_finished()

    def _within_limits(self, x: float) -> float:
        low, high = self.x_motor.limits
        return float(np.clip(x, low, high)) if high > low else x

    def _move(self, target: float, *, timeout: float) -> None:
        """Move the fast axis to ``target`` and wait.

        A move status can fail at once when the done-moving update of a move stopped just before (a
        pause) reaches ophyd after the new move has begun; the record's own ``.DMOV`` and readback then
        say whether the motor did arrive.
        """
        motor = self.x_motor
        try:
            motor.set(target).wait(timeout=timeout)
            return
        except Exception as exc:
            if self._abort.is_set() or not motor.connected:
                raise
            failure = exc
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if int(motor.motor_done_move.get(timeout=self.timeout, use_monitor=False)):
                here = float(motor.user_readback.get(timeout=self.timeout, use_monitor=False))
                if abs(here - target) <= max(1e-6, 1e-3 * abs(self.timing.pixel_size)):
                    return
                raise failure
            time.sleep(0.005)
        raise failure

    def _stop_after(self, pixel_time: float) -> None:
        """The motor has arrived: let the bin under way end (it may hold the last pixel), then stop the MCS."""
        time.sleep(pixel_time)
        self.mcs.stop_all.put(1, wait=True, timeout=self.timeout)

    def _wait_acquired(self, flight_time: float) -> None:
        """Wait until the MCS has stopped with its arrays complete; stop it if it has not in time."""
        mcs, limit = self.mcs, self.timeout + flight_time * 2
        deadline = time.monotonic() + limit
        # explicit reads: a monitor update of Acquiring may lag behind the put that started the MCS
        while int(mcs.acquiring.get(timeout=self.timeout, use_monitor=False)):
            if time.monotonic() > deadline:
                mcs.stop_all.put(1, wait=True, timeout=self.timeout)
                raise TimeoutError(f"{self.name}: the MCS still acquired {limit:.1f} s after the flight began")
            time.sleep(0.005)

    def _pixel_values(self, xs: np.ndarray, step: float) -> np.ndarray:
        """Each pixel's value: the bin whose mean position is nearest its centre (NaN: none within half a pixel)."""
        signal = self.mcs.read_channel(self.signal_channel, self.timeout)
        where = self.mcs.read_channel(self.x_channel, self.timeout)
        count = min(len(signal), len(where))
        signal, where = signal[:count], where[:count]
        values = np.full(len(xs), np.nan)
        if not count:
            return values
        if len(xs) == 1:
            values[0] = signal[0]
            return values
        nearest = np.abs(where[None, :] - xs[:, None]).argmin(axis=1)
        close = np.abs(where[nearest] - xs) <= abs(step) / 2 + 1e-9
        values[close] = signal[nearest[close]]
        return values

    def _restore(self, normal: float | None) -> bool:
        """Put the motor's speed back; False (logged) where that failed."""
        if normal is None:
            self.velocity_restored_ = False
            return False
        try:
            self.x_motor.velocity.put(normal, wait=True, timeout=self.timeout)
        except Exception as exc:
            logger.error("%s: could not put %s's speed back to %s (%s); it will be put back when the motor's IOC "
                         "answers again, for up to %g s", self.name, self.x_motor.name, normal, exc, self.retry_for)
            self.velocity_restored_ = False
            threading.Thread(target=self._restore_later, args=(normal,), daemon=True,
                             name=f"{self.name}-restore").start()
            return False
        self.velocity_restored_ = True
        return True

    def _restore_later(self, normal: float) -> None:
        """Keep trying to put the speed back (an IOC that comes back may have autosaved the fly speed)."""
        deadline = time.monotonic() + self.retry_for
        while time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                self.x_motor.velocity.put(normal, wait=True, timeout=self.timeout)
            except Exception:
                continue
            logger.warning("%s: %s's speed put back to %s now that its IOC answers again", self.name,
                           self.x_motor.name, normal)
            self.velocity_restored_ = True
            return

    def _fail(self, started: Status, done: Status, exc: Exception) -> None:
        for status in (started, done):
            if not status.done:
                status.set_exception(exc)

    def _record(self, flight: dict, values: np.ndarray) -> None:
        n, now = len(values), time.time()
        y_name, x_name = self.y_motor.name, self.x_motor.name
        data = {self.name: values.tolist(), y_name: [flight["y"]] * n, x_name: flight["x"].tolist(),
                **{tag: [value] * n for tag, value in flight["tags"].items()}}
        self._page = {"data": data, "timestamps": {key: [now] * n for key in data}, "time": [now] * n}
        self.value.put(float(values[-1]))

    def describe_collect(self) -> dict:
        """One stream, ``primary``: the signal, both axes and the tags the plan passes."""
        keys = {self.name: {"source": f"PV:{self.mcs.prefix}mca{self.signal_channel}", "dtype": "number",
                            "shape": []},
                self.y_motor.name: {"source": f"PV:{self.y_motor.prefix}", "dtype": "number", "shape": []},
                self.x_motor.name: {"source": f"PV:{self.x_motor.prefix}", "dtype": "number", "shape": []},
                "sampler_batch": {"source": "smart_scan", "dtype": "integer", "shape": []},
                "sampler_probe": {"source": "smart_scan", "dtype": "boolean", "shape": []}}
        return {"primary": keys}

    def collect_pages(self):
        """The pixels of the last flight as one event page, and forget them."""
        page, self._page = self._page, None
        if page is not None:
            yield page
