"""Faults on demand: a detector that raises, hangs or reads NaN at chosen positions or at random.

A real detector cannot be made to fail at a given point, so tests, the soak test and the fault
table use this one in place of the microscope's detector. Motor faults are part of
`sim.microscope.SimulatedMotor` itself (its ``faults`` and ``limits``).
"""

from __future__ import annotations

import numpy as np
from ophyd import Component as Cpt
from ophyd import Device, Kind, Signal
from ophyd.status import Status

__all__ = ["FaultyDetector", "DETECTOR_FAULTS"]

DETECTOR_FAULTS = ("raise", "hang", "nan")
"""What `FaultyDetector` can do at a trigger: raise at once, never finish, or read NaN."""


class FaultyDetector(Device):
    """Reads a `SimulatedMicroscope`'s sample at its stage position, with faults injected.

    Parameters
    ----------
    scope : SimulatedMicroscope
        Whose stage position and sample are read.
    faults : dict, optional
        ``{(y, x): [kind, ...]}``: at the stage position (rounded to integers) the next triggers
        fail in these ways, one per trigger, in order (kinds from `DETECTOR_FAULTS`).
    rate : float
        Besides, each trigger fails with this probability, in a random kind.
    seed : int or numpy Generator, optional
        For the random faults.
    name : str

    Attributes
    ----------
    triggers_ : int
        Triggers so far.
    injected_ : list of ((y, x), kind)
        Every fault injected, in order.
    """

    value = Cpt(Signal, value=0.0, kind=Kind.hinted)

    def __init__(self, scope, faults: dict | None = None, *, rate: float = 0.0, seed=None, name: str = "faulty",
                 **kwargs):
        super().__init__("", name=name, **kwargs)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be in [0, 1], got {rate}")
        self.value.name = self.name
        self.scope = scope
        self.faults = {tuple(pos): list(kinds) for pos, kinds in (faults or {}).items()}
        for kinds in self.faults.values():
            unknown = set(kinds) - set(DETECTOR_FAULTS)
            if unknown:
                raise ValueError(f"faults: unknown kinds {sorted(unknown)}; known: {list(DETECTOR_FAULTS)}")
        self.rate = float(rate)
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self.triggers_ = 0
        self.injected_: list[tuple[tuple[int, int], str]] = []

    def trigger(self) -> Status:
        """Read the sample at the stage, unless a fault is due here."""
        self.triggers_ += 1
        pos = (round(self.scope.y.position), round(self.scope.x.position))
        scheduled = self.faults.get(pos)
        kind = scheduled.pop(0) if scheduled else None
        if kind is None and self.rate and self.rng.random() < self.rate:
            kind = str(self.rng.choice(DETECTOR_FAULTS))
        status = Status(obj=self)
        if kind is not None:
            self.injected_.append((pos, kind))
        if kind == "raise":
            raise RuntimeError(f"{self.name}: injected detector fault at {pos}")
        if kind == "hang":
            return status  # never finishes
        value = self.scope.sample_at(self.scope.y.position, self.scope.x.position)
        self.value.put(np.nan if kind == "nan" else value)
        status.set_finished()
        return status
