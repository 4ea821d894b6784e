"""The simulated instrument: a sample image behind ophyd devices, and a caproto IOC.

The ophyd-based parts load lazily, so ``python -m sim.ioc`` never starts a Channel Access client.
"""

from importlib import import_module

from sim.clock import SimClock
from sim.sample import SampleImage, default_sample, element_maps

__all__ = ["SampleImage", "SimClock", "SimulatedDetector", "SimulatedMicroscope", "SimulatedMotor", "FaultyDetector",
           "default_sample", "element_maps"]

_LAZY = {"SimulatedDetector": "sim.microscope", "SimulatedMicroscope": "sim.microscope",
         "SimulatedMotor": "sim.microscope", "FaultyDetector": "sim.faults"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sim' has no attribute {name!r}")
