"""The catalog: persistence, a server reached by URI, stop criteria from a file, a dead catalog process."""

import json

import numpy as np
import pytest
from bluesky import RunEngine

from plans import Catalog, read_scan, replay_journal, smart_scan
from sim import SimulatedMicroscope


def _small_scan(blobs, **sampler):
    scope = SimulatedMicroscope(blobs[:24, :24], name="sim")
    return smart_scan([scope.det], scope.y, 0, 23, 24, scope.x, 0, 23, 24, sampler={"seed": 0, **sampler})


def test_runs_survive_reopening_the_catalog_directory(blobs, tmp_path):
    with Catalog(tmp_path / "cat") as cat:
        RE = RunEngine({})
        RE.subscribe(cat.writer)
        (uid,) = RE(_small_scan(blobs, stop={"max_fraction": 0.1}))
    with Catalog(tmp_path / "cat") as again:
        assert len(read_scan(again.client[uid]).points) == round(0.1 * 24 * 24)


def test_a_server_uri_and_stop_criteria_from_a_json_file(blobs, catalog, tmp_path):
    stop_file = tmp_path / "stop.json"
    stop_file.write_text(json.dumps({"max_points": 40}))
    with Catalog(catalog.uri, journal_directory=tmp_path / "journal") as remote:
        RE = RunEngine({})
        RE.subscribe(remote.writer)
        (uid,) = RE(_small_scan(blobs, stop=str(stop_file)))
        assert remote.journal.path(uid).is_file()
    run = catalog.client[uid]  # written through the URI, read through the embedded catalog
    assert len(read_scan(run).points) == 40
    assert run.metadata["start"]["sampler"]["stop"]["max_points"] == 40


def test_a_dead_catalog_process_loses_nothing_measured(blobs, tmp_path):
    cat = Catalog(tmp_path / "cat")
    cat._process.kill()
    cat._process.wait()
    RE = RunEngine({})
    RE.subscribe(cat.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    (uid,) = RE(_small_scan(blobs, stop={"max_fraction": 0.1}))  # the scan itself goes on
    assert cat.writer.errors_ and cat.writer.wait(timeout=5) is False
    replayed = []
    replay_journal(cat.journal.path(uid), lambda name, doc: replayed.append((name, doc)))
    assert len(replayed) == len(docs)
    values = [d["data"]["sim_det"] for name, d in replayed if name == "event" and "sim_det" in d["data"]]
    assert len(values) == round(0.1 * 24 * 24) and np.all(np.isfinite(values))
    cat.close()


def test_a_raster_scan_in_the_catalog_is_a_tuning_reference(catalog, blobs):
    import bluesky.plans as bp

    from plans import read_raster
    from steering.tools.tune import tune

    image = blobs[:24, :24]
    scope = SimulatedMicroscope(image, name="sim")
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    (uid,) = RE(bp.grid_scan([scope.det], scope.y, 0, 23, 24, scope.x, 0, 23, 24, snake_axes=True))
    assert catalog.writer.wait()
    raster = read_raster(catalog.client[uid])
    np.testing.assert_array_equal(raster, image)
    result = tune({uid: raster}, metric="psnr", target=25.0, cap=0.8, progress=False)
    assert result.targets[uid] is not None and 0.02 <= result.targets[uid] <= 0.8
    # a smart scan is not a full raster
    (smart,) = RE(smart_scan([scope.det], scope.y, 0, 23, 24, scope.x, 0, 23, 24))
    assert catalog.writer.wait()
    with pytest.raises(ValueError, match="unmeasured"):
        read_raster(catalog.client[smart])


def test_the_catalog_through_databroker_v1(catalog, blobs):
    import bluesky.plans as bp

    scope = SimulatedMicroscope(blobs[:24, :24], name="sim")
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    RE(bp.count([scope.det]))  # another run: a uid prefix must find one run among several
    (uid,) = RE(smart_scan([scope.det], scope.y, 0, 23, 24, scope.x, 0, 23, 24,
                           sampler={"seed": 0, "stop": {"max_fraction": 0.1}}))
    run_class = type(catalog.client[uid])
    db = catalog.broker
    assert catalog.broker is db
    header = db[-1]
    assert header.start["uid"] == uid and header.start["plan_name"] == "smart_scan"
    assert header.stop["exit_status"] == "success"
    table = header.table()  # one row per point, every detector and motor column
    assert len(table) == header.stop["num_events"]["primary"] == round(0.1 * 24 * 24)
    assert {"sim_det", "sim_y", "sim_x", "time"} <= set(table.columns)
    assert len(header.table("steering")) == header.stop["num_events"]["steering"]
    assert set(header.stream_names) >= {"primary", "steering"}
    assert db[uid].start["uid"] == db[uid[:8]].start["uid"] == uid
    assert uid in [h.start["uid"] for h in db(plan_name="smart_scan")]
    assert uid in [h.start["uid"] for h in db(since="2020-01-01")]
    assert db[header.start["scan_id"]].start["uid"] == uid
    assert list(header.data("sim_det")) == list(table["sim_det"])
    names = [name for name, _ in header.documents()]  # needs the server's JSON-seq exporter
    assert names[0] == "start" and names[-1] == "stop"
    assert names.count("event") == sum(header.stop["num_events"].values())
    assert type(catalog.client[uid]) is run_class  # using the broker changes no other client of the session


def test_recover_closes_a_run_held_whole_and_rewrites_one_whose_write_was_cut_short(tmp_path):
    """A catalog process killed between a stream's arrays and its table leaves a run tiled refuses to read."""
    from event_model import compose_run

    cat = Catalog(tmp_path / "cat")
    uids = []
    for _ in range(2):
        run = compose_run()
        maps = run.compose_descriptor(name="maps", data_keys={"img": {"dtype": "array", "shape": [4, 6], "source": "s"},
                                                              "n": {"dtype": "number", "shape": [], "source": "s"}})
        cat.writer("start", run.start_doc)
        cat.writer("descriptor", maps.descriptor_doc)
        for n in range(3):
            data = {"img": np.full((4, 6), n), "n": n}
            cat.writer("event", maps.compose_event(data=data, timestamps={"img": 0, "n": 0}))
        uids.append(run.start_doc["uid"])
    assert cat.writer.wait()  # the catalog holds both runs, without their stop documents
    cat._process.kill()
    cat._process.wait()
    cat.close()
    whole, cut = uids
    with Catalog(tmp_path / "cat") as again:
        img = again.client[cut]["maps"].base["img"]
        # as if killed after the arrays were written, before the table: one more array row than table rows
        img.patch(np.zeros((1, 4, 6), dtype=img.dtype), offset=img.shape[:1], extend=True)
        assert again.recover(quiet_for=0) == {whole: "closed", cut: "rewritten"}
        for uid in uids:
            run = again.client[uid]
            assert run.metadata["stop"]["exit_status"] == "abort"
            assert list(run["maps"].read()["n"]) == [0, 1, 2]
