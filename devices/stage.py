"""A two-axis scan stage of EPICS motor records."""

from __future__ import annotations

from ophyd import Device, EpicsMotor
from ophyd import FormattedComponent as FCpt

__all__ = ["ScanStage"]


class ScanStage(Device):
    """The sample scan stage: a slow (``y``) and a fast (``x``) axis, each an EPICS motor record.

    Parameters
    ----------
    prefix : str
        Common PV prefix of both motors (may be empty).
    y_pv, x_pv : str
        Motor record names after ``prefix`` (the record, without a field: ``"m2"``, not ``"m2.VAL"``).
    name : str
        Device name; the axes read as ``{name}_y`` and ``{name}_x``.

    Examples
    --------
    >>> stage = ScanStage("26idcnpi:", y_pv="m18", x_pv="m17", name="stage")  # doctest: +SKIP
    >>> RE(smart_scan([det], stage.y, -5, 5, 101, stage.x, -5, 5, 101))  # doctest: +SKIP
    """

    y = FCpt(EpicsMotor, "{prefix}{_y_pv}")
    x = FCpt(EpicsMotor, "{prefix}{_x_pv}")

    def __init__(self, prefix: str = "", *, y_pv: str, x_pv: str, name: str, **kwargs):
        for label, pv in (("y_pv", y_pv), ("x_pv", x_pv)):
            if not isinstance(pv, str) or not pv or "." in pv:
                raise ValueError(f"{label} must be a motor record name without a field, got {pv!r}")
        if y_pv == x_pv:
            raise ValueError(f"y_pv and x_pv name the same motor record {prefix + y_pv!r}")
        self._y_pv, self._x_pv = y_pv, x_pv
        super().__init__(prefix, name=name, **kwargs)
