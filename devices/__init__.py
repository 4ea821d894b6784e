"""ophyd devices of a real instrument (EPICS stages and detectors), with PV names as arguments."""

from devices.detectors import ElementScalerDetector, ROISumDetector, ScalerDetector
from devices.flyer import MCS, MCSFlyer
from devices.stage import ScanStage

__all__ = ["ElementScalerDetector", "MCS", "MCSFlyer", "ROISumDetector", "ScalerDetector", "ScanStage"]
