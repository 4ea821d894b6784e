"""The simulated instrument: a sample image behind ophyd devices, and a caproto IOC."""

from sim.clock import SimClock
from sim.microscope import SimulatedDetector, SimulatedMicroscope, SimulatedMotor, default_sample

__all__ = ["SimClock", "SimulatedDetector", "SimulatedMicroscope", "SimulatedMotor", "default_sample"]
