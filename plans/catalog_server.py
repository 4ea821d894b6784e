"""The catalog process: ``python plans/catalog_server.py (--directory DIR | --uri URI)``.

Runs apart from the RunEngine's process and writes the documents it is sent into a tiled catalog
with bluesky-tiled-plugins' `TiledWriter`. With ``--directory`` it also serves a persistent tiled
catalog over DIR on loopback (the embedded default); with ``--uri`` it writes to that server.

Protocol (JSON lines). On stdin: ``["doc", name, doc]``; ``["sync", token]`` (answered once
everything before it is written). On stdout: ``["ready", uri]``, ``["synced", token]``,
``["error", text]``. Events are held per run and stream and written once per batch: when an event
of a flush stream (``steering``) arrives, at a sync, and at the end of the run. The process ends
when its stdin closes, so it never outlives the session that started it. When stdin closes with a
run still open (the session was killed mid-scan), everything received is written and the run is
closed with a stop document of its own (``exit_status="abort"``, `UNCLOSED_REASON`), whose
``num_events`` count what the catalog holds.

It is a separate process because the server's and the writer's Python threads (the server's
SQLite worker polls every few milliseconds) otherwise compete with the RunEngine for the GIL;
it is run as a script so that it imports tiled only, not torch. Its standard error is the
session's log; at its first message it logs one line, `STARTED`, with the start-up figures as JSON.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

_STARTED_AT = time.perf_counter()

_NO_AUTOMATIC_FLUSH = 1 << 62
UNCLOSED_REASON = "the session running this scan ended before the run was closed; closed by the catalog process"
STARTED = "catalog process started:"
"""Prefix of the log line with the start-up figures: seconds per phase and which heavy modules are loaded."""
_WATCHED_MODULES = ("tiled", "bluesky_tiled_plugins", "dask", "pandas", "duckdb", "torch", "bluesky", "plans")


def unclosed_stop(run_start: str, num_events: dict[str, int], reason: str = UNCLOSED_REASON) -> dict:
    """The stop document of a run whose session ended before closing it (``exit_status="abort"``)."""
    return {"uid": str(uuid.uuid4()), "run_start": run_start, "time": time.time(), "exit_status": "abort",
            "reason": reason, "num_events": dict(num_events)}


def _say(*message) -> None:
    sys.stdout.write(json.dumps(list(message)) + "\n")
    sys.stdout.flush()


def _json_object_hook(d: dict):
    """Arrays travel as base64 bytes (the journal's encoding, `plans.storage`)."""
    if "__ndarray__" in d:
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(d["__ndarray__"]), dtype=d["dtype"]).reshape(d["shape"])
    return d


def _create_catalog_database(database: Path) -> str:
    """Create the SQL catalog of a new directory, as ``tiled catalog init`` does; say how.

    In this process it takes ~0.2 s; tiled's own way, a ``python -m tiled`` process importing all
    of tiled again, took ~2.5 s of the catalog's start. The command line is the fallback should
    tiled move the function.
    """
    try:
        from tiled.commandline._catalog import init
    except ImportError:
        import subprocess

        subprocess.run([sys.executable, "-m", "tiled", "catalog", "init", "--if-not-exists", str(database)],
                       check=True, stdout=subprocess.DEVNULL)
        return "tiled catalog init"
    init(str(database), if_not_exists=True)
    return "in-process"


async def _json_seq_documents(*args):
    """bluesky-tiled-plugins' JSON-seq exporter of a run, imported on first use (with the tiled client: ~0.5 s)."""
    from bluesky_tiled_plugins.exporters import json_seq_exporter

    async for chunk in json_seq_exporter(*args):
        yield chunk


def _serve(directory: Path, phases: dict) -> tuple[str, Callable[[], None]]:
    """Serve a persistent catalog over ``directory`` on loopback; return its URI and a function that stops it.

    The layout is `tiled.server.SimpleTiledServer`'s (``catalog.db``, ``storage.duckdb``, ``data/``,
    ``access.log``, ``error.log``), so directories written by either open in both; unlike it, an
    existing catalog is opened without a catalog-init process, and readiness is uvicorn's own flag,
    not a 0.1 s poll. BlueskyRuns can also be exported as JSON-seq documents (databroker's
    ``header.documents()``, ``run.documents()``).
    """
    import copy
    import secrets
    import threading
    from urllib.parse import quote_plus

    import uvicorn
    from tiled.catalog import from_uri as catalog_from_uri
    from tiled.config import Authentication, StreamingCacheConfig
    from tiled.media_type_registration import default_serialization_registry
    from tiled.server.app import build_app
    from tiled.server.logging_config import LOGGING_CONFIG
    from tiled.utils import ensure_uri

    phases["imports"] = time.perf_counter() - _STARTED_AT
    directory = directory.resolve()
    (directory / "data").mkdir(parents=True, exist_ok=True)
    database = directory / "catalog.db"
    phases["catalog_database"] = "existing"
    if not database.exists():
        phases["catalog_database"] = _create_catalog_database(database)
    log_config = copy.deepcopy(LOGGING_CONFIG)
    for handler, filename in (("access", "access.log"), ("default", "error.log")):
        log_config["handlers"][handler]["class"] = "logging.FileHandler"
        del log_config["handlers"][handler]["stream"]
        log_config["handlers"][handler]["filename"] = str(directory / filename)
    # The storage URIs are recorded with every table and array written: they must stay SimpleTiledServer's.
    # The root's spec says what it holds, as a databroker server's does: clients then look runs up
    # by uid prefix with standard queries (`Catalog.broker`).
    catalog = catalog_from_uri(
        database, writable_storage=[directory / "data", ensure_uri(f"duckdb:///{directory / 'storage.duckdb'}")],
        cache_config=StreamingCacheConfig(uri="memory").model_dump(),
        specs=[{"name": "CatalogOfBlueskyRuns", "version": "3.0"}],
    )
    serializers = copy.deepcopy(default_serialization_registry)
    serializers.register("BlueskyRun", "application/json-seq", _json_seq_documents)
    api_key = secrets.token_hex(8)
    app = build_app(catalog, authentication=Authentication(single_user_api_key=api_key),
                    serialization_registry=serializers)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, loop="asyncio", lifespan="on",
                                           log_config=log_config))
    phases["catalog"] = time.perf_counter() - _STARTED_AT - phases["imports"]
    thread = threading.Thread(target=server.run, name="tiled-server", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            log = (directory / "error.log").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the tiled server stopped while starting; {directory / 'error.log'} ends:\n{log}")
        time.sleep(0.005)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    phases["server"] = time.perf_counter() - _STARTED_AT - phases["imports"] - phases["catalog"]

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=60)

    return f"http://{host}:{port}/api/v1?api_key={quote_plus(api_key)}", stop


def _warm_up(uri: str) -> None:
    """Make the server's first request, while the session sets its client up.

    FastAPI finishes building its routes on the first request (~0.3 s for tiled's); made now, that
    overlaps the session's client set-up instead of following it. Plain `http.client`: nothing to
    set up.
    """
    import http.client
    from urllib.parse import urlsplit

    where = urlsplit(uri)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=30)
    try:
        connection.request("GET", where.path)
        connection.getresponse().read()
    except OSError:
        pass
    finally:
        connection.close()


def _lower_priority() -> None:
    """Background work from now on: the RunEngine's process wins the CPU when both want it.

    Not while the session waits for the server and connects to it: a niced start-up only takes
    longer (seconds more on a loaded machine). On Linux a nice value is per thread, hence each.
    """
    try:
        for task in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(task), 10)
    except (OSError, AttributeError):
        if hasattr(os, "nice"):
            try:
                os.nice(10)
            except OSError:
                pass


def _batch_writer(tiled_writer, start: dict) -> tuple[Callable, Callable[[list[dict]], None]]:
    """The `TiledWriter` callback of one run, and a function that writes event pages in one request.

    bluesky-tiled-plugins (2.0) has no public way to write what it holds: a run's writer writes a
    stream when it holds ``batch_size`` rows, so a page's rows go in one request only when the
    batch size is set to them. One write per point made a scan ~10x slower (measured). The only
    two private names used are here; ``tests/test_catalog_start.py`` fails if they change.
    """
    (run_writer,), _ = tiled_writer._factory("start", start)
    if getattr(run_writer, "_batch_size", None) != _NO_AUTOMATIC_FLUSH:
        sys.stderr.write("bluesky-tiled-plugins changed: runs are written to tiled at their end, not per batch\n")

    def write(pages: list[dict]) -> None:
        run_writer._batch_size = sum(len(page["seq_num"]) for page in pages)
        try:
            for page in pages:
                run_writer("event_page", page)
        finally:
            run_writer._batch_size = _NO_AUTOMATIC_FLUSH

    return run_writer, write


@functools.cache
def _run_batcher():
    """The class that takes one run's documents to tiled, made on first use.

    event_model's import (0.1 s) is then not on the way to the server being ready.
    """
    from event_model import DocumentRouter

    class RunBatcher(DocumentRouter):
        """One run on its way to tiled: its events are held per stream and written once per batch.

        A failure to write stops the run's writing (the journal still holds it); it is reported once.
        """

        def __init__(self, run_writer: Callable, write: Callable[[list[dict]], None], flush_streams: set[str]):
            super().__init__()
            self.run_writer, self.write, self.flush_streams = run_writer, write, flush_streams
            self.uid: str | None = None
            self.closed = self.failed = False
            self.events: dict[str, int] = {}  # received per stream
            self._stream: dict[str, str] = {}  # descriptor uid -> stream
            self._held: dict[str, list[dict]] = {}  # stream -> event pages not written yet

        def __call__(self, name: str, doc: dict, validate: bool = False):
            self.guarded(super().__call__, name, doc, validate)
            return name, doc

        def guarded(self, method: Callable, *args) -> None:
            if self.failed:
                return
            try:
                method(*args)
            except Exception as exc:
                self.failed = True
                _say("error", f"run {self.uid}: {type(exc).__name__}: {exc}")

        def start(self, doc):
            self.uid = doc["uid"]
            self.run_writer("start", doc)

        def descriptor(self, doc):
            self._stream[doc["uid"]] = doc.get("name", "primary")
            self.run_writer("descriptor", doc)

        def event_page(self, doc):
            stream = self._stream[doc["descriptor"]]
            self._held.setdefault(stream, []).append(doc)
            self.events[stream] = self.events.get(stream, 0) + len(doc["seq_num"])
            if stream in self.flush_streams:
                self.flush()

        def flush(self) -> None:
            for pages in self._held.values():
                if pages:
                    self.write(pages)
                    pages.clear()

        def stop(self, doc):
            self.flush()
            self.run_writer("stop", doc)
            self.closed = True

        def resource(self, doc):
            self.run_writer("resource", doc)

        def datum_page(self, doc):
            self.run_writer("datum_page", doc)

        def stream_resource(self, doc):
            self.run_writer("stream_resource", doc)

        def stream_datum(self, doc):
            self.run_writer("stream_datum", doc)

    return RunBatcher


def _write_until_stdin_closes(uri: str, flush_streams: set[str], phases: dict) -> None:
    # Nothing is done before the first message: until then the session is connecting to the server,
    # and would wait for this thread's imports (seconds on a loaded machine once niced).
    first = sys.stdin.readline()
    if not first:
        return
    phases["first_message"] = time.perf_counter() - _STARTED_AT - phases["ready"]
    _lower_priority()
    from bluesky_tiled_plugins import TiledWriter
    from event_model import RunRouter
    from tiled.client import from_uri

    tiled_writer = TiledWriter(from_uri(uri), normalizer=None, batch_size=_NO_AUTOMATIC_FLUSH)
    runs = {}  # start uid -> its RunBatcher, until its stop

    def factory(name, start):
        runs[start["uid"]] = _run_batcher()(*_batch_writer(tiled_writer, start), flush_streams)
        return [runs[start["uid"]]], []

    router = RunRouter([factory])
    phases["writer"] = time.perf_counter() - _STARTED_AT - phases["ready"] - phases["first_message"]
    phases["modules"] = sorted(m for m in _WATCHED_MODULES if m in sys.modules)
    sys.stderr.write(f"{STARTED} {json.dumps(phases)}\n")
    sys.stderr.flush()
    for line in itertools.chain([first], sys.stdin):
        try:
            message = json.loads(line, object_hook=_json_object_hook)
        except ValueError:
            _say("error", f"unreadable message: {line[:200]!r}")
            continue
        if message[0] == "sync":
            for run in runs.values():
                run.guarded(run.flush)
            _say("synced", message[1])
            continue
        _, name, doc = message
        try:
            router(name, doc)
        except Exception as exc:  # a document of a run this process never saw start, or the like
            _say("error", f"{name} document: {type(exc).__name__}: {exc}")
        if name == "stop":
            runs.pop(doc.get("run_start"), None)
    for uid, run in list(runs.items()):
        if not (run.closed or run.failed):
            router("stop", unclosed_stop(uid, run.events))


def main(argv: list[str] | None = None) -> int:
    """Serve and/or write until stdin closes."""
    parser = argparse.ArgumentParser(prog="catalog_server.py", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--directory", help="serve a persistent catalog in this directory (created if missing)")
    where.add_argument("--uri", help="write to this tiled server")
    parser.add_argument("--flush-stream", action="append", default=None, help="stream whose events close a batch")
    args = parser.parse_args(argv)
    # Ctrl-C at the terminal reaches the whole foreground process group: it is the RunEngine's to
    # handle (pause), not a reason for the catalog to die. A closed terminal ends the session,
    # whose end this process sees as the end of stdin, and then it finishes its writes.
    for name in ("SIGINT", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    phases: dict = {}
    stop_server = None
    if args.directory:
        uri, stop_server = _serve(Path(args.directory), phases)
    else:
        uri = args.uri
    try:
        _say("ready", uri)
        phases["ready"] = time.perf_counter() - _STARTED_AT
        if stop_server is not None:
            _warm_up(uri)
        _write_until_stdin_closes(uri, set(args.flush_stream or ["steering"]), phases)
    finally:
        if stop_server is not None:
            stop_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
