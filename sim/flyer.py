"""A simulated fly scan: the stage flies along a row and the detector records one pixel per dwell.

`SimulatedFlyer` is a bluesky flyer (``prepare``, ``kickoff``, ``complete``, ``collect_pages``,
``describe_collect``) attached to a `sim.SimulatedMicroscope` that has a timing model
(`steering.timing.StageTiming`). Each flight spends the model's time on the microscope's clock (the
line overhead, then one pixel time per pixel; a flight of one pixel is a step: settle and dwell) and
records, for every pixel crossed, the sample averaged over the stretch the beam swept during that
pixel's dwell, with Poisson noise if the microscope has a flux. The pixels it collects go to
``primary`` with the fields a step scan stores: the detector, both axes, and the tags the plan
passes (the sampler batch, whether a point was a probe). A microscope with element maps records
each element too (``{det}_{element}``, each element's own draws), the detector field their sum.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from ophyd import Device
from ophyd.status import Status

from devices.flyer import read_flight

__all__ = ["SimulatedFlyer"]

# points per pixel at which the swept stretch is sampled
_SWEEP_SAMPLES = 5


def _done(after: float = 0.0) -> Status:
    """A status done at once, or after ``after`` seconds of real time."""
    status = Status()
    if after > 0:
        timer = threading.Timer(after, status.set_finished)
        timer.daemon = True
        timer.start()
    else:
        status.set_finished()
    return status


class SimulatedFlyer(Device):
    """Flies the stage of a `sim.SimulatedMicroscope` along one row per flight.

    ``prepare({"y": y, "x": [x0, x1, ...], "tags": {"sampler_batch": 3, ...}})`` sets the next
    flight: the row's stage position, the pixel centres in flying order (equally spaced, in one
    direction) and constant fields to store with every pixel. The stage must be at ``(y, x0)`` at
    kickoff (the plan moves it there).

    Attributes
    ----------
    flights_ : int
        Flights flown so far (a flight repeated after a pause counts again).
    """

    def __init__(self, scope, *, name: str):
        super().__init__("", name=name)
        self.scope = scope
        self.flights_ = 0
        self._next: dict | None = None
        self._tag_keys: tuple[str, ...] = ("sampler_batch", "sampler_probe")
        self._page: dict | None = None

    @property
    def timing(self):
        """The microscope's timing model (`steering.timing.StageTiming`), or None: what a fly scan plans with."""
        return self.scope.timing

    def prepare(self, value: dict) -> Status:
        """Set the next flight (see the class docstring)."""
        if self.timing is None:
            raise RuntimeError(f"{self.name}: the microscope has no timing model; make it with timing=StageTiming(...)")
        y, xs = read_flight(value, self.name)
        tags = {"sampler_batch": 0, "sampler_probe": False, **value.get("tags", {})}
        if set(tags) - set(self._tag_keys):
            raise ValueError(f"{self.name}: unknown tags {sorted(set(tags) - set(self._tag_keys))}")
        self._next = {"y": y, "x": xs, "tags": tags}
        return _done()

    def kickoff(self) -> Status:
        """Fly the prepared row: spend its time on the clock and record every pixel; the status is done
        once the flight's time has passed in real time too, scaled by the microscope's ``time_scale``."""
        flight, self._next = self._next, None
        if flight is None:
            raise RuntimeError(f"{self.name}: kickoff without a prepared flight")
        scope, timing = self.scope, self.timing
        y, xs = flight["y"], flight["x"]
        if not (np.isclose(scope.y.position, y) and np.isclose(scope.x.position, xs[0])):
            raise RuntimeError(f"{self.name}: the stage is at ({scope.y.position:g}, {scope.x.position:g}), "
                               f"not at the flight's start ({y:g}, {xs[0]:g})")
        clock = scope.clock
        clock.wait_for_motion()
        began = clock.now
        step = abs(xs[1] - xs[0]) if len(xs) > 1 else 0.0
        if len(xs) == 1:
            clock.advance(timing.settle)
            pixel_time = timing.dwell
        else:
            clock.advance(timing.line_overhead)
            pixel_time = timing.pixel_time_over(step)
        sweep = (np.arange(_SWEEP_SAMPLES) + 0.5) / _SWEEP_SAMPLES - 0.5  # offsets across one pixel's stretch
        flux = float(scope.det.flux.get())

        def swept(optics):
            means = optics.values_at(np.full(len(xs) * len(sweep), y), (xs[:, None] + sweep * step).ravel())
            return means.reshape(len(xs), len(sweep)).mean(axis=1)

        elements = {}
        if scope.elements:  # each element on its own map, with its own draws; the detector reads their sum
            for element in scope.elements:
                optics = scope.element_optics[element]
                elements[element] = np.asarray(optics.noisy(swept(optics), dwell=pixel_time, flux=flux,
                                                            rng=scope.rng), dtype=np.float64)
            means = np.sum(list(elements.values()), axis=0)
        else:
            means, peak = swept(scope.optics), scope.optics.peak
            if flux > 0:
                means = scope.rng.poisson(np.maximum(means, 0.0) / peak * flux * pixel_time) if peak > 0 else 0 * means
        now = time.time()
        for x in xs.tolist():
            clock.advance(pixel_time)
            scope.det.exposures_.append((y, x))
        n = len(xs)
        data = {scope.det.name: means.astype(float).tolist(),
                **{self._element_field(element): counts.tolist() for element, counts in elements.items()},
                scope.y.name: [y] * n, scope.x.name: xs.tolist(),
                **{tag: [value] * n for tag, value in flight["tags"].items()}}
        # a flight not collected before the next (one flown again after a pause) is dropped
        self._page = {"data": data, "timestamps": {key: [now] * n for key in data}, "time": [now] * n}
        scope.y.readback.put(y)
        scope.x.readback.put(float(xs[-1]))
        scope.x.setpoint.put(float(xs[-1]))
        self.flights_ += 1
        return _done((clock.now - began) * scope.time_scale)

    def _element_field(self, element: str) -> str:
        """The field of one element: the name of the detector's signal for it (``sim_det_fe``)."""
        return getattr(self.scope.det.elements, element).name

    def complete(self) -> Status:
        """The flight is over when `kickoff` returns (simulated time)."""
        return _done()

    def describe_collect(self) -> dict:
        """One stream, ``primary``: the detector (and, with element maps, each element), both axes and the tags."""
        scope = self.scope
        keys = {scope.det.name: {"source": f"SIM:{scope.det.name}", "dtype": "number", "shape": []},
                **{self._element_field(element): {"source": f"SIM:{self._element_field(element)}", "dtype": "number",
                                                  "shape": []} for element in scope.elements},
                scope.y.name: {"source": f"SIM:{scope.y.name}", "dtype": "number", "shape": [],
                               "units": scope.y.egu},
                scope.x.name: {"source": f"SIM:{scope.x.name}", "dtype": "number", "shape": [],
                               "units": scope.x.egu},
                "sampler_batch": {"source": "SIM:sampler_batch", "dtype": "integer", "shape": []},
                "sampler_probe": {"source": "SIM:sampler_probe", "dtype": "boolean", "shape": []}}
        return {"primary": keys}

    def collect_pages(self):
        """The pixels of the last flight as one event page, and forget them.

        A page rather than an event per pixel: bluesky validates each document it composes against
        its schema, which cost about 0.5 ms a pixel here, and validates a page once.
        """
        page, self._page = self._page, None
        if page is not None:
            yield page
