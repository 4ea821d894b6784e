"""The event streams of a `smart_scan` run, and a document router that knows each event's stream.

Only `event_model` is imported here, so any callback (a progress printer, a journal) can use it
without loading bluesky's plans, ophyd or torch.
"""

from __future__ import annotations

from event_model import DocumentRouter

__all__ = ["STEERING_STREAM", "MAPS_STREAM", "FAILURES_STREAM", "StreamRouter"]

STEERING_STREAM = "steering"
"""One event per sampler batch: progress, stop signals and decision times."""
MAPS_STREAM = "steering_maps"
"""The reconstruction and ERD maps, every few batches and at the end."""
FAILURES_STREAM = "steering_failures"
"""One event per point that could not be measured: the pixel, its stage target, the tries and the last fault."""


class StreamRouter(DocumentRouter):
    """An `event_model.DocumentRouter` whose events arrive with the name of their stream.

    Subclasses define `stream_event` (and `start`, `stop`, ... as they need); event pages are
    unpacked into events by `DocumentRouter` itself. A subclass that defines `descriptor` calls
    this class's first.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stream_of: dict[str, str] = {}

    def descriptor(self, doc: dict) -> None:
        """Remember the stream of the descriptor's events."""
        self.stream_of[doc["uid"]] = doc.get("name", "primary")

    def event(self, doc: dict) -> None:
        """Pass the event on to `stream_event` with its stream's name (None for an unknown descriptor)."""
        self.stream_event(self.stream_of.get(doc["descriptor"]), doc)

    def stream_event(self, stream: str | None, doc: dict) -> None:
        """One event of ``stream``; override."""
