"""A per-batch progress line for `smart_scan` runs."""

from __future__ import annotations

import math
import sys

from plans.streams import STEERING_STREAM, StreamRouter

__all__ = ["BatchProgress"]


class BatchProgress(StreamRouter):
    """Bluesky callback printing one line per sampler batch and the stop reason.

    Parameters
    ----------
    file : text stream
        Where to print (default: stdout).
    every : int
        Print every this many batches (the last one is always printed).
    """

    def __init__(self, file=None, every: int = 1):
        super().__init__()
        self.file = file
        self.every = int(every)
        self._running = False

    def _print(self, text: str) -> None:
        print(text, file=self.file or sys.stdout, flush=True)

    def start(self, doc: dict) -> None:
        self._running = doc.get("plan_name") == "smart_scan"
        if self._running:
            resumed = f", continuing run {doc['resumed_from'][:8]}" if doc.get("resumed_from") else ""
            self._print(f"smart_scan {doc['uid'][:8]}: {doc['shape'][0]}x{doc['shape'][1]} grid, "
                        f"at most {doc.get('num_points')} points, steering on {doc.get('value_field')!r}{resumed}")

    def stream_event(self, stream: str | None, doc: dict) -> None:
        if not self._running or stream != STEERING_STREAM:
            return
        d = doc["data"]
        if d["steering_batch"] % self.every and not d["steering_stop_reason"]:
            return
        parts = [f"batch {d['steering_batch']:4d}",
                 f"{d['steering_n_measured']:7d} points ({100 * d['steering_fraction']:5.1f}%)"]
        for key, label in (("steering_erd_ratio", "ERD ratio"), ("steering_prediction_error", "pred. error")):
            if d.get(key) is not None and not math.isnan(d[key]):
                parts.append(f"{label} {d[key]:.3f}")
        parts.append(f"decision {1e3 * d['steering_decision_time']:6.1f} ms")
        self._print(" | ".join(parts))

    def stop(self, doc: dict) -> None:
        if self._running:
            self._print(f"smart_scan {doc['run_start'][:8]} ended ({doc.get('exit_status')}): {doc.get('reason')}")
            self._running = False
