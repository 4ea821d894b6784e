"""The catalog process: ``python plans/catalog_server.py (--directory DIR | --uri URI)``.

Runs apart from the RunEngine's process and writes the documents it is sent into a tiled catalog
with bluesky-tiled-plugins' `TiledWriter`. With ``--directory`` it also serves a persistent tiled
catalog over DIR on loopback (the embedded default); with ``--uri`` it writes to that server.

Protocol (JSON lines). On stdin: ``["doc", name, doc]``; ``["sync", token]`` (answered once
everything before it is written). On stdout: ``["ready", uri]``, ``["synced", token]``,
``["error", text]``. Events are buffered and written once per batch: when an event of a flush
stream (``steering``) arrives, at a sync, and at the end of the run. The process ends when its
stdin closes, so it never outlives the session that started it. When stdin closes with a run
still open (the session was killed mid-scan), everything received is written and the run is
closed with a stop document of its own (``exit_status="abort"``, `UNCLOSED_REASON`), whose
``num_events`` count what the catalog holds.

It is a separate process because the server's and the writer's Python threads (the server's
SQLite worker polls every few milliseconds) otherwise compete with the RunEngine for the GIL;
it is run as a script so that it imports tiled only, not torch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import uuid

_NO_AUTOMATIC_FLUSH = 1 << 62
UNCLOSED_REASON = "the session running this scan ended before the run was closed; closed by the catalog process"


def _batched_writer(client):
    """A `TiledWriter` whose event buffers are written only when ``flush()`` is called."""
    from bluesky_tiled_plugins import TiledWriter
    from bluesky_tiled_plugins.writing.tiled_writer import _RunWriter

    class BatchedTiledWriter(TiledWriter):
        def __init__(self, client):
            super().__init__(client, batch_size=_NO_AUTOMATIC_FLUSH, normalizer=None)
            self.run_writers = {}

        def _factory(self, name, doc):
            writer = _RunWriter(self.client, batch_size=self._batch_size, max_array_size=self._max_array_size)
            self.run_writers[doc["uid"]] = writer
            return [writer], []

        def __call__(self, name, doc):
            if name == "stop":
                self.run_writers.pop(doc["run_start"], None)
            super().__call__(name, doc)

        def flush(self):
            for writer in self.run_writers.values():
                for stream, rows in writer._internal_data_cache.items():
                    if rows:
                        writer._write_internal_data(rows, desc_node=writer._desc_nodes[stream])
                        rows.clear()

    return BatchedTiledWriter(client)


def _json_object_hook(d: dict):
    """Arrays travel as base64 bytes (the journal's encoding, `plans.storage`)."""
    if "__ndarray__" in d:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(d["__ndarray__"]), dtype=d["dtype"]).reshape(d["shape"])
    return d


def unclosed_stop(run_start: str, num_events: dict[str, int], reason: str = UNCLOSED_REASON) -> dict:
    """The stop document of a run whose session ended before closing it (``exit_status="abort"``)."""
    return {"uid": str(uuid.uuid4()), "run_start": run_start, "time": time.time(), "exit_status": "abort",
            "reason": reason, "num_events": dict(num_events)}


def _close_unfinished(writer, open_runs: dict[str, dict[str, int]]) -> None:
    """Write what was received of runs that never got a stop document, and close them."""
    for run, counts in open_runs.items():
        try:
            writer("stop", unclosed_stop(run, counts))
        except Exception as exc:
            sys.stderr.write(f"could not close run {run}: {type(exc).__name__}: {exc}\n")


def _say(*message) -> None:
    sys.stdout.write(json.dumps(list(message)) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve and/or write until stdin closes."""
    parser = argparse.ArgumentParser(prog="catalog_server.py", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--directory", help="serve a persistent catalog in this directory (created if missing)")
    where.add_argument("--uri", help="write to this tiled server")
    parser.add_argument("--flush-stream", action="append", default=None, help="stream whose events close a batch")
    args = parser.parse_args(argv)
    flush_streams = set(args.flush_stream or ["steering"])
    # Ctrl-C at the terminal reaches the whole foreground process group: it is the RunEngine's to
    # handle (pause), not a reason for the catalog to die. A closed terminal ends the session,
    # whose end this process sees as the end of stdin, and then it finishes its writes.
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the RunEngine's process wins the CPU when both want it

    from tiled.client import from_uri

    server = None
    if args.directory:
        from tiled.server import SimpleTiledServer

        server = SimpleTiledServer(directory=args.directory)
        uri = server.uri
    else:
        uri = args.uri
    try:
        writer = _batched_writer(from_uri(uri))
        flush_descriptors: set[str] = set()
        failed_runs: set[str] = set()
        run_of_descriptor: dict[str, str] = {}
        stream_of_descriptor: dict[str, str] = {}
        open_runs: dict[str, dict[str, int]] = {}  # run uid -> events written per stream
        _say("ready", uri)
        for line in sys.stdin:
            try:
                message = json.loads(line, object_hook=_json_object_hook)
            except ValueError:
                _say("error", f"unreadable message: {line[:200]!r}")
                continue
            if message[0] == "sync":
                try:
                    writer.flush()
                except Exception as exc:
                    _say("error", f"{type(exc).__name__}: {exc}")
                _say("synced", message[1])
                continue
            _, name, doc = message
            run = doc.get("run_start") or (run_of_descriptor.get(doc.get("descriptor")) if name == "event" else None)
            if name == "start":
                run = doc["uid"]
            if run in failed_runs:
                continue
            try:
                writer(name, doc)
                if name == "start":
                    open_runs[run] = {}
                elif name == "stop":
                    open_runs.pop(run, None)
                elif name == "descriptor":
                    run_of_descriptor[doc["uid"]] = doc["run_start"]
                    stream_of_descriptor[doc["uid"]] = doc.get("name", "primary")
                    if doc.get("name") in flush_streams:
                        flush_descriptors.add(doc["uid"])
                elif name == "event":
                    counts = open_runs.get(run)
                    if counts is not None:
                        stream = stream_of_descriptor.get(doc["descriptor"], "primary")
                        counts[stream] = counts.get(stream, 0) + 1
                    if doc["descriptor"] in flush_descriptors:
                        writer.flush()
            except Exception as exc:
                failed_runs.add(run)
                open_runs.pop(run, None)
                _say("error", f"run {run}: {type(exc).__name__}: {exc}")
        _close_unfinished(writer, open_runs)
    finally:
        if server is not None:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
