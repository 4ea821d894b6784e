"""smart_scan through bluesky-queueserver: a Redis server and an RE Manager on loopback, the worker
started from examples/queueserver/startup, items with JSON arguments only, runs read back from the
catalog the worker wrote.

Needs ``redis-server`` (Debian's package) and bluesky-queueserver(-api) (the test extra). Where they
are missing the test is skipped, unless ``SMART_SCAN_REQUIRE_SERVICES=1`` (as ``.ci/run`` sets it),
which makes a missing service a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from sim.ioc_process import IOCProcess, free_port

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "queueserver"
GRID = (0, 6.35, 128)  # the startup's simulated microscope: 128x128 pixels of 50 nm
REQUIRED = os.environ.get("SMART_SCAN_REQUIRE_SERVICES") == "1"


def _missing(what: str):
    if REQUIRED:
        pytest.fail(f"{what} (SMART_SCAN_REQUIRE_SERVICES=1)")
    pytest.skip(what)


def _wait_for_port(process: subprocess.Popen, port: int, log: Path, polls: int = 1500) -> None:
    """Until ``process`` listens on ``port`` (polls 0.2 s apart: a guard against a hang, not a time limit)."""
    import socket

    for _ in range(polls):
        if process.poll() is not None:
            raise RuntimeError(f"exited with code {process.returncode}: {log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port} after {polls} polls: {log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def queue_server(tmp_path_factory):
    """Redis, the simulated IOC and an RE Manager (its worker environment open, with the simulated
    microscope and the IOC's EPICS devices) on loopback; yields (API, catalog dir, log, IOC's served log)."""
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        _missing("redis-server is not installed (Debian: apt-get install redis-server)")
    try:
        from bluesky_queueserver_api.zmq import REManagerAPI
    except ImportError:
        _missing("bluesky-queueserver-api is not installed (pip install -e '.[test]')")
    manager = shutil.which("start-re-manager", path=str(Path(sys.executable).parent))
    if manager is None:
        _missing("bluesky-queueserver's start-re-manager is not installed")
    folder = tmp_path_factory.mktemp("queueserver")
    redis_port, control_port, info_port = free_port(), free_port(), free_port()
    redis_log, manager_log = folder / "redis.log", folder / "manager.log"
    served = folder / "served.csv"  # one line per reading the IOC serves
    ioc = IOCProcess("--prefix", "qs:", "--velocity", 0, "--dwell", 0, "--served-log", served).start()
    redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--logfile", str(redis_log)], cwd=folder)
    processes = [redis]
    try:
        _wait_for_port(redis, redis_port, redis_log)
        # the worker inherits this session's Channel Access settings (loopback, private ports: conftest)
        env = dict(os.environ, SMART_SCAN_CATALOG=str(folder / "catalog"), SMART_SCAN_IOC_PREFIX="qs:")
        with open(manager_log, "wb") as log:
            processes.append(subprocess.Popen(
                [manager, "--startup-dir", str(EXAMPLE / "startup"),
                 "--existing-plans-devices", str(folder / "existing_plans_and_devices.yaml"),
                 "--user-group-permissions", str(EXAMPLE / "user_group_permissions.yaml"),
                 "--redis-addr", f"127.0.0.1:{redis_port}", "--redis-name-prefix", f"qs_test_{redis_port}",
                 "--zmq-control-addr", f"tcp://127.0.0.1:{control_port}",
                 "--zmq-info-addr", f"tcp://127.0.0.1:{info_port}"],
                cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT))
        _wait_for_port(processes[-1], control_port, manager_log)
        api = REManagerAPI(zmq_control_addr=f"tcp://127.0.0.1:{control_port}", timeout_recv=30)
        api.environment_open()
        api.wait_for_idle(timeout=300)
        if not api.status()["worker_environment_exists"]:
            raise RuntimeError(f"the worker environment did not open: {manager_log.read_text()[-5000:]}")
        yield api, folder / "catalog", manager_log, served
        if api.status()["worker_environment_exists"]:
            api.environment_close()
            api.wait_for_idle(timeout=120)
        api.close()
    finally:
        for process in reversed(processes):
            _stop(process)
        ioc.stop()


def _run_item(api, plan, log: Path, *, during=None) -> dict:
    """Add ``plan``, run the queue (calling ``during(api)`` once it runs) and return the item's result."""
    added = api.item_add(plan)
    assert added["success"], added["msg"]
    api.queue_start()
    if during is not None:
        during(api)
    api.wait_for_idle(timeout=900)
    result = api.history_get()["items"][-1]["result"]
    assert result["exit_status"] == "completed", f"{result}\n{log.read_text()[-5000:]}"
    return result


def _worker_exposures(api, start: int = 0) -> list:
    """The simulated detector's exposures (stage positions) in the worker, from the ``start``-th on."""
    from bluesky_queueserver_api import BFunc

    task = api.function_execute(BFunc("exposures", start=start), run_in_background=True)
    api.wait_for_completed_task(task["task_uid"], timeout=60)
    done = api.task_result(task["task_uid"])["result"]
    assert done["success"], done
    return done["return_value"]


def _pause_and_resume(option: str, after: int, paused_at: list):
    """What to do while a run goes on: once the detector has made ``after`` exposures, pause the
    RunEngine through the API (``option``: "deferred", at the next checkpoint, or "immediate"), check
    that nothing is measured while paused, note the exposures in ``paused_at``, and resume."""
    def during(api):
        for _ in range(3000):  # polls, a guard against a hang, not a time limit
            if _worker_exposures_or_zero(api) >= after:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the run did not reach {after} exposures in 3000 polls")
        api.re_pause(option=option)
        api.wait_for_idle_or_paused(timeout=120)
        status = api.status()
        assert status["manager_state"] == "paused", status
        paused_at.append(_worker_exposures_or_zero(api))
        time.sleep(1.0)
        assert _worker_exposures_or_zero(api) == paused_at[-1]  # nothing measured while paused
        api.re_resume()
    return during


def _worker_exposures_or_zero(api) -> int:
    try:
        return len(_worker_exposures(api))
    except Exception:  # the worker is busy starting the run
        return 0


def test_smart_scan_on_epics_devices_through_the_queue_server(queue_server):
    """The worker's EPICS devices (the simulated IOC's motor records and scaler over Channel Access)."""
    import csv

    from bluesky_queueserver_api import BPlan

    api, catalog_dir, log, served = queue_server
    assert {"stage", "scaler", "roi"} <= set(api.devices_allowed()["devices_allowed"])
    result = _run_item(api, BPlan("smart_scan", ["scaler"], "stage.y", 0, 15, 16, "stage.x", 0, 15, 16,
                                  sampler={"stop": {"max_fraction": 0.1}, "seed": 0}), log)
    uid = result["run_uids"][0]
    with open(served) as f:
        readings = [row for row in csv.DictReader(f) if row["detector"] == "qs:scaler1"]
    print(f"\nqueue server, EPICS devices: run {uid[:8]} completed; the IOC's scaler served {len(readings)} readings "
          f"at {len({(r['y'], r['x']) for r in readings})} positions")
    assert len(readings) == len({(r["y"], r["x"]) for r in readings}) == round(0.1 * 16 * 16)


def test_smart_scan_through_the_queue_server(queue_server, tmp_path):
    from bluesky_queueserver_api import BPlan

    api, catalog_dir, log, _ = queue_server

    # the environment offers smart_scan with every parameter of its signature, and the devices
    from plans import smart_scan

    allowed = api.plans_allowed()["plans_allowed"]
    assert "smart_scan" in allowed
    import inspect

    offered = [p["name"] for p in allowed["smart_scan"]["parameters"]]
    assert offered == list(inspect.signature(smart_scan).parameters)
    annotations = {p["name"]: p.get("annotation", {}).get("type") for p in allowed["smart_scan"]["parameters"]}
    assert annotations["detectors"] == "collections.abc.Sequence[__READABLE__]"
    assert annotations["y_motor"] == annotations["x_motor"] == "__MOVABLE__"
    assert {"sim", "fly_sim", "flyer"} <= set(api.devices_allowed()["devices_allowed"])

    grid = ("sim.y", *GRID, "sim.x", *GRID)
    stop_file = tmp_path / "stop.json"
    stop_file.write_text(json.dumps({"max_fraction": 0.06}))

    # 1. a scan with JSON arguments only; the beam clock is a signal named as a string
    ends, paused_at = [], []  # exposures when each run ended, and when it was paused
    first = _run_item(api, BPlan("smart_scan", ["sim.det"], *grid, sampler={"stop": {"max_fraction": 0.03}, "seed": 1},
                                 beam_clock="sim.beam_time", md={"sample": "queue test"}), log)
    ends.append(len(_worker_exposures(api)))
    # 2. another, paused at a checkpoint through the API and resumed
    second = _run_item(api, BPlan("smart_scan", ["sim.det"], *grid, sampler={"stop": {"max_fraction": 0.04}, "seed": 2},
                                  beam_clock="sim.beam_time"), log,
                       during=_pause_and_resume("deferred", ends[-1] + 200, paused_at))
    ends.append(len(_worker_exposures(api)))
    # 3. the first continued, named by its uid; stop rules from a file
    third = _run_item(api, BPlan("smart_scan", ["sim.det"], *grid, sampler={"stop": str(stop_file), "seed": 3},
                                 beam_clock="sim.beam_time", resume_from=first["run_uids"][0]), log,
                      during=_pause_and_resume("immediate", ends[-1] + 200, paused_at))
    exposed = _worker_exposures(api)
    api.environment_close()  # the worker exits: its catalog process finishes writing and stops
    api.wait_for_idle(timeout=120)

    from plans import Catalog, read_scan

    uids = [r["run_uids"][0] for r in (first, second, third)]
    with Catalog(catalog_dir) as catalog:
        runs = [catalog.client[uid] for uid in uids]
        data = [read_scan(run) for run in runs]
        stops = [run.metadata["stop"] for run in runs]
        starts = [run.metadata["start"] for run in runs]
    counts = [len(d.points) for d in data]  # the third read with the run it continues
    pixels = [{tuple(p) for p in d.points} for d in data]
    own = [s["num_events"]["primary"] for s in stops]
    spans = np.split(np.asarray(exposed), ends)  # each run's exposures (stage positions)
    per_run = [(len(span), len({tuple(p) for p in span})) for span in spans]
    print(f"\nqueue server: runs of {own} points, {counts} read back (the third with the first), "
          f"{[len(p) for p in pixels]} distinct pixels; paused (deferred, then immediate) after "
          f"{paused_at} exposures, none while paused; exposures (all, distinct positions) per run {per_run}")
    assert [s["exit_status"] for s in stops] == ["success"] * 3
    assert counts[0] == round(0.03 * 128 * 128) and counts[1] == round(0.04 * 128 * 128)
    assert [len(p) for p in pixels] == counts  # every point stored once, the resumed chain included
    assert starts[0]["sample"] == "queue test"
    assert starts[0]["plan_args"]["beam_clock"].startswith("SimulatedBeamTime")
    assert all(d.beam_time and d.beam_time > 0 for d in data)  # the microscope's simulated clock
    # the third continues the first (named by uid), up to the file's 6% of the grid, with none of its points again
    assert starts[2]["resumed_from"] == uids[0] and data[2].runs == [uids[0], uids[2]]
    assert pixels[0] <= pixels[2] and counts[2] == round(0.06 * 128 * 128) and own[2] == counts[2] - counts[0]
    first_positions = {tuple(p) for p in spans[0]}
    assert not first_positions & {tuple(p) for p in spans[2]}
    # no point stored twice, and none measured twice across a deferred pause (at a checkpoint): one
    # exposure per stored point, each at its own position. An immediate pause that lands between a
    # detector's trigger and the event's save exposes that one point again (stored once, the
    # RunEngine replays from the checkpoint before it), so the third run may show one more exposure.
    assert per_run[:2] == [(n, n) for n in own[:2]]
    assert per_run[2][1] == own[2] and per_run[2][0] in (own[2], own[2] + 1)
