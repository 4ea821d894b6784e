"""What a scan does when a point cannot be measured: retry it, skip it, or end the run.

`FailurePolicy` is plain Python, so every rule in it is tested without a RunEngine: the plan asks it
how often to try a point, tells it how each point went, and asks which pixels the sampler should
no longer be sent to.
"""

from __future__ import annotations

import logging

import numpy as np

from plans.arguments import whole_number

__all__ = ["FailurePolicy", "InstrumentDown"]

logger = logging.getLogger("plans.smart_scan")


class InstrumentDown(RuntimeError):
    """Too many points in a row, or whole batches, could not be measured: the instrument looks down."""


class FailurePolicy:
    """Retries, skips and the end of a scan whose points fail.

    Parameters
    ----------
    retries : int
        How many times a point is tried again after its move fails, its detector raises or times
        out, or its value is NaN/inf. A point that failed before gets one try when asked again. A
        target beyond a motor's limits is never retried.
    on_failure : {"skip", "stop"}
        After the retries: ``"skip"`` records the point as failed and goes on; ``"stop"`` ends the
        run (a RuntimeError naming the point and the fault).
    max_in_a_row : int
        This many failed points in a row (limits aside) end the run (`InstrumentDown`).
    max_idle_batches : int
        This many batches in a row without one measured point end the run (`InstrumentDown`); so
        does a first batch of which no point could be measured (however few points it had: a
        detector that never returns a value must not end the scan as a success).

    Attributes
    ----------
    failures_ : dict
        (row, col) -> how often the point failed (a limit counts 2: never asked again).
    """

    def __init__(self, retries: int = 2, on_failure: str = "skip", *, max_in_a_row: int = 10,
                 max_idle_batches: int = 3):
        retries = whole_number("retries", retries, 0)
        if not isinstance(on_failure, str) or on_failure not in ("skip", "stop"):
            raise ValueError(f"on_failure must be 'skip' or 'stop', got {on_failure!r}")
        self.retries = int(retries)
        self.on_failure = on_failure
        self.max_in_a_row = int(max_in_a_row)
        self.max_idle_batches = int(max_idle_batches)
        self.failures_: dict[tuple[int, int], int] = {}
        self._in_a_row = 0
        self._idle_batches = 0
        self._limits_hit = False
        self._last_fault = "none"
        self._measured = 0
        self._failed_in_batch = 0

    def tries(self, pixel: tuple[int, int]) -> int:
        """How many times to try ``pixel`` now."""
        return 1 if self.failures_.get(pixel, 0) else self.retries + 1

    def point_done(self, pixel: tuple[int, int], value: float, problems: list[str], *, beyond_limits: bool = False,
                   label: str = "") -> None:
        """Account for one point: its value (NaN: failed; with several channels, NaN in all of them), the faults
        met on the way, whether a limit refused it.

        Raises
        ------
        InstrumentDown
            At ``max_in_a_row`` failed points in a row (points beyond a limit do not count).
        RuntimeError
            With ``on_failure="stop"``, when the point failed.
        """
        if problems:
            self._last_fault = problems[-1]
        if np.isfinite(value).any():  # with several channels, a value in one of them measures the point
            self._in_a_row = 0
            self._measured += 1
            return
        self.failures_[pixel] = self.failures_.get(pixel, 0) + (2 if beyond_limits else 1)
        self._limits_hit |= beyond_limits
        self._in_a_row += not beyond_limits
        self._failed_in_batch += not beyond_limits
        if self._in_a_row >= self.max_in_a_row:
            raise InstrumentDown(f"{self.max_in_a_row} points in a row could not be measured (the instrument "
                                 f"looks down); last fault: {self._last_fault}")
        where = label or f"point {pixel}"
        if self.on_failure == "stop":
            raise RuntimeError(f"{where} failed {len(problems)} times; last: {problems[-1] if problems else 'none'}")
        logger.warning("smart_scan: %s recorded as failed: %s", where, "; ".join(problems))

    def batch_done(self, values: np.ndarray) -> None:
        """Account for a whole batch; raise `InstrumentDown` after ``max_idle_batches`` without a measured point,
        or after a batch if no point of the scan could be measured yet."""
        failed, self._failed_in_batch = self._failed_in_batch, 0
        if not self._measured and failed:
            raise InstrumentDown(f"none of the {failed} points this scan has tried could be measured (each "
                                 f"tried {self.retries + 1} times; the instrument looks down); last fault: "
                                 f"{self._last_fault}")
        self._idle_batches = self._idle_batches + 1 if not np.isfinite(values).any() else 0
        if self._idle_batches >= self.max_idle_batches:
            raise InstrumentDown(f"no point of the last {self.max_idle_batches} batches could be measured; "
                                 f"last fault: {self._last_fault}")

    def to_exclude(self, beyond_limits=None) -> list[tuple[int, int]]:
        """Pixels the sampler should no longer ask for: those that failed twice, and, after a limit refused a
        point, every pixel ``beyond_limits()`` returns (the ERD is highest right where nothing is measured)."""
        given_up = [p for p, count in self.failures_.items() if count >= 2]
        if self._limits_hit and beyond_limits is not None:
            self._limits_hit = False
            given_up += [tuple(p) for p in np.asarray(beyond_limits()).tolist()]
        return given_up
