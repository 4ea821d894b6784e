"""The catalog process: what it loads to start, how it reports dying at start, how it writes, old directories."""

import json
import re
import time

import pytest
from bluesky import RunEngine
from event_model import compose_run

from plans import Catalog
from plans.catalog_server import STARTED
from sim import SimulatedMicroscope


def _started(directory) -> dict:
    """The start-up figures the catalog process logged last (after the first message it was sent)."""
    lines = [line for line in (directory / "catalog_process.log").read_text().splitlines() if line.startswith(STARTED)]
    assert lines, "the catalog process logged no start-up line"
    return json.loads(lines[-1][len(STARTED):])


def _timed_catalog(directory) -> tuple[Catalog, float]:
    begin = time.perf_counter()
    catalog = Catalog(directory)
    return catalog, time.perf_counter() - begin


def test_the_catalog_process_loads_neither_torch_nor_bluesky_and_creates_its_database_itself(tmp_path):
    seconds = {}
    for opening in ("new", "reopened"):
        catalog, seconds[opening] = _timed_catalog(tmp_path / "cat")
        with catalog:
            assert catalog.writer.wait()  # the first message: the process sets its writer up, then logs
            started = _started(tmp_path / "cat")
        assert not {"torch", "bluesky", "plans"} & set(started["modules"])
        # a new catalog's database is made in the process, not by a `tiled catalog init` process of its own
        assert started["catalog_database"] == ("in-process" if opening == "new" else "existing")
        print(f"\nCatalog() {opening}: {seconds[opening]:.2f} s; catalog process: ready at {started['ready']:.2f} s "
              f"(imports {started['imports']:.2f} s, catalog {started['catalog']:.2f} s, "
              f"server {started['server']:.2f} s), writer {started['writer']:.2f} s later; loaded {started['modules']}")


def test_a_catalog_process_that_dies_at_start_is_reported_at_once_with_its_exit_code_and_log(tmp_path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "catalog.db").write_bytes(b"not an SQLite file " * 100)
    with pytest.raises(RuntimeError) as failure:
        Catalog(tmp_path / "cat", startup_timeout=600)
    message = str(failure.value)
    assert re.search(r"exited with code [1-9]", message), message
    assert "did not start within" not in message
    assert "not a database" in message  # the cause, from the process's log


def test_an_exceeded_startup_timeout_still_says_so(tmp_path):
    with pytest.raises(RuntimeError, match=r"did not start within 0.001 s"):
        Catalog(tmp_path / "cat", startup_timeout=0.001)


def _appends(directory, uid: str, stream: str) -> int:
    """Requests that appended rows to a stream's table, from the server's access log."""
    pattern = re.compile(rf"PATCH /api/v1/table/partition/+{uid}/{stream}/internal\b")
    return sum(1 for line in (directory / "access.log").read_text().splitlines() if pattern.search(line))


def test_events_are_written_to_tiled_once_per_batch(tmp_path):
    """Guards the private names of bluesky-tiled-plugins used by `plans.catalog_server._batch_writer`."""
    run = compose_run(metadata={"plan_name": "by_hand"})
    uid = run.start_doc["uid"]
    number = {"dtype": "number", "shape": [], "source": "sim"}
    primary = run.compose_descriptor(name="primary", data_keys={"det": number})
    steering = run.compose_descriptor(name="steering", data_keys={"batch": number})

    def point(value):
        return "event", primary.compose_event(data={"det": float(value)}, timestamps={"det": time.time()})

    with Catalog(tmp_path / "cat") as catalog:
        documents = [("start", run.start_doc), ("descriptor", primary.descriptor_doc),
                     ("descriptor", steering.descriptor_doc), *(point(v) for v in range(5)),
                     ("event", steering.compose_event(data={"batch": 1}, timestamps={"batch": time.time()}))]
        for name, doc in documents:
            catalog.writer(name, doc)
        assert catalog.writer.wait()
        assert len(catalog.client[uid]["primary"].read()["det"]) == 5  # written before the run ends
        for name, doc in [point(v) for v in range(5, 8)] + [("stop", run.compose_stop())]:
            catalog.writer(name, doc)
        assert not catalog.writer.errors_
        assert list(catalog.client[uid]["primary"].read()["det"]) == list(range(8))
    # the batch of five points in one request, the three left at the end in another; the steering event in one
    assert _appends(tmp_path / "cat", uid, "primary") == 2
    assert _appends(tmp_path / "cat", uid, "steering") == 1


def test_a_directory_written_by_simple_tiled_server_opens_and_reads(tmp_path):
    import bluesky.plans as bp
    from bluesky_tiled_plugins import TiledWriter
    from tiled.client import from_uri
    from tiled.server import SimpleTiledServer

    scope = SimulatedMicroscope(_image(), name="sim")
    server = SimpleTiledServer(directory=tmp_path / "old")
    try:
        RE = RunEngine({})
        RE.subscribe(TiledWriter(from_uri(server.uri)))
        (uid,) = RE(bp.grid_scan([scope.det], scope.y, 0, 3, 4, scope.x, 0, 3, 4))
    finally:
        server.close()
    with Catalog(tmp_path / "old") as catalog:
        data = catalog.client[uid]["primary"].read()
        assert len(data["sim_det"]) == 16
        assert catalog.broker[uid].start["plan_name"] == "grid_scan"
        RE = RunEngine({})
        RE.subscribe(catalog.writer)
        (again,) = RE(bp.count([scope.det], 3))  # and takes new runs
        assert len(catalog.client[again]["primary"].read()["sim_det"]) == 3


def _image():
    import numpy as np

    return np.arange(16, dtype=float).reshape(4, 4)
