"""Scalar detectors of a real instrument: a scaler channel, per-element scaler channels and an areaDetector ROI sum.

All trigger by a put with completion (``.CNT`` of a scaler record, ``cam1:Acquire`` of an
areaDetector driver), which EPICS completes once the counts are in, so `smart_scan` reads a value
that belongs to the point it just moved to. `ScalerDetector` and `ROISumDetector` read one hinted
scalar named after the device; `ElementScalerDetector` one hinted scalar per element (X-ray
fluorescence regions of interest counted in scaler channels) and their sum.
"""

from __future__ import annotations

import keyword
from collections.abc import Sequence

from ophyd import Component as Cpt
from ophyd import Device, EpicsSignal, EpicsSignalRO, Kind
from ophyd import DynamicDeviceComponent as DDCpt
from ophyd import FormattedComponent as FCpt
from ophyd.areadetector.base import EpicsSignalWithRBV
from ophyd.device import DEFAULT_CONNECTION_TIMEOUT

__all__ = ["ScalerDetector", "ElementScalerDetector", "ROISumDetector"]


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


def _element_channels(elements, first_channel: int, sum_channel: int) -> tuple[tuple[str, ...], int]:
    """Validate the element names and their channels; return ``(elements, first_channel)``."""
    if isinstance(elements, str):
        raise ValueError(f"elements must be a sequence of names, e.g. ('fe', 'zn', 'cu'), got the string {elements!r}")
    elements = tuple(elements)
    if not elements:
        raise ValueError("elements must name at least one element, e.g. ('fe', 'zn', 'cu')")
    for element in elements:
        if (not isinstance(element, str) or not element.isidentifier() or keyword.iskeyword(element)
                or element.startswith("_") or hasattr(Device, element)):
            raise ValueError(f"element name {element!r} must be a Python identifier that is not a keyword, "
                             "does not start with an underscore and is no ophyd Device attribute")
    if len(set(elements)) != len(elements):
        raise ValueError(f"element names must differ, got {elements}")
    if not (isinstance(first_channel, int) and 1 <= first_channel and first_channel + len(elements) - 1 <= 64):
        raise ValueError(f"channels {first_channel}..{first_channel}+{len(elements) - 1} must lie in 1..64 "
                         f"(first_channel={first_channel!r}, {len(elements)} elements)")
    if first_channel <= sum_channel < first_channel + len(elements):
        raise ValueError(f"channel {sum_channel} (the sum) is also one of the element channels "
                         f"{first_channel}..{first_channel + len(elements) - 1}")
    return elements, first_channel


_ELEMENT_CLASSES: dict[tuple, type] = {}


def _element_scaler_class(base: type, elements: tuple[str, ...], first_channel: int) -> type:
    """The subclass of ``base`` with the components of these element channels (one class per layout)."""
    key = (base, elements, first_channel)
    if key not in _ELEMENT_CLASSES:
        channels = range(first_channel, first_channel + len(elements))
        counts = {e: (EpicsSignalRO, f".S{k}", {"kind": Kind.hinted}) for e, k in zip(elements, channels, strict=True)}
        names = {e: (EpicsSignalRO, f".NM{k}", {"kind": Kind.config, "string": True})
                 for e, k in zip(elements, channels, strict=True)}
        namespace = {"elements": DDCpt(counts, kind=Kind.normal, doc="Each element's counts (.S{n}), hinted."),
                     "channel_names": DDCpt(names, kind=Kind.config, doc="Each element's channel name (.NM{n})."),
                     "_layout_base": base, "_layout": (elements, first_channel), "__module__": base.__module__,
                     "__doc__": base.__doc__}
        _ELEMENT_CLASSES[key] = type(f"{base.__name__}_{'_'.join(elements)}", (base,), namespace)
    return _ELEMENT_CLASSES[key]


class ElementScalerDetector(ScalerDetector):
    """Per-element totals of an energy-dispersive fluorescence detector, counted in scaler channels.

    At an X-ray nanoprobe the regions of interest of the fluorescence spectrum (one per element)
    often feed channels of the scaler record that also counts the clock; one ``.CNT`` then counts
    them all for ``.TP`` seconds. This device reads one hinted signal per element and, as ``{name}``,
    the channel ``channel`` (their sum, or a total), of kind normal: read, not hinted.

    Parameters
    ----------
    prefix : str
        The scaler record (``"26idc:scaler1"``).
    elements : sequence of str
        Element names in channel order, e.g. ``("fe", "zn", "cu")``: element ``k`` (from 0) is
        counted in ``.S{first_channel + k}`` and read as ``{name}_{element}``
        (``det.elements.fe``); the scaler must name that channel ``.NM{first_channel + k}`` after
        it (case and surrounding blanks aside).
    first_channel : int
        The channel of the first element.
    channel : int
        The channel read as ``{name}`` (2: the sum of the elements on the simulated IOC).
    name : str
        Device name.

    Raises
    ------
    ValueError
        On bad names or channels at construction; from `wait_for_connection` and `stage` when the
        scaler's channel names are not the elements (`check_channel_names`).

    Notes
    -----
    Staging puts the scaler in one-shot mode, as `ScalerDetector` does. The channel names ``.NMn``
    are configuration (``{name}_channel_names_{element}`` in ``read_configuration``).

    Examples
    --------
    >>> det = ElementScalerDetector("sim:scaler1", elements=("fe", "zn", "cu"), name="xrf")  # doctest: +SKIP
    >>> det.wait_for_connection()  # doctest: +SKIP
    >>> det.hints  # doctest: +SKIP
    {'fields': ['xrf_fe', 'xrf_zn', 'xrf_cu']}
    """

    def __new__(cls, prefix: str = "", *, elements: Sequence[str] = (), first_channel: int = 3, channel: int = 2,
                **kwargs):
        checked, first = _element_channels(elements, first_channel, channel)
        if "_layout" in cls.__dict__:  # already the class of a layout: only that layout
            if cls._layout != (checked, first):
                raise TypeError(f"{cls.__name__} reads the elements {cls._layout[0]} from channel {cls._layout[1]}; "
                                f"make other layouts with {cls._layout_base.__name__}(...)")
            return super().__new__(cls)
        return super().__new__(_element_scaler_class(cls, checked, first))

    def __init__(self, prefix: str, *, elements: Sequence[str], first_channel: int = 3, channel: int = 2, name: str,
                 **kwargs):
        self.element_names, self.first_channel = _element_channels(elements, first_channel, channel)
        super().__init__(prefix, channel=channel, name=name, **kwargs)
        self.value.kind = Kind.normal
        for element in self.element_names:
            getattr(self.elements, element).name = f"{self.name}_{element}"

    def channel_of(self, element: str) -> int:
        """The scaler channel number that counts ``element``."""
        return self.first_channel + self.element_names.index(element)

    def check_channel_names(self) -> None:
        """Check that the scaler names each element's channel after it (``.NMn``).

        Raises
        ------
        ValueError
            Listing every channel whose name differs (compared without case and surrounding blanks).
        """
        wrong = []
        for element in self.element_names:
            served = getattr(self.channel_names, element).get()
            served = served if isinstance(served, str) else str(served)
            if served.strip().lower() != element.lower():
                wrong.append(f".NM{self.channel_of(element)} is {served!r}, expected {element!r}")
        if wrong:
            raise ValueError(f"{self.name}: the channels of scaler {self.prefix} are not the elements "
                             f"{list(self.element_names)}: {'; '.join(wrong)}")

    def wait_for_connection(self, all_signals: bool = False, timeout=DEFAULT_CONNECTION_TIMEOUT) -> None:
        """Wait until every signal is connected (as `ophyd.Device` does), then `check_channel_names`."""
        super().wait_for_connection(all_signals=all_signals, timeout=timeout)
        self.check_channel_names()

    def stage(self):
        """`check_channel_names`, then stage as `ScalerDetector` does (one-shot mode)."""
        self.check_channel_names()
        return super().stage()


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
