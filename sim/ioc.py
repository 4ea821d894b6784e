"""A caproto IOC that serves a simulated nanoprobe over Channel Access, on loopback only.

``python -m sim.ioc --image FILE --prefix PREFIX`` serves the PVs the `devices` classes of a real
instrument expect, so the exact beamline code path (ophyd over pyepics over Channel Access) can be
dry-run and tested without a beamline:

``{prefix}{y_motor}``, ``{prefix}{x_motor}`` (default ``m2``, ``m1``)
    Two motor records (``.VAL``, ``.RBV``, ``.DMOV``, ``.MOVN``, ``.VELO``, ``.HLM``/``.LLM``,
    ``.DLY``, ``.STOP``, ``.ACCL``, ...). A move speeds up to ``.VELO`` in ``.ACCL`` seconds (0, the
    default of ``--acceleration``: at once), cruises and slows down as fast, with the readback
    updated as it goes, then settles for ``.DLY`` seconds before ``.DMOV`` returns to 1.
``{prefix}scaler1.CNT``, ``.TP``, ``.CONT``, ``.S1``, ``.S2``
    A scaler record: writing 1 to ``.CNT`` counts for ``.TP`` seconds at the current stage position,
    then ``.S1`` holds the clock ticks, ``.S2`` the sample signal and ``.CNT`` returns to 0 (the put
    completes then, as on a real scaler).
``{prefix}scaler1.S3``, ``.S4``, ``.S5``, ``.NM3``, ``.NM4``, ``.NM5`` (with ``--elements``)
    The sample is then the built-in multi-element sample (`sim.sample.element_maps`: iron, zinc,
    copper), served as a beamline serves an energy-dispersive fluorescence detector whose
    per-element regions of interest feed scaler channels: ``.S3``, ``.S4``, ``.S5`` count the
    ``fe``, ``zn`` and ``cu`` maps over ``.TP`` at the stage position (each with its own Poisson
    draw under ``--flux``, photons/s at that map's brightest value), ``.NM3`` to ``.NM5`` name them,
    and ``.S2`` is their sum. The camera and the MCS read the summed map.
``{prefix}cam1:...``, ``{prefix}ROIStat1:1:...``
    An areaDetector-style camera (``Acquire``, ``AcquireTime``, ``ImageMode``, ``NumImages``,
    ``WaitForPlugins``, ``ArrayCounter_RBV``) and one ROI-statistics region (``MinX``, ``MinY``,
    ``SizeX``, ``SizeY``, ``Total_RBV``) over a simulated beam spot whose sum is the sample signal.
``{prefix}mcs:...``
    A multichannel scaler (`SimulatedMCS`: ``EraseStart``, ``StopAll``, ``Acquiring``, ``Dwell``,
    ``ChannelAdvance``, ``NuseAll``, ``CurrentChannel``, ``mca1`` to ``mca4``, ``mca1.NORD`` to ``mca4.NORD``):
    bins of ``Dwell`` seconds in real time holding the clock, the sample integrated along the stage's
    actual (analytic) motion, and the mean x and y positions.

Readings: the sample image (bilinear between pixels) at the motors' readbacks, a Poisson photon
count when ``--flux`` is given. ``--served-log`` appends one CSV line per reading served
(``detector,y,x,value``) so a test can compare what reached the catalog with what was served; with
``--elements`` a scaler count also logs each element's channel (detector ``{prefix}scaler1.S3`` ...).

The server binds to 127.0.0.1 and sends beacons to 127.0.0.1 only (it sets
``EPICS_CAS_INTF_ADDR_LIST=127.0.0.1``, ``EPICS_CAS_AUTO_BEACON_ADDR_LIST=NO``,
``EPICS_CAS_BEACON_ADDR_LIST=127.0.0.1``). Clients find it with ``EPICS_CA_AUTO_ADDR_LIST=NO`` and
``EPICS_CA_ADDR_LIST=127.0.0.1``; ``EPICS_CA_SERVER_PORT`` moves both off the default port 5064.
This module never imports ophyd or a Channel Access client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
from caproto import ChannelType
from caproto.asyncio.server import Context as AsyncioContext
from caproto.server import PVGroup, pvproperty
from caproto.server import common as caproto_server_common

from sim.sample import SampleImage, element_maps, spot_pattern

__all__ = ["SimulatedMotorRecord", "SimulatedScaler", "SimulatedROICamera", "SimulatedMCS", "Beam", "MAX_BINS",
           "build_ioc", "main", "move_phases", "trapezoid_distance", "Move"]

LOOPBACK = "127.0.0.1"
SERVER_LOOPBACK_ENV = {
    "EPICS_CAS_INTF_ADDR_LIST": LOOPBACK,
    "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
    "EPICS_CAS_BEACON_ADDR_LIST": LOOPBACK,
}
READY_LINE = "sim.ioc ready"


def exit_when_stdin_closes() -> None:
    """End this process (exit code 0) as soon as its standard input reaches end of file.

    A parent that starts us with a pipe on stdin thereby owns us: when it exits, even killed, the
    pipe closes and we follow, so no server is left behind holding a port.
    """

    def watch():
        try:
            while os.read(0, 4096):  # the raw descriptor: no buffer lock to trip interpreter shutdown
                pass
        finally:
            sys.stdout.flush()
            os._exit(0)

    threading.Thread(target=watch, daemon=True, name="stdin watch").start()


def _is_on(value) -> bool:
    """An enum PV written as a number or as its string."""
    if isinstance(value, str):
        return value not in ("Done", "0", "")
    return bool(value)


def trapezoid_distance(elapsed, distance: float, velocity: float, accel_time: float) -> np.ndarray:
    """Distance covered ``elapsed`` seconds into a move from rest to rest (motor record semantics).

    The speed ramps up linearly to ``velocity`` in ``accel_time`` seconds (``.ACCL``), cruises, and
    ramps down as fast; a move too short to reach ``velocity`` is triangular (it peaks at
    ``sqrt(distance * velocity / accel_time)``). ``accel_time == 0`` moves at ``velocity`` throughout;
    ``velocity <= 0`` covers the whole distance at once.

    Parameters
    ----------
    elapsed : float or array
        Seconds since the move started (negative: before it).
    distance : float
        Length of the move (>= 0).
    velocity : float
        Cruise speed ``.VELO``.
    accel_time : float
        Seconds to reach ``velocity`` from rest ``.ACCL``.

    Returns
    -------
    ndarray
        The distance covered, between 0 and ``distance``.
    """
    tau = np.asarray(elapsed, dtype=np.float64)
    distance = max(float(distance), 0.0)
    if velocity <= 0 or distance == 0:
        return np.where(tau < 0, 0.0, distance)
    t_acc, t_cruise, peak = move_phases(distance, velocity, accel_time)
    total = 2 * t_acc + t_cruise
    if t_acc == 0:
        return np.where(tau >= total, distance, np.clip(tau, 0.0, total) * peak)
    accel = peak / t_acc
    ramp = 0.5 * peak * t_acc
    return np.select(
        [tau <= 0, tau < t_acc, tau < t_acc + t_cruise, tau < total],
        [0.0, 0.5 * accel * tau**2, ramp + peak * (tau - t_acc), distance - 0.5 * accel * (total - tau) ** 2],
        distance)


def move_phases(distance: float, velocity: float, accel_time: float) -> tuple[float, float, float]:
    """Phases of a move from rest to rest: ``(ramp seconds, cruise seconds, peak speed)``.

    Parameters
    ----------
    distance, velocity, accel_time : float
        See `trapezoid_distance`; ``velocity`` must be > 0.

    Returns
    -------
    tuple of float
        The ramp time (each of acceleration and deceleration), the time at peak speed and the peak
        speed: ``(accel_time, (distance - velocity * accel_time) / velocity, velocity)`` for a
        trapezoid, ``(t, 0, distance / t)`` with ``t = sqrt(distance * accel_time / velocity)`` for a
        triangle, ``(0, distance / velocity, velocity)`` when ``accel_time <= 0``.
    """
    distance, velocity, accel_time = max(float(distance), 0.0), float(velocity), max(float(accel_time), 0.0)
    if accel_time == 0 or distance == 0:  # a move to where the motor is takes no time
        return 0.0, distance / velocity, velocity
    if distance >= velocity * accel_time:  # two ramps of velocity * accel_time / 2 each fit
        return accel_time, (distance - velocity * accel_time) / velocity, velocity
    t = float(np.sqrt(distance * accel_time / velocity))
    return t, 0.0, distance / t


class Move:
    """One commanded move from rest to rest: the analytic trajectory of a motor from ``t0``.

    Parameters
    ----------
    t0 : float
        Event-loop time (``loop.time()``) at which the move was commanded.
    start, target : float
        Where it starts and where it goes.
    velocity, accel_time : float
        ``.VELO`` and ``.ACCL`` when it started (see `trapezoid_distance`).

    Attributes
    ----------
    duration : float
        Seconds from ``t0`` to the target.
    stopped : (time, position) or None
        Where a ``.STOP`` (or a new move) ended it.
    """

    def __init__(self, t0: float, start: float, target: float, velocity: float, accel_time: float):
        self.t0, self.start, self.target = float(t0), float(start), float(target)
        self.velocity, self.accel_time = float(velocity), max(float(accel_time), 0.0)
        if self.velocity > 0:
            t_acc, t_cruise, _ = move_phases(abs(self.target - self.start), self.velocity, self.accel_time)
            self.duration = 2 * t_acc + t_cruise
        else:
            self.duration = 0.0
        self.stopped: tuple[float, float] | None = None  # (time, position) of a .STOP

    @property
    def end_time(self) -> float:
        """Loop time at which the motion ends (reaches the target or was stopped)."""
        return self.stopped[0] if self.stopped is not None else self.t0 + self.duration

    def at(self, t) -> np.ndarray:
        """Position at loop time(s) ``t``."""
        t = np.asarray(t, dtype=np.float64)
        sign = 1.0 if self.target >= self.start else -1.0
        elapsed = t - self.t0
        pos = self.start + sign * trapezoid_distance(elapsed, abs(self.target - self.start), self.velocity,
                                                     self.accel_time)
        pos = np.where(elapsed >= self.duration, self.target, pos)  # exactly on target, not within rounding
        if self.stopped is not None:
            pos = np.where(t >= self.stopped[0], self.stopped[1], pos)
        return pos


class SimulatedMotorRecord(PVGroup):
    """One EPICS motor record at PV ``prefix`` (fields ``prefix.RBV`` etc.).

    A move starts from rest, speeds up to ``.VELO`` in ``.ACCL`` seconds, cruises and slows down as
    fast (a triangle when too short to reach ``.VELO``); ``.ACCL = 0`` moves at ``.VELO`` throughout.
    The readback follows this trajectory at each tick; `position_at` gives it exactly at any time.
    A new move while one runs starts from where the motor is then (from rest, a simplification);
    ``.STOP`` ends the move at once where it is.

    Parameters
    ----------
    prefix : str
        The record name.
    velocity : float
        Initial ``.VELO`` (EGU/s); 0 moves instantly.
    acceleration : float
        Initial ``.ACCL``: seconds to reach ``.VELO`` from rest; 0 moves at ``.VELO`` at once.
    limits : (low, high)
        Soft limits ``.LLM``/``.HLM``, also the control limits of ``.VAL``.
    settle_time : float
        Initial ``.DLY``: seconds the readback settles after each move.
    egu : str
        Engineering units.
    tick : float
        Seconds between readback updates while moving.
    min_move_time : float
        Shortest time ``.DMOV`` stays 0, so every client sees each move start and end.
    history : int
        How many past moves `position_at` remembers (for times before the current move).
    """

    motor = pvproperty(value=0.0, name="", record="motor", precision=4)

    def __init__(self, prefix: str, *, velocity: float = 100.0, acceleration: float = 0.0, limits=(-1e4, 1e4),
                 settle_time: float = 0.0, egu: str = "um", tick: float = 0.01, min_move_time: float = 0.001,
                 history: int = 512, **kwargs):
        super().__init__(prefix, **kwargs)
        self.velocity = float(velocity)
        self.acceleration = float(acceleration)
        self.limits = (float(limits[0]), float(limits[1]))
        self.settle_time = float(settle_time)
        self.egu = egu
        self.tick = float(tick)
        self.min_move_time = float(min_move_time)
        self.moves_ = 0
        self._task: asyncio.Task | None = None
        self._moves: deque[Move] = deque(maxlen=max(int(history), 1))

    @property
    def fields(self):
        """The record's fields (caproto's MotorFields)."""
        return self.motor.field_inst

    @property
    def position(self) -> float:
        """The readback ``.RBV``."""
        return float(self.fields.user_readback_value.value)

    @property
    def current_move(self) -> Move | None:
        """The current or last move (None before the first)."""
        return self._moves[-1] if self._moves else None

    def position_at(self, t: float) -> float:
        """The motor's position at event-loop time ``t`` (``loop.time()``), from its moves' trajectories.

        Before the first move remembered: that move's start (the readback if there was none); during a
        move: the trapezoid (or triangle) of its ``.VELO`` and ``.ACCL``; after it: where it ended.
        """
        return float(self.positions_at(t))

    def positions_at(self, t) -> np.ndarray:
        """`position_at` of many times at once (an array of the shape of ``t``)."""
        t = np.asarray(t, dtype=np.float64)
        if not self._moves:
            return np.full(t.shape, self.position)
        moves = list(self._moves)
        which = np.searchsorted([m.t0 for m in moves], t, side="right") - 1
        out = np.full(t.shape, moves[0].start)
        for i in np.unique(which[which >= 0]):
            mask = which == i
            out[mask] = moves[i].at(t[mask])
        return out

    async def initialise(self) -> None:
        """Write the starting field values; call once the server runs."""
        f = self.fields
        low, high = self.limits
        await self.motor.write_metadata(lower_ctrl_limit=low, upper_ctrl_limit=high, units=self.egu)
        await f.velocity.write(self.velocity)
        await f.seconds_to_velocity.write(self.acceleration)
        await f.user_low_limit.write(low)
        await f.user_high_limit.write(high)
        await f.readback_settle_time.write(self.settle_time)
        await f.engineering_units.write(self.egu)
        await f.motor_step_size.write(1e-6)
        await f.limit_violation.write(0)
        await f.done_moving_to_value.write(1)
        await f.motor_is_moving.write(0)

        async def on_stop(instance, value):
            if value:
                self.stop()
            return 0

        f.stop.putter = on_stop

    def stop(self) -> None:
        """End the current move where the motor is now (what a put to ``.STOP`` does)."""
        if self._moves and self._task is not None and not self._task.done():
            move = self._moves[-1]
            now = asyncio.get_running_loop().time()
            if move.stopped is None and now < move.end_time:
                move.stopped = (now, float(move.at(now)))

    @motor.putter
    async def motor(self, instance, value):
        low, high = float(self.fields.user_low_limit.value), float(self.fields.user_high_limit.value)
        if high > low and not low <= value <= high:
            await self.fields.limit_violation.write(1)
            self._start(None)  # as the record does: no motion, but a full DMOV cycle
            return self.position
        await self.fields.limit_violation.write(0)
        self._start(float(value))
        return value

    def _start(self, target: float | None) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        now = asyncio.get_running_loop().time()
        start = self.position_at(now)
        f = self.fields
        move = Move(now, start, start if target is None else target, float(f.velocity.value),
                     float(f.seconds_to_velocity.value))
        if self._moves and self._moves[-1].end_time > now:
            self._moves[-1].stopped = (now, start)  # the move it replaces ends here
        self._moves.append(move)
        self._task = asyncio.get_running_loop().create_task(self._move(move))

    async def _write_position(self, value: float) -> None:
        f = self.fields
        await f.user_readback_value.write(value)
        await f.dial_readback_value.write(value)
        await f.raw_readback_value.write(int(round(value / 1e-6)))

    async def _move(self, move: Move) -> None:
        f = self.fields
        loop = asyncio.get_running_loop()
        await f.done_moving_to_value.write(0)
        await f.motor_is_moving.write(1)
        await f.direction_of_travel.write(1 if move.target >= move.start else 0)
        while True:
            now = loop.time()
            if now >= move.end_time:
                break
            await asyncio.sleep(min(self.tick, move.end_time - now))
            await self._write_position(float(move.at(loop.time())))
        position = move.target if move.stopped is None else move.stopped[1]
        if move.stopped is not None:
            await self.motor.write(position, verify_value=False)
        await self._write_position(position)
        await f.motor_is_moving.write(0)
        settle = float(f.readback_settle_time.value)
        remaining = max(settle, self.min_move_time - (loop.time() - move.t0))
        if remaining > 0:
            await asyncio.sleep(remaining)
        self.moves_ += 1
        await f.done_moving_to_value.write(1)


class Beam:
    """What a detector sees: the sample at the two motor records' readbacks.

    Parameters
    ----------
    sample : SampleImage
        The sample on stage coordinates.
    y_motor, x_motor : SimulatedMotorRecord
        The stage axes.
    flux : float
        Photons per second at the brightest sample value; 0 gives the noiseless value.
    seed : int or None
        Seed of the counting noise.
    served_log : path or None
        Append ``detector,y,x,value`` per reading served.
    elements : dict of str to SampleImage, optional
        A multi-element sample: each element's map on the stage coordinates of ``sample`` (which
        should be their sum); `count_elements` counts them.
    """

    def __init__(self, sample: SampleImage, y_motor: SimulatedMotorRecord, x_motor: SimulatedMotorRecord, *,
                 flux: float = 0.0, seed: int | None = None, served_log: str | Path | None = None,
                 elements: dict[str, SampleImage] | None = None):
        self.sample = sample
        self.elements = dict(elements or {})
        self.y_motor, self.x_motor = y_motor, x_motor
        self.flux = float(flux)
        self.rng = np.random.default_rng(seed)
        self._log = None
        if served_log is not None:
            self._log = open(served_log, "a", buffering=1)  # noqa: SIM115 - open for the IOC's life
            if self._log.tell() == 0:
                self._log.write("detector,y,x,value\n")
        self.served_ = 0

    def count(self, dwell: float) -> tuple[float, float, float]:
        """One reading for ``dwell`` seconds: ``(value, y, x)``."""
        y, x = self.y_motor.position, self.x_motor.position
        return self.sample.count(y, x, dwell=dwell, flux=self.flux, rng=self.rng), y, x

    def count_elements(self, dwell: float) -> tuple[dict[str, float], float, float]:
        """One reading of every element for ``dwell`` seconds: ``({element: value}, y, x)``.

        Each element is counted on its own map, in order, with its own Poisson draw when there is a
        flux (photons per second at that map's brightest value).
        """
        y, x = self.y_motor.position, self.x_motor.position
        values = {element: image.count(y, x, dwell=dwell, flux=self.flux, rng=self.rng)
                  for element, image in self.elements.items()}
        return values, y, x

    def log(self, detector: str, y: float, x: float, value: float) -> None:
        """Record a reading served (full float precision)."""
        self.served_ += 1
        if self._log is not None:
            self._log.write(f"{detector},{y!r},{x!r},{value!r}\n")


class SimulatedScaler(PVGroup):
    """A scaler record at PV ``prefix``: ``.CNT``, ``.TP``, ``.CONT``, ``.FREQ``, ``.T``, ``.S1``, ``.S2``.

    ``.S1`` counts the clock (``.FREQ`` x ``.TP``), ``.S2`` the sample signal. The subclass
    `with_channels` makes has one more channel per element of a multi-element `Beam` (``.S3``,
    ``.S4``, ... named by ``.NM3``, ``.NM4``, ...), and ``.S2`` is then their sum.
    """

    channels: tuple[str, ...] = ()
    """Element names of the channels after ``.S2``, in order (none here; see `with_channels`)."""

    count = pvproperty(name=".CNT", dtype=ChannelType.ENUM, enum_strings=("Done", "Count"), value="Done")
    preset_time = pvproperty(name=".TP", value=1.0, precision=4)
    count_mode = pvproperty(name=".CONT", dtype=ChannelType.ENUM, enum_strings=("OneShot", "AutoCount"),
                            value="OneShot")
    frequency = pvproperty(name=".FREQ", value=1e7, read_only=True)
    elapsed = pvproperty(name=".T", value=0.0, read_only=True, precision=4)
    clock = pvproperty(name=".S1", value=0.0, read_only=True)
    signal = pvproperty(name=".S2", value=0.0, read_only=True)
    signal_name = pvproperty(name=".NM2", value="sample", dtype=ChannelType.STRING, read_only=True)

    def __init__(self, prefix: str, *, beam: Beam, **kwargs):
        super().__init__(prefix, **kwargs)
        self.beam = beam
        missing = [element for element in self.channels if element not in beam.elements]
        if missing:
            raise ValueError(f"scaler channels {missing} have no element map in the beam "
                             f"(it has {sorted(beam.elements)})")

    @classmethod
    def with_channels(cls, elements) -> type[SimulatedScaler]:
        """The scaler class with one more channel per element, from ``.S3`` on.

        Parameters
        ----------
        elements : sequence of str
            Element names (at most 62: a scaler record has 64 channels), in channel order: element
            ``k`` (from 0) is counted in ``.S{k + 3}``, named by the string ``.NM{k + 3}``.

        Returns
        -------
        type
            A subclass of ``cls`` with those channels; its ``channels`` is ``tuple(elements)``.
        """
        elements = tuple(str(element) for element in elements)
        if not 1 <= len(elements) <= 62 or len(set(elements)) != len(elements):
            raise ValueError(f"scaler channels need 1 to 62 distinct element names, got {elements}")
        namespace = {"channels": elements, "__module__": cls.__module__,
                     "__doc__": f"A scaler record with the element channels {', '.join(elements)} after .S2."}
        for k, element in enumerate(elements, start=3):
            namespace[f"channel_{k}"] = pvproperty(name=f".S{k}", value=0.0, read_only=True)
            namespace[f"channel_name_{k}"] = pvproperty(name=f".NM{k}", value=element, dtype=ChannelType.STRING,
                                                        read_only=True)
        return type(f"{cls.__name__}_{'_'.join(elements)}", (cls,), namespace)

    @count.putter
    async def count(self, instance, value):
        if not _is_on(value):
            return "Done"
        await instance.write("Count", verify_value=False)
        dwell = max(float(self.preset_time.value), 0.0)
        if dwell > 0:
            await asyncio.sleep(dwell)
        if self.channels:
            counts, y, x = self.beam.count_elements(dwell)
            counts = {element: counts[element] for element in self.channels}
            value = float(sum(counts.values()))
        else:
            counts = {}
            value, y, x = self.beam.count(dwell)
        await self.elapsed.write(dwell)
        await self.clock.write(dwell * float(self.frequency.value))
        for k, count in enumerate(counts.values(), start=3):
            await getattr(self, f"channel_{k}").write(count)
        await self.signal.write(value)
        self.beam.log(self.prefix, y, x, value)
        for k, count in enumerate(counts.values(), start=3):
            self.beam.log(f"{self.prefix}.S{k}", y, x, count)
        return "Done"


class SimulatedROICamera(PVGroup):
    """An areaDetector-style camera ``{prefix}cam1:`` with ROI statistics ``{prefix}ROIStat1:1:``.

    Each frame is the beam spot (``frame_shape`` pixels, summing to the sample signal); ``Total_RBV``
    is the sum over the ROI. ``Acquire`` put-completes once the frame and its statistics are done.
    Every setpoint PV ``X`` has its readback ``X_RBV``.
    """

    acquire = pvproperty(name="cam1:Acquire", dtype=ChannelType.ENUM, enum_strings=("Done", "Acquire"),
                         value="Done")
    acquire_rbv = pvproperty(name="cam1:Acquire_RBV", dtype=ChannelType.ENUM, enum_strings=("Done", "Acquire"),
                             value="Done", read_only=True)
    acquire_time = pvproperty(name="cam1:AcquireTime", value=0.1, precision=4)
    acquire_time_rbv = pvproperty(name="cam1:AcquireTime_RBV", value=0.1, precision=4, read_only=True)
    image_mode = pvproperty(name="cam1:ImageMode", dtype=ChannelType.ENUM,
                            enum_strings=("Single", "Multiple", "Continuous"), value="Single")
    image_mode_rbv = pvproperty(name="cam1:ImageMode_RBV", dtype=ChannelType.ENUM,
                                enum_strings=("Single", "Multiple", "Continuous"), value="Single", read_only=True)
    num_images = pvproperty(name="cam1:NumImages", value=1)
    num_images_rbv = pvproperty(name="cam1:NumImages_RBV", value=1, read_only=True)
    wait_for_plugins = pvproperty(name="cam1:WaitForPlugins", dtype=ChannelType.ENUM, enum_strings=("No", "Yes"),
                                  value="Yes")
    array_counter = pvproperty(name="cam1:ArrayCounter", value=0)
    array_counter_rbv = pvproperty(name="cam1:ArrayCounter_RBV", value=0, read_only=True)
    detector_state = pvproperty(name="cam1:DetectorState_RBV", dtype=ChannelType.ENUM,
                                enum_strings=("Idle", "Acquire", "Readout"), value="Idle", read_only=True)
    size_x = pvproperty(name="cam1:ArraySizeX_RBV", value=0, read_only=True)
    size_y = pvproperty(name="cam1:ArraySizeY_RBV", value=0, read_only=True)
    roi_min_x = pvproperty(name="ROIStat1:1:MinX", value=0)
    roi_min_x_rbv = pvproperty(name="ROIStat1:1:MinX_RBV", value=0, read_only=True)
    roi_min_y = pvproperty(name="ROIStat1:1:MinY", value=0)
    roi_min_y_rbv = pvproperty(name="ROIStat1:1:MinY_RBV", value=0, read_only=True)
    roi_size_x = pvproperty(name="ROIStat1:1:SizeX", value=0)
    roi_size_x_rbv = pvproperty(name="ROIStat1:1:SizeX_RBV", value=0, read_only=True)
    roi_size_y = pvproperty(name="ROIStat1:1:SizeY", value=0)
    roi_size_y_rbv = pvproperty(name="ROIStat1:1:SizeY_RBV", value=0, read_only=True)
    roi_total = pvproperty(name="ROIStat1:1:Total_RBV", value=0.0, read_only=True)

    def __init__(self, prefix: str, *, beam: Beam, frame_shape=(16, 16), **kwargs):
        super().__init__(prefix, **kwargs)
        self.beam = beam
        self.frame_shape = (int(frame_shape[0]), int(frame_shape[1]))
        self.spot = spot_pattern(self.frame_shape)

    async def initialise(self) -> None:
        """Size the frame and put the ROI over all of it."""
        h, w = self.frame_shape
        await self.size_x.write(w)
        await self.size_y.write(h)
        for setpoint, value in ((self.roi_size_x, w), (self.roi_size_y, h)):
            await setpoint.write(value)

    async def group_write(self, instance, value):
        readback = self.pvdb.get(instance.pvname + "_RBV")
        if readback is not None:
            await readback.write(value, verify_value=False)
        return value

    @acquire.putter
    async def acquire(self, instance, value):
        if not _is_on(value):
            return "Done"
        await self.acquire_rbv.write("Acquire")
        await self.detector_state.write("Acquire")
        dwell = max(float(self.acquire_time.value), 0.0)
        if dwell > 0:
            await asyncio.sleep(dwell)
        value, y, x = self.beam.count(dwell)
        frame = value * self.spot
        h, w = self.frame_shape
        r0 = min(max(int(self.roi_min_y.value), 0), h)
        c0 = min(max(int(self.roi_min_x.value), 0), w)
        r1 = min(r0 + max(int(self.roi_size_y.value), 0), h)
        c1 = min(c0 + max(int(self.roi_size_x.value), 0), w)
        total = float(frame[r0:r1, c0:c1].sum())
        await self.roi_total.write(total)
        counter = int(self.array_counter.value) + 1
        await self.array_counter.write(counter, verify_value=False)
        await self.array_counter_rbv.write(counter)
        await self.detector_state.write("Idle")
        await self.acquire_rbv.write("Done")
        self.beam.log(self.prefix + "cam1", y, x, total)
        return "Done"


MAX_BINS = 16384  # channels of each MCS array, as an SIS3820 database's NCHAN


def _enum_pv(name: str, states: tuple[str, str], **kwargs):
    return pvproperty(name=name, dtype=ChannelType.ENUM, enum_strings=states, value=states[0], **kwargs)


def _array_pv(name: str):
    return pvproperty(name=name, dtype=ChannelType.DOUBLE, max_length=MAX_BINS, value=[], read_only=True,
                      max_subscription_backlog=100)  # under caproto's memory warning for 16384 elements


class SimulatedMCS(PVGroup):
    """A multichannel scaler at ``{prefix}`` (``sim:mcs:``), the PVs of the EPICS ``mca`` module's SIS3820.

    Writing 1 to ``EraseStart`` clears the arrays and, with ``ChannelAdvance`` "Internal", acquires
    ``NuseAll`` bins of ``Dwell`` seconds each (``Acquiring`` 1); the put returns at once. Bin ``k``
    covers loop times ``[t0 + k * Dwell, t0 + (k + 1) * Dwell)`` from the put ``t0``. With
    ``ChannelAdvance`` "External" (no trigger input here) ``EraseStart`` only clears: ``Acquiring``
    stays 0. ``StopAll`` ends an acquisition after its last completed bin (a partial bin is dropped);
    its put returns once ``Acquiring`` is 0.

    Channels per bin: ``mca1`` the 10 MHz clock (``1e7 * Dwell`` counts); ``mca2`` the sample signal
    integrated along the stage's actual motion (the mean of the sample at `SimulatedMotorRecord.position_at`
    of both motors at ``subsamples`` evenly spaced times inside the bin, Poisson-counted for ``Dwell``
    seconds when the `Beam` has a flux); ``mca3`` the mean x position and ``mca4`` the mean y position
    over the same times (encoder channels). ``mcaN.NORD`` is the number of valid elements, equal to
    ``CurrentChannel`` (bins completed). The arrays, NORD values and ``CurrentChannel`` are posted as
    bins complete (every ``post_interval`` seconds at most) and once at the end; ``Acquiring`` returns
    to 0 only after that last post. Each bin is logged as served by ``{prefix}mca2`` at its mean (y, x).

    Parameters
    ----------
    prefix : str
        PV prefix of the MCS (ending with ``mcs:``).
    beam : Beam
        The sample and the two motors.
    subsamples : int
        Times per bin at which the positions and the sample are evaluated.
    post_interval : float
        Longest time between posts of completed bins while acquiring.
    """

    erase_start = _enum_pv("EraseStart", ("Done", "Erase"))
    stop_all = _enum_pv("StopAll", ("Done", "Stop"))
    acquiring = _enum_pv("Acquiring", ("Done", "Acquiring"), read_only=True)
    dwell = pvproperty(name="Dwell", value=0.01, precision=6)
    channel_advance = _enum_pv("ChannelAdvance", ("Internal", "External"))
    nuse_all = pvproperty(name="NuseAll", value=2048, lower_ctrl_limit=1, upper_ctrl_limit=MAX_BINS)
    current_channel = pvproperty(name="CurrentChannel", value=0, read_only=True)
    mca1 = _array_pv("mca1")
    mca2 = _array_pv("mca2")
    mca3 = _array_pv("mca3")
    mca4 = _array_pv("mca4")
    nord1 = pvproperty(name="mca1.NORD", value=0, read_only=True)
    nord2 = pvproperty(name="mca2.NORD", value=0, read_only=True)
    nord3 = pvproperty(name="mca3.NORD", value=0, read_only=True)
    nord4 = pvproperty(name="mca4.NORD", value=0, read_only=True)

    clock_frequency = 1e7

    def __init__(self, prefix: str, *, beam: Beam, subsamples: int = 8, post_interval: float = 0.05, **kwargs):
        super().__init__(prefix, **kwargs)
        self.beam = beam
        self.subsamples = max(int(subsamples), 1)
        self.post_interval = float(post_interval)
        self._task: asyncio.Task | None = None
        self._stop: asyncio.Event | None = None  # made in the running loop, per acquisition
        self._stop_time: float | None = None
        self.acquisitions_ = 0

    @dwell.putter
    async def dwell(self, instance, value):
        if not (float(value) > 0 and np.isfinite(value)):
            raise ValueError(f"Dwell must be > 0 s, got {value}")
        return value

    def bins(self, t0: float, dwell: float, first: int, stop: int) -> np.ndarray:
        """Channels ``(mca1, mca2, mca3, mca4)`` of bins ``first`` .. ``stop - 1`` (a 4 x n array).

        Parameters
        ----------
        t0 : float
            Loop time at which bin 0 started.
        dwell : float
            Seconds per bin.
        first, stop : int
            The bins to compute.
        """
        k = np.arange(first, stop, dtype=np.float64)[:, None]
        t = t0 + (k + (np.arange(self.subsamples) + 0.5) / self.subsamples) * dwell
        y = self.beam.y_motor.positions_at(t)
        x = self.beam.x_motor.positions_at(t)
        sample = self.beam.sample
        mean_value = sample.values_at(y.ravel(), x.ravel()).reshape(y.shape).mean(axis=1)
        signal = sample.noisy(mean_value, dwell=dwell, flux=self.beam.flux, rng=self.beam.rng)
        clock = np.full(len(k), self.clock_frequency * dwell)
        return np.vstack([clock, np.asarray(signal, dtype=np.float64), x.mean(axis=1), y.mean(axis=1)])

    async def _post(self, data: np.ndarray, n: int) -> None:
        for array, nord, channel in zip((self.mca1, self.mca2, self.mca3, self.mca4),
                                        (self.nord1, self.nord2, self.nord3, self.nord4), data, strict=True):
            await array.write(channel[:n].copy())
            await nord.write(n)
        await self.current_channel.write(n)

    async def _acquire(self, t0: float, dwell: float, n: int, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        data = np.zeros((4, n))
        done = posted = 0
        last_post = t0
        while True:
            now = loop.time()
            end = self._stop_time if stop.is_set() else now
            ready = min(n, max(int(np.floor((end - t0) / dwell)), 0))
            if ready > done:
                data[:, done:ready] = self.bins(t0, dwell, done, ready)
                detector = self.prefix + "mca2"
                for value, x, y in data[1:, done:ready].T:
                    self.beam.log(detector, float(y), float(x), float(value))
                done = ready
            finished = done == n or stop.is_set()
            if finished or (done > posted and now - last_post >= self.post_interval):
                await self._post(data, done)  # the final arrays and NORD, before Acquiring returns to 0
                posted, last_post = done, now
            if finished:
                break
            wake = min(t0 + n * dwell, max(t0 + (done + 1) * dwell, now + 0.005))
            if done > posted:
                wake = min(wake, last_post + self.post_interval)
            try:
                await asyncio.wait_for(stop.wait(), max(wake - now, 0.0))
            except asyncio.TimeoutError:
                pass
        self.acquisitions_ += 1
        await self.acquiring.write("Done")

    @erase_start.putter
    async def erase_start(self, instance, value):
        if not _is_on(value):
            return "Done"
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        empty = np.zeros((4, 0))
        await self._post(empty, 0)
        if self.channel_advance.value != "Internal":
            await self.acquiring.write("Done")
            return "Done"
        dwell, n = float(self.dwell.value), int(self.nuse_all.value)
        self._stop = asyncio.Event()
        self._stop_time = None
        await self.acquiring.write("Acquiring")
        self._task = loop.create_task(self._acquire(t0, dwell, n, self._stop))
        return "Done"

    @stop_all.putter
    async def stop_all(self, instance, value):
        if not _is_on(value):
            return "Done"
        task = self._task
        if task is not None and not task.done() and not self._stop.is_set():
            self._stop_time = asyncio.get_running_loop().time()
            self._stop.set()
        if task is not None:
            await asyncio.wait({task})
        return "Done"


class LowLatencyContext(AsyncioContext):
    """caproto's asyncio server with Nagle's algorithm off on every client circuit.

    caproto's listening socket has protocol number 0, so asyncio does not set TCP_NODELAY on the
    connections it accepts; then a small reply that follows another within the client's delayed-ACK
    window (40 ms on Linux) waits for that ACK, which made every move of a point-by-point scan
    take ~45 ms instead of ~2 ms.
    """

    async def tcp_handler(self, client, addr):
        sock = client.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return await super().tcp_handler(client, addr)


def build_ioc(sample: SampleImage, *, prefix: str = "sim:", y_motor: str = "m2", x_motor: str = "m1",
              velocity: float = 100.0, settle_time: float = 0.0, limits=None, flux: float = 0.0,
              frame_shape=(16, 16), seed: int | None = None, served_log=None, acceleration: float = 0.0,
              elements: dict[str, SampleImage] | None = None):
    """The IOC's parts and its PV database.

    Parameters
    ----------
    sample : SampleImage
        The sample on stage coordinates (with ``elements``: their sum, which the camera, the MCS and
        the scaler's ``.S2`` serve).
    elements : dict of str to SampleImage, optional
        A multi-element sample: the scaler counts each element in a channel of its own from ``.S3``
        on (`SimulatedScaler.with_channels`).
    prefix : str
        Prefix of every PV.
    y_motor, x_motor : str
        Motor record names after the prefix.
    velocity, settle_time : float
        Initial ``.VELO`` and ``.DLY`` of both motors.
    acceleration : float
        Initial ``.ACCL`` of both motors (seconds to reach ``.VELO``; 0: at once).
    limits : (low, high) or None
        Soft limits of both motors; None: the sample's extent plus 10 % on each side.
    flux, seed, served_log
        See `Beam`.
    frame_shape : (h, w)
        Camera frame shape.

    Returns
    -------
    parts : dict
        ``y``, ``x`` (`SimulatedMotorRecord`), ``scaler``, ``camera``, ``mcs``, ``beam``.
    pvdb : dict
        Every PV served, for ``caproto.server.run``.
    """
    if limits is None:
        y0, y1, x0, x1 = sample.extent()
        span = max(y1 - y0, x1 - x0, *sample.pixel_yx)
        limits = (min(y0, x0) - 0.1 * span, max(y1, x1) + 0.1 * span)
    y = SimulatedMotorRecord(prefix + y_motor, velocity=velocity, acceleration=acceleration, limits=limits,
                             settle_time=settle_time)
    x = SimulatedMotorRecord(prefix + x_motor, velocity=velocity, acceleration=acceleration, limits=limits,
                             settle_time=settle_time)
    beam = Beam(sample, y, x, flux=flux, seed=seed, served_log=served_log, elements=elements)
    scaler_class = SimulatedScaler.with_channels(beam.elements) if beam.elements else SimulatedScaler
    scaler = scaler_class(prefix + "scaler1", beam=beam)
    camera = SimulatedROICamera(prefix, beam=beam, frame_shape=frame_shape)
    mcs = SimulatedMCS(prefix + "mcs:", beam=beam)
    pvdb = {}
    for group in (y, x, scaler, camera, mcs):
        clash = set(pvdb) & set(group.pvdb)
        if clash:
            raise ValueError(f"PV names served twice: {sorted(clash)}")
        pvdb.update(group.pvdb)
    return {"y": y, "x": x, "scaler": scaler, "camera": camera, "mcs": mcs, "beam": beam}, pvdb


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sim.ioc", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    samples = p.add_mutually_exclusive_group()
    samples.add_argument("--image", default=None,
                         help="sample image (TIFF/PNG/JPEG/NPY); default: the built-in sample")
    samples.add_argument("--elements", action="store_true",
                         help="serve the built-in multi-element sample (fe, zn, cu maps of 128x128 px): each "
                              "element counted in a scaler channel, .S3 .S4 .S5 named by .NM3 .NM4 .NM5, "
                              ".S2 their sum")
    p.add_argument("--prefix", default="sim:", help="prefix of every PV")
    p.add_argument("--y-motor", default="m2", help="y motor record name after the prefix")
    p.add_argument("--x-motor", default="m1", help="x motor record name after the prefix")
    p.add_argument("--pixel-size", type=float, default=1.0, help="stage distance between sample pixels (um)")
    p.add_argument("--origin", type=float, nargs=2, default=(0.0, 0.0), metavar=("Y0", "X0"),
                   help="stage position of sample pixel (0, 0)")
    p.add_argument("--velocity", type=float, default=100.0, help="motor speed (um/s); 0 moves instantly")
    p.add_argument("--acceleration", type=float, default=0.0,
                   help="motor .ACCL: seconds to reach the velocity from rest; 0: at once")
    p.add_argument("--settle-time", type=float, default=0.0, help="motor settle time .DLY (s)")
    p.add_argument("--limits", type=float, nargs=2, default=None, metavar=("LOW", "HIGH"),
                   help="soft limits of both motors (default: the sample extent + 10%%)")
    p.add_argument("--dwell", type=float, default=0.0, help="initial scaler .TP and camera AcquireTime (s)")
    p.add_argument("--flux", type=float, default=0.0, help="photons/s at the brightest value; 0: no noise")
    p.add_argument("--frame-shape", type=int, nargs=2, default=(16, 16), metavar=("H", "W"))
    p.add_argument("--seed", type=int, default=None, help="seed of the counting noise")
    p.add_argument("--served-log", default=None, help="append a CSV line per reading served")
    p.add_argument("--list-pvs", action="store_true", help="print the PV names and exit")
    p.add_argument("--exit-on-stdin-eof", action="store_true",
                   help="end when standard input closes (for a parent that owns this process)")
    return p


def main(argv: list[str] | None = None) -> None:
    """Run the IOC until interrupted (SIGINT or SIGTERM)."""
    args = _parser().parse_args(argv)
    for label in ("velocity", "acceleration", "settle_time", "dwell", "flux"):
        if getattr(args, label) < 0:
            raise SystemExit(f"--{label.replace('_', '-')} must be >= 0, got {getattr(args, label)}")
    elements = None
    try:
        if args.elements:
            maps = element_maps()
            elements = {name: SampleImage(image, pixel_size=args.pixel_size, origin=args.origin)
                        for name, image in maps.items()}
            sample = SampleImage(np.sum(list(maps.values()), axis=0), pixel_size=args.pixel_size,
                                 origin=args.origin)
        else:
            sample = SampleImage(args.image, pixel_size=args.pixel_size, origin=args.origin)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--{'elements' if args.elements else 'image'}: {exc}") from None
    parts, pvdb = build_ioc(sample, prefix=args.prefix, y_motor=args.y_motor, x_motor=args.x_motor,
                            velocity=args.velocity, settle_time=args.settle_time, limits=args.limits,
                            flux=args.flux, frame_shape=args.frame_shape, seed=args.seed,
                            served_log=args.served_log, acceleration=args.acceleration, elements=elements)
    if args.list_pvs:
        print("\n".join(sorted(pvdb)))
        return
    os.environ.update(SERVER_LOOPBACK_ENV)
    if args.exit_on_stdin_eof:
        exit_when_stdin_closes()
    if "CAPROTO_SERVER_HIGH_LOAD_TIMEOUT_SEC" not in os.environ:
        # caproto holds each monitor update this long hoping to batch it with the next; at its
        # default (10 ms) every move and count of a point-by-point scan waits for it.
        caproto_server_common.HIGH_LOAD_TIMEOUT = 0.0005
    port = os.environ.get("EPICS_CA_SERVER_PORT", "5064")

    async def ready(async_lib):
        for part in ("y", "x", "camera"):
            await parts[part].initialise()
        await parts["scaler"].preset_time.write(args.dwell)
        await parts["camera"].acquire_time.write(args.dwell)
        await parts["camera"].acquire_time_rbv.write(args.dwell)
        h, w = sample.shape
        y0, y1, x0, x1 = sample.extent()
        kind = f"elements {', '.join(elements)}" if elements else "sample"
        print(f"{READY_LINE}: {len(pvdb)} PVs with prefix {args.prefix!r} on {LOOPBACK}:{port}; "
              f"{kind} {h}x{w} px, y {y0:g}..{y1:g}, x {x0:g}..{x1:g} um; started {time.strftime('%H:%M:%S')}",
              flush=True)

    async def serve():
        await LowLatencyContext(pvdb, [LOOPBACK]).run(startup_hook=ready)

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    sys.stdout.flush()


if __name__ == "__main__":
    main()
