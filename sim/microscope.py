"""A simulated scanning microscope: a sample image behind ophyd stage motors and a detector.

The stage moves in physical units (µm by default). Pixel (row, col) of the sample image sits at
``y = origin[0] + row * pixel_size``, ``x = origin[1] + col * pixel_size``; between pixels the
detector sees the bilinear interpolation, outside the image the nearest edge. Moves and exposures
take *simulated* time on a `SimClock`, so a dry run reports the beam time a real scan would cost
without waiting it out (``time_scale > 0`` also spends a fraction of it in real time).
"""

from __future__ import annotations

import copy
import threading

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd import DynamicDeviceComponent as DDCpt
from ophyd.status import Status
from ophyd.utils import LimitError, ReadOnlyError

from sim.clock import SimClock
from sim.flyer import SimulatedFlyer
from sim.sample import SampleImage, check_element_maps, default_sample, spot_pattern

__all__ = ["SimulatedMotor", "SimulatedDetector", "SimulatedMicroscope", "default_sample", "detector_class"]


def _finished_after(obj, seconds: float) -> Status:
    """A status that is done at once, or after ``seconds`` of real time."""
    status = Status(obj=obj)
    if seconds <= 0:
        status.set_finished()
    else:
        timer = threading.Timer(seconds, status.set_finished)
        timer.daemon = True
        timer.start()
    return status


MOTOR_FAULTS = ("fail", "hang")
"""What a `SimulatedMotor` move can do when a fault is due: stall halfway and report an error
(a following error), or never finish (a lost controller)."""


class SimulatedMotor(Device):
    """One stage axis: moves at ``velocity`` and settles for ``settle_time`` after each move.

    Reads as a motor does: the readback is named after the motor itself and is the hinted field.
    A move outside ``limits`` raises `LimitError` (change ``limits`` mid-scan to hit one); a move
    to a target in ``faults`` (``{target: [kind, ...]}``, kinds from `MOTOR_FAULTS`, one per move
    in order) fails in that way.
    """

    readback = Cpt(Signal, value=0.0, kind=Kind.hinted)
    setpoint = Cpt(Signal, value=0.0, kind=Kind.normal)
    velocity = Cpt(Signal, value=100.0, kind=Kind.config)
    settle_time = Cpt(Signal, value=0.0, kind=Kind.config)

    def __init__(self, prefix="", *, name, clock: SimClock | None = None, limits=(-np.inf, np.inf),
                 time_scale: float = 0.0, egu: str = "um", **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        self.readback.name = self.name
        self.clock = clock if clock is not None else SimClock()
        self.limits = (float(limits[0]), float(limits[1]))
        self.time_scale = float(time_scale)
        self.egu = egu
        self.moves_ = 0
        self.faults: dict[float, list[str]] = {}
        self.timing = None

    @property
    def position(self) -> float:
        """Where the axis is."""
        return float(self.readback.get())

    def describe(self) -> dict:
        """The readings' description, with the axis' units (``egu``), as an EPICS motor record gives them."""
        description = super().describe()
        for key in description.values():
            key.setdefault("units", self.egu)
        return description

    def move_time(self, distance: float) -> float:
        """Simulated seconds a move over ``distance`` takes: settling included, or, with a timing model
        (``timing``), the model's move without its settle (the detector or the flight spends that)."""
        distance = abs(float(distance))
        if distance == 0.0:
            return 0.0
        if self.timing is not None:
            return self.timing.travel_over(distance)
        return distance / float(self.velocity.get()) + float(self.settle_time.get())

    def set(self, value) -> Status:
        """Move to ``value``; the status completes once the (simulated) move is over."""
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"{self.name}: target must be finite, got {value}")
        low, high = self.limits
        if not low <= value <= high:
            raise LimitError(f"{self.name}: target {value} outside the limits [{low}, {high}]")
        kinds = self.faults.get(value)
        kind = kinds.pop(0) if kinds else None
        if kind is not None and kind not in MOTOR_FAULTS:
            raise ValueError(f"{self.name}: unknown fault {kind!r}; known: {list(MOTOR_FAULTS)}")
        if kind is not None:
            self.setpoint.put(value)
            self.moves_ += 1
            status = Status(obj=self)
            if kind == "fail":
                self.readback.put((self.position + value) / 2)
                status.set_exception(RuntimeError(f"{self.name}: following error, stopped at "
                                                  f"{self.position:g} on the way to {value:g}"))
            return status
        duration = self.move_time(value - self.position)
        self.clock.book_move(duration)
        self.setpoint.put(value)
        self.readback.put(value)
        self.moves_ += 1
        return _finished_after(self, duration * self.time_scale)

    def stop(self, *, success: bool = False) -> None:
        """Moves complete instantly in simulated time; nothing to stop."""


class SimulatedDetector(Device):
    """A point detector: the sample at the stage position, with optional Poisson counting noise.

    With ``flux`` (photons per second at the brightest sample value) the reading is a photon count
    drawn for ``dwell`` seconds; with ``flux = 0`` it is the noiseless sample value. With a frame
    shape, a 2-D ``frame`` (a spot whose sum is the reading) is read as well.

    A microscope with element maps (a multi-element sample) has a detector of the class
    `detector_class` makes: one more hinted signal per element, ``elements.<element>``, read as
    ``{name}_{element}`` (each element measured, and Poisson-counted, on its own map), and the
    reading ``{name}`` is then their sum, of kind normal (read, not hinted).

    Attributes
    ----------
    triggers_ : int
        Exposures so far.
    exposures_ : list of (y, x)
        The stage position of every exposure, in order (what the sample received, whether or not
        a reading of it was stored).
    """

    value = Cpt(Signal, value=0.0, kind=Kind.hinted)
    frame = Cpt(Signal, value=np.zeros((1, 1)), kind=Kind.omitted)
    dwell = Cpt(Signal, value=0.01, kind=Kind.config)
    flux = Cpt(Signal, value=0.0, kind=Kind.config)

    def __init__(self, prefix="", *, name, **kwargs):
        super().__init__(prefix, name=name, **kwargs)
        self.value.name = self.name
        self.scope: SimulatedMicroscope | None = None
        self.triggers_ = 0
        self.exposures_: list[tuple[float, float]] = []

    def trigger(self) -> Status:
        """Wait for the stage, expose for ``dwell`` (simulated) and latch the reading."""
        scope = self.scope
        if scope is None:
            raise RuntimeError(f"{self.name} is not attached to a SimulatedMicroscope")
        dwell = float(self.dwell.get())
        scope.clock.wait_for_motion()
        scope.clock.advance(dwell + (scope.timing.settle if scope.timing is not None else 0.0))
        flux = float(self.flux.get())
        if scope.elements:
            value = 0.0
            for element in scope.elements:  # one independent draw per element, in order
                count = scope.element_optics[element].count(scope.y.position, scope.x.position, dwell=dwell,
                                                             flux=flux, rng=scope.rng)
                getattr(self.elements, element).put(count)
                value += count
        else:
            value = scope.optics.count(scope.y.position, scope.x.position, dwell=dwell, flux=flux, rng=scope.rng)
        self.value.put(value)
        if scope.frame_shape is not None:
            self.frame.put(value * scope.frame_pattern_)
        self.triggers_ += 1
        self.exposures_.append((scope.y.position, scope.x.position))
        return _finished_after(self, dwell * scope.time_scale)


_DETECTOR_CLASSES: dict[tuple[str, ...], type] = {}


def detector_class(elements: tuple[str, ...]) -> type[SimulatedDetector]:
    """The `SimulatedDetector` subclass of a multi-element sample: one hinted signal per element.

    Parameters
    ----------
    elements : tuple of str
        Element names (identifiers, e.g. ``("fe", "zn", "cu")``), in reading order.

    Returns
    -------
    type
        A subclass with a sub-device ``elements`` holding a signal per element
        (``det.elements.fe``); the microscope names each ``{det.name}_{element}``. The same
        tuple gives the same class.
    """
    elements = tuple(elements)
    if elements in _DETECTOR_CLASSES:
        return _DETECTOR_CLASSES[elements]
    reserved = [e for e in elements if hasattr(Device, e)]
    if reserved:
        raise ValueError(f"element names {reserved} are reserved: attributes of an ophyd Device")
    defn = {element: (Signal, None, {"value": 0.0, "kind": Kind.hinted}) for element in elements}
    namespace = {"elements": DDCpt(defn, kind=Kind.normal, doc="One signal per element, hinted."),
                 "__module__": __name__,
                 "__doc__": f"A `SimulatedDetector` reading the elements {', '.join(elements)} and their sum."}
    cls = type(f"SimulatedDetector_{'_'.join(elements)}", (SimulatedDetector,), namespace)
    _DETECTOR_CLASSES[elements] = cls
    return cls


class _DetectorComponent(Cpt):
    """The microscope's ``det``: a `SimulatedDetector`, of the class `detector_class` makes when the
    microscope (before ophyd builds its components) has set ``_element_names``."""

    def create_component(self, instance):
        elements = instance.__dict__.get("_element_names", ())
        if not elements:
            return super().create_component(instance)
        component = copy.copy(self)
        component.cls = detector_class(tuple(elements))
        return Cpt.create_component(component, instance)


class SimulatedBeamTime(Signal):
    """Read-only signal: the simulated beam time its microscope has spent (s), for ``beam_clock``.

    ``smart_scan(..., beam_clock=sim.beam_time)`` counts the microscope's simulated seconds; a queue
    server passes it by name (``beam_clock="sim.beam_time"``).
    """

    def get(self, **kwargs) -> float:
        """Seconds on the parent microscope's clock."""
        return float(self.parent.clock.now)

    def put(self, value, **kwargs) -> None:
        """Refused: the clock moves only when the instrument spends time."""
        raise ReadOnlyError(f"{self.name} is read-only")


class SimulatedMicroscope(Device):
    """A scanning microscope around a 2-D sample image: stage axes ``y`` (slow), ``x`` and detector ``det``.

    Parameters
    ----------
    sample : array, path, dict or None
        The sample: a 2-D array, or a TIFF/PNG/JPEG/NPY file. None: `default_sample`. A dict of
        element name -> 2-D array (all of one shape, names Python identifiers; e.g.
        `sim.sample.element_maps`) makes a multi-element sample: the detector reads one hinted
        field per element, ``{name}_det_{element}``, each measured on its own map (with its own
        Poisson draw under ``flux``, ``flux`` being photons/s at that map's brightest value), and
        ``{name}_det`` reads their sum (kind normal, no longer hinted).
    name : str
        Device name; the fields read are ``{name}_y``, ``{name}_x`` and ``{name}_det``.
    extent : ((y0, y1), (x0, x1)) or None
        Stage coordinates of the first and last sample pixels; when given, it sets ``pixel_size``
        and ``origin``. None: ``pixel_size`` and ``origin`` (default: pixel indices).
    pixel_size : float or (py, px)
        Stage distance between sample pixels (µm).
    origin : (y0, x0)
        Stage position of sample pixel (0, 0).
    velocity : float
        Stage speed (µm/s), both axes.
    settle_time : float
        Seconds each axis settles after a move.
    dwell : float
        Exposure per point (s).
    flux : float
        Photons per second at the brightest sample value; 0 means no counting noise.
    frame_shape : (h, w) or None
        Also read a 2-D detector frame of this shape (its sum is the point's reading).
    time_scale : float
        Real seconds spent per simulated second (0: none, for tests and dry runs).
    seed : int or None
        Seed of the counting noise.
    timing : steering.timing.StageTiming or None
        The stage and detector's timing model, lengths in the stage's units: moves, settling, dwell
        and flights (``flyer``) then cost what the model says, so the beam time of a dry run is the
        model's (``velocity``, ``settle_time`` and ``dwell`` are taken from it).

    Attributes
    ----------
    clock : SimClock
        Simulated beam time spent so far (``beam_time``, a signal, reads it).
    elements : tuple of str
        The element names of a multi-element sample, in reading order; ``()`` for a single image.
    element_samples : dict of str to ndarray
        The element maps (``{}`` for a single image); ``sample`` is then their sum.
    element_optics : dict of str to SampleImage
        Each element map on the stage coordinates of ``sample``.
    flyer : sim.flyer.SimulatedFlyer
        Flies the stage along a row (needs ``timing``).
    """

    y = Cpt(SimulatedMotor)
    x = Cpt(SimulatedMotor)
    det = _DetectorComponent(SimulatedDetector)
    beam_time = Cpt(SimulatedBeamTime, value=0.0, kind=Kind.omitted)

    def __init__(self, sample=None, *, name: str = "sim", extent=None, pixel_size=1.0, origin=(0.0, 0.0),
                 velocity: float = 100.0, settle_time: float = 0.0, dwell: float = 0.01, flux: float = 0.0,
                 frame_shape=None, time_scale: float = 0.0, seed: int | None = None, timing=None, **kwargs):
        maps = check_element_maps(sample) if isinstance(sample, dict) else {}
        self._element_names = tuple(maps)  # read by the ``det`` component while ophyd builds it
        if maps:
            detector_class(self._element_names)  # refuses reserved names before anything is built
            sample = np.sum([maps[element] for element in maps], axis=0)
        super().__init__("", name=name, **kwargs)
        if timing is not None:
            velocity, dwell = timing.velocity, timing.dwell
        if extent is not None:
            optics = SampleImage.from_extent(sample, extent)
        else:
            optics = SampleImage(sample, pixel_size=pixel_size, origin=origin)
        for label, v in (("velocity", velocity), ("dwell", dwell)):
            if not v > 0:
                raise ValueError(f"{label} must be > 0, got {v}")
        for label, v in (("settle_time", settle_time), ("flux", flux), ("time_scale", time_scale)):
            if not v >= 0:
                raise ValueError(f"{label} must be >= 0, got {v}")
        self.optics = optics
        self.sample = optics.image
        self.elements: tuple[str, ...] = tuple(maps)
        self.element_samples: dict[str, np.ndarray] = maps
        self.element_optics: dict[str, SampleImage] = {
            element: SampleImage(image, pixel_size=optics.pixel_yx, origin=optics.origin)
            for element, image in maps.items()}
        if maps:
            self.det.value.kind = Kind.normal  # the sum: read, not hinted
            for element in maps:
                getattr(self.det.elements, element).name = f"{self.det.name}_{element}"
        self.sample_peak_ = optics.peak
        self.pixel_size = optics.pixel_size
        self.origin = optics.origin
        self.time_scale = float(time_scale)
        self.clock = SimClock()
        self.rng = np.random.default_rng(seed)
        self.frame_shape = None if frame_shape is None else (int(frame_shape[0]), int(frame_shape[1]))
        if self.frame_shape is not None:
            self.frame_pattern_ = spot_pattern(self.frame_shape)
            self.det.frame.put(np.zeros(self.frame_shape))
            self.det.frame.kind = Kind.normal
        for axis in (self.y, self.x):
            axis.clock = self.clock
            axis.time_scale = self.time_scale
            axis.velocity.put(float(velocity))
            axis.settle_time.put(float(settle_time))
        self.det.scope = self
        self.det.dwell.put(float(dwell))
        self.det.flux.put(float(flux))
        self.timing = timing
        for axis in (self.y, self.x):
            axis.timing = timing
        self.flyer = SimulatedFlyer(self, name=f"{name}_flyer")

    @property
    def shape(self) -> tuple[int, int]:
        """Sample shape in pixels (rows, cols)."""
        return self.sample.shape

    def extent(self) -> tuple[float, float, float, float]:
        """Stage coordinates ``(y_start, y_stop, x_start, x_stop)`` of the first and last sample pixels."""
        return self.optics.extent()

    def sample_at(self, y: float, x: float) -> float:
        """The noiseless sample value seen with the beam at stage position (y, x)."""
        return self.optics.value_at(y, x)

    def elements_at(self, y: float, x: float) -> dict[str, float]:
        """The noiseless value of each element map at stage position (y, x) (``{}`` for a single image)."""
        return {element: optics.value_at(y, x) for element, optics in self.element_optics.items()}

    def raster_time(self, y_num: int | None = None, x_num: int | None = None) -> float:
        """Simulated seconds of a full serpentine raster over the sample (``y_num`` x ``x_num`` points)."""
        (h, w), (py, px) = self.shape, self.optics.pixel_yx
        y_num, x_num = y_num or h, x_num or w
        y_step = (h - 1) * py / max(y_num - 1, 1)
        x_step = (w - 1) * px / max(x_num - 1, 1)
        dwell = float(self.det.dwell.get())
        along_row = self.x.move_time(x_step)
        next_row = max(self.y.move_time(y_step), 0.0)
        return y_num * x_num * dwell + y_num * (x_num - 1) * along_row + (y_num - 1) * next_row
