"""Simulated beam time: what a scan would cost on a real instrument, without waiting it out."""

from __future__ import annotations

__all__ = ["SimClock"]


class SimClock:
    """A clock in simulated seconds that moves only when the instrument spends time.

    Axes move concurrently: a move books its axis until ``now + duration`` and the next exposure
    starts when every axis has arrived. Exposures (dwell) add to ``now`` directly.

    Attributes
    ----------
    now : float
        Simulated seconds since the clock was made (or last reset).
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._busy_until = 0.0

    def book_move(self, duration: float) -> None:
        """An axis starts a move of ``duration`` seconds now."""
        self._busy_until = max(self._busy_until, self.now + float(duration))

    def wait_for_motion(self) -> None:
        """Advance to the moment every booked move has finished."""
        self.now = max(self.now, self._busy_until)

    def advance(self, seconds: float) -> None:
        """Spend ``seconds`` (an exposure, a readout)."""
        self.now += float(seconds)

    def reset(self) -> None:
        """Back to zero."""
        self.now = 0.0
        self._busy_until = 0.0

    def __repr__(self) -> str:
        return f"SimClock(now={self.now:.3f} s)"
