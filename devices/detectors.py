"""Scalar detectors of a real instrument: a scaler channel and an areaDetector ROI sum.

Both trigger by a put with completion (``.CNT`` of a scaler record, ``cam1:Acquire`` of an
areaDetector driver), which EPICS completes once the counts are in, so `smart_scan` reads a value
that belongs to the point it just moved to. Each reads one hinted scalar named after the device.
"""

from __future__ import annotations

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind
from ophyd import FormattedComponent as FCpt
from ophyd.areadetector.base import EpicsSignalWithRBV

__all__ = ["ScalerDetector", "ROISumDetector"]


class ScalerDetector(Device):
    """One channel of an EPICS scaler record, counted for a preset time at each point.

    Parameters
    ----------
    prefix : str
        The scaler record (``"26idc:scaler1"``); fields ``.CNT``, ``.TP``, ``.CONT`` and ``.S{channel}``.
    channel : int
        Scaler channel holding the signal (1 is usually the clock).
    name : str
        Device name; the reading is ``{name}``.

    Notes
    -----
    Staging puts the scaler in one-shot mode. The dwell is the ``preset_time`` signal (``.TP``, s):
    ``det.preset_time.put(0.05)``.
    """

    count = Cpt(EpicsSignal, ".CNT", trigger_value=1, put_complete=True, kind=Kind.omitted)
    preset_time = Cpt(EpicsSignal, ".TP", kind=Kind.config)
    count_mode = Cpt(EpicsSignal, ".CONT", string=True, kind=Kind.config)
    value = FCpt(EpicsSignalRO, "{prefix}.S{channel}", kind=Kind.hinted)

    def __init__(self, prefix: str, *, channel: int = 2, name: str, **kwargs):
        if not prefix:
            raise ValueError("prefix must name the scaler record, e.g. '26idc:scaler1'")
        if not (isinstance(channel, int) and 1 <= channel <= 64):
            raise ValueError(f"channel must be an integer in 1..64, got {channel!r}")
        self.channel = channel
        super().__init__(prefix, name=name, **kwargs)
        self.value.name = self.name
        self.stage_sigs["count_mode"] = "OneShot"


class ROISumDetector(Device):
    """The total counts in one ROI-statistics region of an areaDetector, one frame per point.

    Parameters
    ----------
    prefix : str
        The detector IOC prefix (``"26idcPIL:"``).
    cam : str
        Driver plugin after the prefix.
    roi : str
        ROI-statistics region after the prefix (``"ROIStat1:1:"``; a Stats plugin's ``"Stats1:"``
        also serves ``Total_RBV``).
    name : str
        Device name; the reading is ``{name}``.

    Notes
    -----
    Staging sets single-image mode, one image, and ``WaitForPlugins`` so that the acquire put
    completes only after the ROI statistics are computed. The dwell is ``acquire_time`` (s).
    """

    acquire = FCpt(EpicsSignal, "{prefix}{_cam}Acquire", trigger_value=1, put_complete=True, kind=Kind.omitted)
    acquire_time = FCpt(EpicsSignalWithRBV, "{prefix}{_cam}AcquireTime", kind=Kind.config)
    image_mode = FCpt(EpicsSignalWithRBV, "{prefix}{_cam}ImageMode", string=True, kind=Kind.config)
    num_images = FCpt(EpicsSignalWithRBV, "{prefix}{_cam}NumImages", kind=Kind.config)
    wait_for_plugins = FCpt(EpicsSignal, "{prefix}{_cam}WaitForPlugins", string=True, kind=Kind.config)
    array_counter = FCpt(EpicsSignalRO, "{prefix}{_cam}ArrayCounter_RBV", kind=Kind.omitted)
    total = FCpt(EpicsSignalRO, "{prefix}{_roi}Total_RBV", kind=Kind.hinted)

    def __init__(self, prefix: str, *, cam: str = "cam1:", roi: str = "ROIStat1:1:", name: str, **kwargs):
        if not prefix:
            raise ValueError("prefix must name the detector IOC, e.g. '26idcPIL:'")
        self._cam, self._roi = cam, roi
        super().__init__(prefix, name=name, **kwargs)
        self.total.name = self.name
        self.stage_sigs.update({"image_mode": "Single", "num_images": 1, "wait_for_plugins": "Yes"})
