"""The beam time a scan has spent: what ``max_beam_time`` and the ``steering`` stream count."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BeamClock"]


class BeamClock:
    """Beam time of a scan, from an instrument's own clock or from the time the plan spends moving and reading.

    Parameters
    ----------
    clock : callable or signal, optional
        The instrument's beam time in seconds: a callable returning it, or a signal whose ``get()``
        gives it (an ophyd signal, e.g. ``sim.beam_time`` or a facility's beam-time PV; a queue
        server passes it by name). The scan's share is what it advanced since `start`. None: the
        seconds passed to `add`.
    before : float
        Beam time spent by the runs this scan continues.
    """

    def __init__(self, clock: Callable[[], float] | None = None, *, before: float = 0.0):
        if clock is not None and not callable(clock):
            if not callable(getattr(clock, "get", None)):
                raise ValueError(f"beam_clock must be a callable returning seconds or a signal whose get() "
                                 f"returns them, got {clock!r}")
            clock = clock.get
        self.clock = clock
        self.before = float(before)
        self._origin = 0.0
        self._spent = 0.0

    def start(self) -> None:
        """The scan starts now."""
        if self.clock is not None:
            self._origin = float(self.clock())

    def add(self, seconds: float) -> None:
        """Count ``seconds`` the plan spent moving and reading (ignored when a clock is given)."""
        self._spent += seconds

    def now(self) -> float:
        """Beam time spent so far, earlier runs included."""
        return self.before + (self._spent if self.clock is None else float(self.clock()) - self._origin)
