"""Keeps a pause or suspension from replaying a point that is already saved, and knows what was saved."""

from __future__ import annotations

from bluesky import Msg
from bluesky.utils import NoReplayAllowed

__all__ = ["ReplayGuard"]


class ReplayGuard:
    """Forbids the RunEngine's replay between a saved event and the next checkpoint.

    On resume the RunEngine replays the messages since the last checkpoint. The plan yields a
    checkpoint right after each event, but a suspension can land between the ``save`` and that
    checkpoint; the replay would then measure the point again and emit it twice. This object
    listens to the run's events and, asked to ``pause`` by the RunEngine while an event is saved
    and not yet followed by a checkpoint, raises `NoReplayAllowed`: the RunEngine then drops its
    replay cache and continues after the save.

    A pause *before* the save (between a detector's read and the event's save, say) cannot be
    refused: the replay moves, triggers and reads again, and the event stored holds the second
    reading, not the one the plan was handed first. So the plan takes a point's value from the event
    that was saved (`saved_data`), which this object keeps for every stream.
    """

    name = "smart_scan_replay_guard"

    def __init__(self) -> None:
        self.saved = False
        self._streams: dict[str, str] = {}
        self._last: dict[str, dict] = {}

    def __call__(self, name: str, doc: dict) -> None:
        if name == "descriptor":
            self._streams[doc["uid"]] = doc.get("name", "primary")
        elif name == "event":
            self.saved = True
            self._last[self._streams.get(doc["descriptor"], "")] = doc["data"]
        elif name == "event_page" and doc["seq_num"]:  # a flyer's collected events
            self.saved = True
            self._last[self._streams.get(doc["descriptor"], "")] = {k: v[-1] for k, v in doc["data"].items()}

    def saved_data(self, stream: str = "primary") -> dict:
        """The data of the last event saved in ``stream`` (empty before the first)."""
        return self._last.get(stream, {})

    def checkpoint(self):
        """A checkpoint (`bps.checkpoint`), after which nothing saved is left to replay."""
        yield Msg("checkpoint")  # not the stub: see plans.flying, which calls this twice a line
        self.saved = False

    def pause(self) -> None:
        """Called by the RunEngine when it pauses; see the class."""
        if self.saved:
            raise NoReplayAllowed()

    def resume(self) -> None:
        """Called by the RunEngine when it resumes; nothing to do."""
