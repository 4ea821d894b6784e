"""Where scans are stored: an append-only journal on local disk, then a tiled catalog, batch by batch.

Every document goes to the journal (one JSON line, flushed to the operating system) before the
RunEngine moves on, so a crash of this process loses nothing measured. The catalog is written by
bluesky-tiled-plugins' `TiledWriter` in a separate process (`plans/catalog_server.py`), once per
sampler batch (at each event of the ``steering`` stream) and at the end of the run: one round trip
per batch instead of one per point, and nothing on the RunEngine's side beyond a JSON line. The
embedded default is a persistent tiled server on loopback over a directory; a facility's tiled
server is a URI away (`Catalog`). `Catalog.broker` reads the catalog through databroker's v1 API.
"""

from __future__ import annotations

import atexit
import base64
import functools
import json
import logging
import operator
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

import numpy as np

from plans.streams import STEERING_STREAM

if TYPE_CHECKING:
    from databroker.v1 import Broker

__all__ = ["DocumentJournal", "CatalogWriter", "Catalog", "replay_journal", "read_journal", "journal_in_use",
           "find_run"]

logger = logging.getLogger(__name__)

# the catalogs this process has opened, oldest first: where `find_run` looks a uid up
_opened: list[Catalog] = []

def _json_default(obj: Any):
    if isinstance(obj, np.ndarray):
        # Binary, not a list of numbers: a 128x128 map costs ~30 ms as JSON numbers, ~0.1 ms so.
        data = np.ascontiguousarray(obj)
        return {"__ndarray__": base64.b64encode(data.tobytes()).decode("ascii"), "dtype": data.dtype.str,
                "shape": list(data.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot store {type(obj).__name__} in the journal")


class DocumentJournal:
    """Append every document of every run to ``{directory}/{start uid}.jsonl``.

    Each line is ``[name, doc]`` in JSON, numpy arrays as ``{"__ndarray__": base64 bytes, "dtype",
    "shape"}`` (`replay_journal` restores them). Lines are flushed to the operating system at once (they survive
    a crash of this process) and fsync'ed to the disk at each batch boundary and at the end of
    the run (they survive a power cut too).

    While a run is open, its journal file is locked (``flock``); the lock goes with the process, so
    `journal_in_use` tells a journal still being written from one whose session died.

    Parameters
    ----------
    directory : path
        Created if missing.
    sync_streams : tuple of str
        Streams whose events mark a batch boundary.
    """

    def __init__(self, directory: str | Path, *, sync_streams: tuple[str, ...] = (STEERING_STREAM,)):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sync_streams = tuple(sync_streams)
        self._files: dict[str, Any] = {}
        self._run_of_descriptor: dict[str, str] = {}
        self._sync_descriptors: set[str] = set()

    def path(self, run_uid: str) -> Path:
        """Journal file of a run."""
        return self.directory / f"{run_uid}.jsonl"

    def __call__(self, name: str, doc: dict) -> str:
        """Journal one document; return its line (``[name, doc]`` as JSON)."""
        line = json.dumps([name, doc], default=_json_default)
        if name == "start":
            run_uid = doc["uid"]
            self._files[run_uid] = open(self.path(run_uid), "a", encoding="utf-8")  # noqa: SIM115
            _hold(self._files[run_uid])
        elif name == "descriptor":
            run_uid = doc["run_start"]
            self._run_of_descriptor[doc["uid"]] = run_uid
            if doc.get("name") in self.sync_streams:
                self._sync_descriptors.add(doc["uid"])
        elif name in ("event", "event_page"):
            run_uid = self._run_of_descriptor.get(doc["descriptor"])
        elif name == "stop":
            run_uid = doc["run_start"]
        else:
            run_uid = doc.get("run_start") or next(reversed(self._files), None)
        f = self._files.get(run_uid)
        if f is None:
            logger.warning("journal: %s document for an unknown run; not journaled", name)
            return line
        f.write(line + "\n")
        f.flush()
        if name == "stop":
            os.fsync(f.fileno())
            f.close()
            del self._files[run_uid]
        elif name == "event" and doc["descriptor"] in self._sync_descriptors:
            os.fsync(f.fileno())
        return line

    def close(self) -> None:
        """Sync and close the files of runs that never ended."""
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())
            f.close()
        self._files.clear()


def _hold(f) -> None:
    """Lock an open journal file for as long as it is open (and this process lives)."""
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:  # a file system without locks: recover() falls back on the file's age
            logger.debug("journal: cannot lock %s: %s", f.name, exc)


def journal_in_use(path: str | Path, *, quiet_for: float = 60.0) -> bool:
    """Whether a journal file is being written by a live session (this one or another).

    A session holds a lock on the journal of each run it has open; the operating system drops it
    when the session ends, however it ends (``kill -9`` included). Where the file system cannot
    lock (or on Windows), a journal written to in the last ``quiet_for`` seconds counts as in use.
    """
    if fcntl is not None:
        try:
            with open(path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        except OSError:
            pass
    return time.time() - Path(path).stat().st_mtime < quiet_for


def _json_object_hook(d: dict):
    if "__ndarray__" in d:
        return np.frombuffer(base64.b64decode(d["__ndarray__"]), dtype=d["dtype"]).reshape(d["shape"])
    return d


def read_journal(path: str | Path):
    """Yield the ``(name, doc)`` pairs of a journal file in order; a line cut short by a crash is skipped."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                name, doc = json.loads(line, object_hook=_json_object_hook)
            except ValueError:
                logger.warning("journal %s: skipping an incomplete line", path)
                continue
            yield name, doc


def replay_journal(path: str | Path, callback) -> int:
    """Send the documents of a journal file to ``callback(name, doc)`` (e.g. a `CatalogWriter`).

    Returns the number of documents sent. A last line cut short by a crash is skipped. To put a
    run back into a catalog that holds part of it, use `Catalog.recover`.
    """
    n = 0
    for name, doc in read_journal(path):
        callback(name, doc)
        n += 1
    return n


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {k: int(v) for k, v in counts.items() if v}


def _journal_summary(path: Path) -> tuple[str | None, dict[str, int], dict | None]:
    """(run uid, events per stream, stop document or None) of a journal file."""
    uid, stop = None, None
    streams: dict[str, str] = {}
    counts: dict[str, int] = {}
    for name, doc in read_journal(path):
        if name == "start":
            uid = doc["uid"]
        elif name == "descriptor":
            streams[doc["uid"]] = doc.get("name", "primary")
        elif name in ("event", "event_page"):
            stream = streams.get(doc["descriptor"], "primary")
            counts[stream] = counts.get(stream, 0) + (1 if name == "event" else len(doc["seq_num"]))
        elif name == "stop":
            stop = doc
    return uid, counts, stop


class CatalogWriter:
    """Bluesky callback: journal each document, then pass it to the catalog process.

    The catalog process (`plans/catalog_server.py`) writes events to tiled once per batch; the
    RunEngine only pays for a JSON line and two small writes per document. At the end of each
    run it waits until the catalog holds the whole run.

    Parameters
    ----------
    process : subprocess.Popen
        The running catalog process (stdin and stdout pipes).
    journal : DocumentJournal or None
        Where documents land first. None: no journal (not recommended).

    Attributes
    ----------
    errors_ : list of str
        Catalog write failures reported by the catalog process (the journal still holds those
        documents; see `replay_journal`).
    """

    def __init__(self, process: subprocess.Popen, *, journal: DocumentJournal | None = None):
        self.process = process
        self.journal = journal
        self.errors_: list[str] = []
        self._synced: dict[str, threading.Event] = {}
        self._broken = False
        self._closing = False
        self._reader = threading.Thread(target=self._read_replies, name="catalog-replies", daemon=True)
        self._reader.start()

    def __call__(self, name: str, doc: dict) -> None:
        line = self.journal(name, doc) if self.journal is not None else json.dumps([name, doc], default=_json_default)
        self._send('["doc", ' + line[1:])
        if name == "stop":
            self.wait()

    def send_unjournaled(self, name: str, doc: dict) -> None:
        """Pass a document to the catalog without journaling it (for replaying a journal)."""
        self._send(json.dumps(["doc", name, doc], default=_json_default))

    def _send(self, text: str) -> bool:
        if self._broken:
            return False
        try:
            self.process.stdin.write(text.encode() + b"\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError) as exc:
            self._broken = True
            self.errors_.append(f"catalog process gone ({exc}); documents are in the journal only")
            logger.error(self.errors_[-1])
            return False

    def _read_replies(self) -> None:
        for raw in self.process.stdout:
            try:
                kind, text = json.loads(raw)
            except ValueError:
                continue
            if kind == "synced" and text in self._synced:
                self._synced[text].set()
            elif kind == "error":
                self.errors_.append(text)
                logger.error("catalog write failed: %s", text)
        if not self._closing:
            self.errors_.append("catalog process ended unexpectedly; documents are in the journal only")
            logger.error(self.errors_[-1])
        self._broken = True
        for event in self._synced.values():
            event.set()

    def wait(self, timeout: float = 120.0) -> bool:
        """Block until the catalog holds everything sent so far; False if it could not be confirmed."""
        token = uuid.uuid4().hex
        done = self._synced[token] = threading.Event()
        try:
            if not self._send(json.dumps(["sync", token])):
                return False
            if not done.wait(timeout):
                logger.error("catalog did not confirm its writes within %s s", timeout)
                return False
            return not self._broken
        finally:
            self._synced.pop(token, None)


class Catalog:
    """Where `smart_scan` runs are stored: a persistent local tiled catalog, or a tiled server.

    With a directory, a tiled server over it (SQL catalog and data files) runs on loopback in a
    child process that also writes the runs and ends with this session; runs written there survive
    the session (opening the same directory again finds them). With an ``http(s)://`` URI, runs
    go to that server (a facility's tiled or databroker 2 service) through the same child process.
    Either way every document is journaled on local disk first. Use it as a context manager, or
    call `close`; it is also closed when the interpreter exits. It starts in about 3 s on an idle
    machine (the child process's imports of tiled's server are most of it), and says at once if
    the child process exits before it is ready, with its exit code and the end of its log
    (``catalog_process.log`` beside the journal).

    Parameters
    ----------
    location : path or str
        A directory (embedded catalog) or a tiled server URI (with ``?api_key=...`` if needed).
    journal_directory : path, optional
        Where the journal lives. Default: ``{directory}/journal`` for the embedded catalog,
        ``~/.smart_scan/journal`` for a server.
    startup_timeout : float
        Seconds to wait for the catalog process to be ready.

    Attributes
    ----------
    client : tiled client
        The catalog: ``client[uid]`` (or ``client.values().last()``) is a stored run.
    writer : CatalogWriter
        The callback to subscribe: ``RE.subscribe(catalog.writer)``.
    uri : str
        The server's URI (with its API key for the embedded one).
    broker : databroker.v1.Broker
        The same catalog through databroker's v1 API (see `broker`).
    """

    def __init__(self, location: str | Path, *, journal_directory: str | Path | None = None,
                 startup_timeout: float = 60.0):
        text = str(location)
        if text.startswith(("http://", "https://")):
            self.directory = None
            target = ["--uri", text]
            default_journal = Path.home() / ".smart_scan" / "journal"
            log_path = Path(default_journal).parent / "catalog_process.log"
        else:
            self.directory = Path(location).expanduser().resolve()
            target = ["--directory", str(self.directory)]
            default_journal = self.directory / "journal"
            log_path = self.directory / "catalog_process.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._broker = None
        self._process = self._spawn(target, log_path)
        try:
            # while the catalog process starts: tiled's client, and the client class of the catalog's
            # root (CatalogOfBlueskyRuns), which from_uri would otherwise import after the process is ready
            from bluesky_tiled_plugins.clients.catalog_of_bluesky_runs import CatalogOfBlueskyRuns  # noqa: F401
            from tiled.client import from_uri

            self.uri = self._wait_until_ready(log_path, startup_timeout)
            self.client = from_uri(self.uri)
        except BaseException:
            self._process.kill()
            self._process.wait()
            self._process.stdin.close()
            self._process.stdout.close()
            raise
        self.journal = DocumentJournal(journal_directory or default_journal)
        self.writer = CatalogWriter(self._process, journal=self.journal)
        self._closed = False
        _opened.append(self)
        atexit.register(self.close)

    def _spawn(self, target: list[str], log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            self._log_path, self._log_start = log_path, log.tell()
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).with_name("catalog_server.py")), *target],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            )
        if hasattr(fcntl, "F_SETPIPE_SZ"):  # Linux: room for ~3000 events while the catalog writes a batch
            try:
                fcntl.fcntl(process.stdin.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
            except OSError:
                pass
        return process

    def _wait_until_ready(self, log_path: Path, timeout: float) -> str:
        """The server URI from the catalog process's first line; an error at once if it exits first."""
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: lines.put(self._process.stdout.readline()), daemon=True).start()
        try:
            first = lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"the catalog process did not start within {timeout} s; its log ({log_path}):\n"
                               f"{self._log_tail()}") from None
        try:
            kind, uri = json.loads(first)
        except ValueError:
            kind = uri = None
        if kind == "ready":
            return uri
        try:  # its standard output closed: it exited, or is about to
            code = self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        said = f"; it said {first[:200]!r}" if first else ""
        raise RuntimeError(f"the catalog process exited with code {code} before it was ready{said}; "
                           f"its log ({log_path}):\n{self._log_tail()}")

    def _log_tail(self, chars: int = 3000) -> str:
        """What the catalog process wrote to its log in this session (the end of it)."""
        with open(self._log_path, "rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")[-chars:]

    @property
    def broker(self) -> Broker:
        """The catalog through databroker's v1 API: ``db = catalog.broker; db[-1].table()``.

        A ``databroker.v1.Broker`` over ``client`` (made on first use: databroker's import takes a
        second). ``db[-1]``, ``db[uid]`` (or a unique uid prefix, or a scan_id) give a ``Header``
        with ``.start``, ``.stop``, ``.table(stream)``, ``.documents()``; ``db(plan_name=...)``
        and ``db(since=..., until=...)`` search. Needs databroker's back-compat extra
        (``pip install "databroker[back-compat]"``).
        """
        if self._broker is None:
            from bluesky_tiled_plugins.clients.catalog_of_bluesky_runs import CatalogOfBlueskyRuns

            try:
                import databroker.v1  # noqa: F401
            except ModuleNotFoundError as exc:
                raise ImportError(f"Catalog.broker needs databroker's back-compat extra ({exc}): "
                                  f"pip install 'databroker[back-compat]'") from exc
            from tiled.utils import OneShotCachedMap

            # bluesky-tiled-plugins' run.v2, which databroker's Header uses, changes the client classes
            # of a copy.copy of this map, which shares the original's dict: with the session's map,
            # every tiled client of the session would then read runs as v2. It changes a map of ours.
            shared = self.client.structure_clients
            own = OneShotCachedMap({name: functools.partial(operator.getitem, shared, name) for name in shared})
            runs = CatalogOfBlueskyRuns(self.client.context, item=self.client.item, structure_clients=own)
            self._broker = runs.v1
        return self._broker

    def recover(self, uids: list[str] | None = None, *, quiet_for: float = 60.0) -> dict[str, str]:
        """Make the catalog hold every run of the journal completely (after a crash or a kill).

        The journal holds every document the RunEngine emitted before the session died; the catalog
        may lack the events since its last batch write (if its process died too) and the run's stop
        document. For each run, this compares the two and, where the catalog holds less, writes the
        run again from the journal (a partial copy is deleted first). A run the journal never closed
        gets a stop document with ``exit_status="abort"`` and a reason saying so. Afterwards
        ``resume_from=catalog.client[uid]`` continues the scan.

        A journal that a live session is still writing (this one, or another on this machine: see
        `journal_in_use`) is left alone, with a warning, and reported as ``"in use"``; a session
        killed a moment ago holds none, so ``recover()`` right after a ``kill -9`` recovers its run.

        Parameters
        ----------
        uids : list of str, optional
            Runs to check. Default: every run in the journal directory.
        quiet_for : float
            Where journals cannot be locked (a file system without locks), one written to in the
            last ``quiet_for`` seconds counts as in use.

        Returns
        -------
        dict
            Run uid -> what was done: ``"complete"`` (nothing to do), ``"written"`` (the catalog
            lacked the run), ``"rewritten"`` (the catalog held part of it), ``"closed"`` (only the
            stop document was missing), ``"in use"`` (skipped: a live session is writing it).
        """
        from plans.catalog_server import UNCLOSED_REASON, unclosed_stop

        if uids is None:
            paths = sorted(self.journal.directory.glob("*.jsonl"))
        else:
            paths = [self.journal.path(uid) for uid in uids]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise ValueError(f"uids: no journal for {missing}")
        done: dict[str, str] = {}
        in_use = [p for p in paths if journal_in_use(p, quiet_for=quiet_for)]
        for path in in_use:
            done[path.stem] = "in use"
            logger.warning("catalog.recover: skipped %s: a live session is still writing it (end that session, "
                           "or let its run finish, then recover again)", path)
        paths = [p for p in paths if p not in in_use]
        for path in paths:
            uid, counts, stop = _journal_summary(path)
            if uid is None:
                logger.warning("journal %s holds no start document; skipped", path)
                continue
            closing = stop or unclosed_stop(uid, counts, "recovered from the journal: " + UNCLOSED_REASON)
            try:
                run = self.client[uid]
            except KeyError:
                run = None
            held = (run.metadata.get("stop") or {}) if run is not None else None
            if held and _nonzero(held.get("num_events") or {}) == _nonzero(counts):
                done[uid] = "complete"
                continue
            events_held = self._events_held(run) if run is not None and not held else None
            if events_held is not None and _nonzero(events_held) == _nonzero(counts):
                self.writer.wait()
                run.update_metadata(metadata={"stop": closing}, drop_revision=True)
                done[uid] = "closed"
                continue
            if run is not None:
                run.delete(recursive=True, external_only=False)
            errors = len(self.writer.errors_)
            for name, doc in read_journal(path):
                self.writer.send_unjournaled(name, doc)
            if stop is None:
                self.writer.send_unjournaled("stop", closing)
            if not self.writer.wait() or len(self.writer.errors_) > errors:
                raise RuntimeError(f"run {uid}: the catalog did not confirm the rewrite: "
                                   f"{self.writer.errors_[errors:] or self.writer.errors_[-1:]}")
            done[uid] = "written" if run is None else "rewritten"
            logger.info("catalog: run %s %s from the journal %s", uid, done[uid], path)
        return done

    @staticmethod
    def _events_held(run) -> dict[str, int] | None:
        """Events per stream that the catalog holds of a run; None where a write was cut short.

        A catalog process killed between a stream's arrays and its table leaves them of different
        lengths, which tiled then refuses to read.
        """
        try:
            return {stream: run[stream].read().sizes.get("time", 0) for stream in run}
        except (ValueError, KeyError):
            return None

    def close(self) -> None:
        """Finish pending writes and stop the catalog process (and the embedded server)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.writer.wait()
            self.journal.close()
        finally:
            self.writer._closing = True
            try:
                self._process.stdin.close()
            except OSError:
                pass
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self.writer._reader.join(timeout=5)
            if not self.writer._reader.is_alive():
                self._process.stdout.close()

    def run(self, uid: str):
        """The stored run ``uid`` (a full uid, or a unique prefix of one), once every pending write is done.

        Raises
        ------
        KeyError
            The catalog holds no such run.
        """
        self.writer.wait()
        return self.client[uid]

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.directory if self.directory is not None else self.uri.split("?")[0]
        return f"Catalog({str(where)!r})"


def find_run(uid: str):
    """The stored run ``uid`` in the catalogs this process opened (`Catalog`), newest catalog first.

    What ``smart_scan(..., resume_from=uid)`` uses, so that a run can be named by its uid alone (as a
    queue server sends it).

    Raises
    ------
    ValueError
        No open catalog holds the run (the message lists the catalogs searched).
    """
    open_now = [c for c in reversed(_opened) if not c._closed]
    for catalog in open_now:
        try:
            return catalog.run(uid)
        except KeyError:
            continue
    where = ", ".join(repr(c) for c in open_now) or "none is open in this session"
    raise ValueError(f"no run {uid!r} in the catalogs of this session ({where})")
