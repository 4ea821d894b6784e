"""Faults at single points: retried, then skipped or ending the run; never a made-up value, never a hang.

`sim.FaultyDetector` injects detector faults at chosen stage positions (a detector that raises,
hangs or reads NaN on demand cannot be made real); the simulated motors fail moves on demand and
refuse targets outside their limits.
"""

import numpy as np
import pytest
from bluesky import RunEngine

from plans import FAILURES_STREAM, FailurePolicy, read_scan, smart_scan
from sim import FaultyDetector, SimulatedMicroscope
from steering import Sampler


def _run(blobs, catalog, faults, *, scope=None, subscribe=(), **kwargs):
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    for callback in subscribe:
        RE.subscribe(callback)
    scope = scope or SimulatedMicroscope(blobs[:32, :32], name="sim")
    det = FaultyDetector(scope, faults)
    sampler = {"seed": 0, "stop": {"max_fraction": 0.2}}
    try:
        RE(smart_scan([det], scope.y, 0, 31, 32, scope.x, 0, 31, 32, sampler=sampler, **kwargs))
    finally:
        assert catalog.writer.wait()
    start, stop = docs[0][1], docs[-1][1]
    events = [d for name, d in docs if name == "event" and "faulty" in d["data"]]
    data = read_scan(catalog.client[start["uid"]])
    print(f"\n{len(det.injected_)} detector faults; points measured {len(events)}, in the catalog "
          f"{len(data.values)} ({int(np.isnan(data.values).sum())} NaN); exit {stop['exit_status']}: "
          f"{stop.get('reason')}")
    return det, start, stop, events, data


def _first_points(blobs, n=6):
    """Pixels the scan measures (from a fault-free run), so the faults are sure to be hit."""
    from steering import Sampler, StopCriteria

    s = Sampler((32, 32), seed=0, stop=StopCriteria(max_fraction=0.2))
    pts = s.ask()
    return [tuple(int(v) for v in p) for p in pts[:n]]


def test_transient_faults_are_retried_and_nothing_is_lost(blobs, catalog):
    a, b, c = _first_points(blobs, 3)
    det, start, stop, events, data = _run(blobs, catalog, {a: ["raise"], b: ["nan", "nan"], c: ["hang"]},
                                          timeout=0.5)
    assert stop["exit_status"] == "success"
    assert sorted(k for _, k in det.injected_) == ["hang", "nan", "nan", "raise"]
    # every reading taken is stored: the catalog holds as many events as the run emitted
    assert len(data.values) == len(events) == stop["num_events"]["primary"]
    finite = np.isfinite(data.values)
    assert (~finite).sum() == 2  # the two NaN readings are kept, as NaN
    measured = {tuple(p) for p in data.points[finite].tolist()}
    assert {a, b, c} <= measured  # each recovered on a retry
    assert finite.sum() == len(measured) == round(0.2 * 32 * 32)


def test_a_point_that_keeps_failing_is_skipped_not_invented(blobs, catalog):
    (bad,) = _first_points(blobs, 1)
    det, start, stop, events, data = _run(blobs, catalog, {bad: ["raise"] * 10}, retries=1)
    assert stop["exit_status"] == "success"
    # 2 tries when first asked, 1 when asked again: then the sampler moves on
    assert len(det.injected_) <= 3
    finite = np.isfinite(data.values)
    assert bad not in {tuple(p) for p in data.points[finite].tolist()}
    assert finite.sum() == round(0.2 * 32 * 32)


def test_on_failure_stop_ends_the_run_naming_the_point(blobs, catalog):
    (bad,) = _first_points(blobs, 1)
    with pytest.raises(RuntimeError):
        _run(blobs, catalog, {bad: ["nan"] * 10}, retries=2, on_failure="stop")


def test_on_failure_stop_keeps_what_was_measured(blobs, catalog):
    pts = _first_points(blobs, 6)
    RE = RunEngine({})
    RE.subscribe(catalog.writer)
    docs = []
    RE.subscribe(lambda name, doc: docs.append((name, doc)))
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim")
    det = FaultyDetector(scope, {pts[5]: ["raise"] * 10})
    with pytest.raises(RuntimeError, match="failed 3 times"):
        RE(smart_scan([det], scope.y, 0, 31, 32, scope.x, 0, 31, 32, sampler={"seed": 0}, on_failure="stop"))
    assert catalog.writer.wait()
    stop = docs[-1][1]
    assert stop["exit_status"] == "fail" and f"point ({pts[5][0]}, {pts[5][1]})" in stop["reason"]
    data = read_scan(catalog.client[docs[0][1]["uid"]])
    assert len(data.values) == stop["num_events"].get("primary", 0) > 0


def test_a_hanging_trigger_times_out_instead_of_hanging(blobs, catalog):
    (bad,) = _first_points(blobs, 1)
    det, start, stop, events, data = _run(blobs, catalog, {bad: ["hang"] * 10}, retries=1, timeout=0.3)
    assert stop["exit_status"] == "success"
    # 2 tries, then (if the sampler asks for the pixel again before the scan ends) 1 more, then excluded
    assert [k for _, k in det.injected_] in (["hang"] * 2, ["hang"] * 3)
    assert bad not in {tuple(p) for p in data.points[np.isfinite(data.values)].tolist()}


def test_ranges_outside_motor_limits_are_refused_before_any_move(blobs):
    scope = SimulatedMicroscope(blobs, name="sim")
    scope.x.limits = (0.0, 40.0)
    with pytest.raises(ValueError, match="x_start..x_stop .* outside the limits of sim_x"):
        list(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 63, 64))
    assert scope.x.moves_ == 0
    for kwargs, word in (({"retries": -1}, "retries"), ({"on_failure": "pray"}, "on_failure"),
                         ({"timeout": 0}, "timeout")):
        with pytest.raises(ValueError, match=word):
            list(smart_scan([scope.det], scope.y, 0, 63, 64, scope.x, 0, 39, 40, **kwargs))


def test_a_motor_that_stalls_or_never_arrives_is_retried_then_skipped(blobs, catalog):
    a, b = _first_points(blobs, 2)
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim")
    scope.x.faults = {float(a[1]): ["fail"]}  # a following error once: the retry gets there
    scope.y.faults = {float(b[0]): ["hang"] * 10}  # never arrives: times out, retried, skipped
    det, start, stop, events, data = _run(blobs, catalog, {}, scope=scope, retries=1, timeout=0.3)
    assert stop["exit_status"] == "success"
    assert len(data.values) == len(events) == stop["num_events"]["primary"]
    finite = np.isfinite(data.values)
    measured = {tuple(p) for p in data.points[finite].tolist()}
    assert a in measured
    assert finite.sum() == len(measured) == round(0.2 * 32 * 32)
    # a failed move reads nothing: no event at all for it, so nothing can be mistaken for data
    assert det.triggers_ == len(events)


def test_a_limit_hit_mid_scan_fails_those_points_without_retries_and_the_scan_goes_on(blobs, catalog, caplog):
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim")

    def narrow_limits(name, doc):
        if name == "event" and doc["seq_num"] == 100 and "faulty" in doc["data"]:
            scope.x.limits = (0.0, 20.0)  # someone tightened the soft limit during the scan

    with caplog.at_level("WARNING", logger="plans.smart_scan"):
        det, start, stop, events, data = _run(blobs, catalog, {}, scope=scope, subscribe=[narrow_limits])
    assert stop["exit_status"] == "success"
    assert len(data.values) == len(events) == stop["num_events"]["primary"]
    assert np.all(data.positions[100:, 1] <= 20) and np.all(np.isfinite(data.values))
    refused = [r.getMessage().split(" recorded")[0] for r in caplog.records if "LimitError" in r.getMessage()]
    assert refused and len(refused) == len(set(refused))  # each point beyond the limit tried once, never again
    assert len(events) > 100 + len(refused)  # and the scan went on within the limits
    print(f"{len(refused)} points beyond the new limit refused once each; {len(events)} points measured")


def _binary_file(scope, tmp_path):
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 4)
    return str(path)


def _text_file(scope, tmp_path):
    path = tmp_path / "notes.jsonl"
    path.write_text("not a journal\n")
    return str(path)


# (arguments changed, the error, what its message must say); a callable value is given the scope and tmp_path
_BAD_ARGUMENTS = [
    ({"y_stop": 0}, ValueError, "y_start and y_stop must differ"),
    ({"x_num": 1}, ValueError, "x_num must be an integer >= 2"),
    ({"y_num": 2.5}, ValueError, "y_num must be an integer >= 2"),
    ({"y_num": float("nan")}, ValueError, "y_num must be an integer >= 2"),
    ({"y_num": "abc"}, TypeError, "y_num must be a number"),
    ({"y_num": None}, TypeError, "y_num must be a number"),
    ({"x_num": True}, TypeError, "x_num must be a number"),
    ({"y_start": "0"}, TypeError, "y_start must be a number, got '0'"),
    ({"x_start": None}, TypeError, "x_start must be a number"),
    ({"x_stop": float("nan")}, ValueError, "x_stop must be finite"),
    ({"y_stop": float("inf")}, ValueError, "y_stop must be finite"),
    ({"x_stop": 99}, ValueError, r"x_start..x_stop \(0..99\) is outside the limits of sim_x"),
    ({"detectors": lambda scope, _: scope.det}, TypeError, r"detectors must be a list of readable devices "
                                                           r"\(a single device: write \[det\]\)"),
    ({"detectors": []}, ValueError, "detectors must hold at least one detector"),
    ({"detectors": "sim_det"}, TypeError, "detectors must be a list of readable devices"),
    ({"detectors": [object()]}, TypeError, r"detectors\[0\] must be a readable device"),
    ({"detectors": lambda scope, _: [scope.det, scope.x]}, ValueError, "x_motor sim_x .* is also among the detectors"),
    ({"x_motor": "sim_x"}, TypeError, "x_motor must be a motor device, not its name 'sim_x'"),
    ({"x_motor": lambda scope, _: scope.det}, TypeError, "x_motor must be a movable, readable device"),
    ({"y_motor": lambda scope, _: scope.x}, ValueError, "y_motor and x_motor are the same device"),
    ({"y_motor": None}, TypeError, "y_motor must be a movable, readable device"),
    ({"value_field": "nope"}, ValueError, "value_field 'nope' is not among the fields the detectors read"),
    ({"value_field": 3}, TypeError, "value_field must be the name of a field"),
    ({"reduce": "median"}, ValueError, "reduce must be one of"),
    ({"reduce": None}, ValueError, "reduce must be one of"),
    ({"maps_every": 0}, ValueError, "maps_every must be an integer >= 1"),
    ({"maps_every": "5"}, TypeError, "maps_every must be a number"),
    ({"timeout": 0}, ValueError, "timeout must be a finite number of seconds > 0"),
    ({"timeout": -1}, ValueError, "timeout must be a finite number of seconds > 0"),
    ({"timeout": float("inf")}, ValueError, "timeout must be a finite number of seconds > 0"),
    ({"timeout": "60"}, TypeError, "timeout must be a number"),
    ({"retries": -1}, ValueError, "retries must be an integer >= 0"),
    ({"retries": 1.5}, ValueError, "retries must be an integer >= 0"),
    ({"retries": "2"}, TypeError, "retries must be a number"),
    ({"on_failure": "pray"}, ValueError, "on_failure must be 'skip' or 'stop'"),
    ({"on_failure": None}, ValueError, "on_failure must be 'skip' or 'stop'"),
    ({"beam_clock": 3.0}, ValueError, "beam_clock must be a callable"),
    ({"md": "notes"}, TypeError, "md must be a dict"),
    ({"resume_from": "/no/such/journal.jsonl"}, ValueError, "resume_from: no journal file"),
    ({"resume_from": _binary_file}, ValueError, "resume_from: .* is not the journal of a smart_scan run"),
    ({"resume_from": _text_file}, ValueError, "resume_from: .* is not the journal of a smart_scan run"),
    ({"resume_from": 123}, ValueError, "resume_from must be a stored smart_scan run"),
    ({"resume_from": "0123abcd-0000-4000-8000-000000000000"}, ValueError,
     "no run '0123abcd-0000-4000-8000-000000000000' in the catalogs of this session"),
    ({"sampler": {"batchsize": 3}}, ValueError, "unknown sampler settings"),
    ({"sampler": 123}, TypeError, "sampler must be a Sampler, a dict of its settings"),
    ({"sampler": _binary_file}, ValueError, "sampler settings file .* is not valid JSON"),
    ({"sampler": lambda *_: Sampler((8, 8))}, ValueError, r"sampler is for a \(8, 8\) grid"),
    ({"sampler": {"stop": {"max_fraction": 0}}}, ValueError, r"max_fraction must be in \(0, 1\]"),
    ({"sampler": {"stop": {"max_fraction": 1.5}}}, ValueError, r"max_fraction must be in \(0, 1\]"),
    ({"sampler": {"stop": {"max_fraction": "0.2"}}}, (TypeError, ValueError), "max_fraction"),
    ({"sampler": {"stop": "/no/such/stop.json"}}, ValueError, "stop"),
    ({"sampler": {"stop": _binary_file}}, (TypeError, ValueError), "garbage.bin"),
    ({"sampler": {"initial_fraction": 0}}, ValueError, r"initial_fraction must be in \(0, 1\]"),
    ({"sampler": {"batch_size": 0}}, ValueError, "batch_size must be an integer >= 1"),
    ({"sampler": {"seed": -1}}, (TypeError, ValueError), "seed"),
    ({"sampler": {"model": 123}}, (TypeError, ValueError), "model"),
    ({"sampler": {"model": "/no/such/model.safetensors"}}, ValueError, "model file not found"),
]


def _case_id(change) -> str:
    if isinstance(change, dict):
        return "{" + ",".join(f"{k}={_case_id(v)}" for k, v in change.items()) + "}"
    return getattr(change, "__name__", repr(change))


@pytest.mark.parametrize("change, error, message", _BAD_ARGUMENTS, ids=[_case_id(c) for c, *_ in _BAD_ARGUMENTS])
def test_every_bad_argument_is_named_before_anything_moves(blobs, tmp_path, change, error, message):
    """Each bad argument is refused with an error naming it: no move, no trigger, no document."""
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim")
    scope.x.limits = (0.0, 40.0)
    args = {"detectors": [scope.det], "y_motor": scope.y, "y_start": 0, "y_stop": 31, "y_num": 32,
            "x_motor": scope.x, "x_start": 0, "x_stop": 31, "x_num": 32}

    def made(value):
        if isinstance(value, dict):
            return {k: made(v) for k, v in value.items()}
        return value(scope, tmp_path) if callable(value) else value

    args.update({k: made(v) for k, v in change.items()})
    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append(name))
    with pytest.raises(error, match=message) as err:
        RE(smart_scan(**args))
    assert scope.y.moves_ == scope.x.moves_ == scope.det.triggers_ == 0 and docs == []
    print(f"\n{change} -> {type(err.value).__name__}: {err.value}")


def test_the_sweep_of_bad_arguments_holds_the_cases_the_readme_counts():
    assert len(_BAD_ARGUMENTS) >= 56


def test_an_image_that_is_not_2d_or_holds_nan_is_refused(blobs):
    from steering.tools.tune import replay

    bad = blobs.copy()
    bad[3, 4] = np.nan
    for image, message in ((bad, "holds 1 NaN"), (np.zeros((2, 8, 8)), "must be 2-D"), (np.zeros(8), "must be 2-D")):
        with pytest.raises(ValueError, match=message):
            SimulatedMicroscope(image)
        with pytest.raises(ValueError, match=message):
            replay(image)


def test_every_point_that_could_not_be_measured_is_recorded_with_its_fault(blobs, catalog):
    """A detector that raises or hangs, or a move that fails, leaves no reading: a steering_failures event says so."""
    raises, hangs, moves, nan = _first_points(blobs, 4)
    scope = SimulatedMicroscope(blobs[:32, :32], name="sim")
    scope.y.faults = {float(moves[0]): ["fail"] * 10}
    det, start, stop, events, data = _run(blobs, catalog, {raises: ["raise"] * 10, hangs: ["hang"] * 10,
                                                           nan: ["nan"] * 10}, scope=scope, retries=0, timeout=0.3)
    run = catalog.client[start["uid"]]
    failures = run[FAILURES_STREAM].read()
    rows, cols, faults = (np.asarray(failures[f"steering_failures_{key}"]).tolist() for key in ("row", "col", "fault"))
    recorded = dict(zip(zip(rows, cols, strict=True), faults, strict=True))
    assert "injected detector fault" in recorded[raises]
    assert "Timeout" in recorded[hangs] or "timeout" in recorded[hangs].lower()
    assert "following error" in recorded[moves]
    assert recorded[nan] == "faulty read nan"
    assert {raises, hangs, moves, nan} <= {tuple(p) for p in data.failed.tolist()}
    # a reading that was taken is in primary, NaN included; the others left no reading at all
    primary = {tuple(p) for p in data.points.tolist()}
    assert nan in primary and not {raises, hangs} & primary
    assert np.asarray(failures["steering_failures_y"])[rows.index(raises[0])] == raises[0]  # the stage target


def test_the_failure_policy_alone():
    policy = FailurePolicy(retries=2, on_failure="skip", max_in_a_row=3, max_idle_batches=2)
    assert policy.tries((1, 1)) == 3
    policy.point_done((1, 1), float("nan"), ["RuntimeError: no"])
    assert policy.tries((1, 1)) == 1  # asked again: one try
    policy.point_done((1, 1), float("nan"), ["RuntimeError: no"])
    assert policy.to_exclude() == [(1, 1)]  # failed twice: not asked again
    policy.point_done((2, 2), 0.5, [])  # a success ends the run of failures
    policy.point_done((3, 3), float("nan"), ["LimitError: x"], beyond_limits=True)
    assert policy.to_exclude(lambda: [[0, 7], [1, 7]]) == [(1, 1), (3, 3), (0, 7), (1, 7)]
    assert policy.to_exclude(lambda: [[0, 7]]) == [(1, 1), (3, 3)]  # the limits are excluded once
    policy.point_done((4, 4), float("nan"), ["a"])
    policy.point_done((5, 5), float("nan"), ["b"])
    with pytest.raises(RuntimeError, match="3 points in a row could not be measured.*last fault: c"):
        policy.point_done((6, 6), float("nan"), ["c"])
    policy.batch_done(np.array([np.nan, np.nan]))
    with pytest.raises(RuntimeError, match="no point of the last 2 batches"):
        policy.batch_done(np.array([np.nan]))
    stop = FailurePolicy(on_failure="stop")
    with pytest.raises(RuntimeError, match=r"point \(7, 7\) at y=1 failed 1 times; last: boom"):
        stop.point_done((7, 7), float("nan"), ["boom"], label="point (7, 7) at y=1")
    for kwargs, word in (({"retries": -1}, "retries"), ({"on_failure": "pray"}, "on_failure")):
        with pytest.raises(ValueError, match=word):
            FailurePolicy(**kwargs)
