"""ophyd devices of a real instrument (EPICS stages and detectors), with PV names as arguments."""

from devices.detectors import ROISumDetector, ScalerDetector
from devices.stage import ScanStage

__all__ = ["ROISumDetector", "ScalerDetector", "ScanStage"]
