"""Fly-scan steering: the stage timing model, flown runs, the fly-mode sampler and its baselines."""

import math

import numpy as np
import pytest

from steering import Sampler, StopCriteria, run
from steering.fly import (
    FlyPlanner,
    coarse_raster,
    fly_budget,
    fly_raster,
    full_raster_time,
    raster_positions,
    raster_time,
)
from steering.timing import StageTiming, flown_runs
from steering.tools.bench_beam_time import (
    SCENARIOS,
    finest_raster,
    fly_decision_times,
    format_fly_decision_times,
    run_fly,
    run_point,
)

FAST = SCENARIOS["fast"]  # 50 nm pixels (mm), 10 ms dwell, 0.2 mm/s, 2 mm/s², 20 ms settle, 0.3 s per line


def test_a_move_is_triangular_when_short_and_trapezoidal_when_long():
    # 1 pixel = 50 nm at 2 mm/s²: 2 * sqrt(5e-5 / 2) s
    assert FAST.move_time(1) == pytest.approx(2 * math.sqrt(2.5e-5))
    assert FAST.move_time(-1) == FAST.move_time(1) and FAST.move_time(0) == 0.0
    # 1 mm (20000 pixels) reaches 0.2 mm/s: 1 / 0.2 + 0.2 / 2 s
    assert FAST.move_time(20000) == pytest.approx(5.1)
    # the two profiles meet where the triangle just reaches full speed (v^2 / a = 0.02 mm = 400 pixels)
    assert FAST.move_time(400) == pytest.approx(0.2) and FAST.move_time(400.0001) == pytest.approx(0.2, rel=1e-6)
    np.testing.assert_allclose(FAST.move_times([0, 1, 400, 20000]), [0, FAST.move_time(1), 0.2, 5.1])


def test_a_step_a_flown_line_and_the_speed_limit_cost_what_the_model_says():
    assert FAST.step_time((0, 0), (0, 1)) == pytest.approx(FAST.move_time(1) + 0.02 + 0.01)
    assert FAST.travel_time((0, 0), (3, 1)) == FAST.move_time(3)  # the axes move together
    assert FAST.flight_time(128) == pytest.approx(0.3 + 1.28)
    # 40 pixels in one 10 ms dwell is 0.2 mm/s: faster than that, the speed limit sets the pace
    assert FAST.pixel_time(40) == pytest.approx(0.01) and FAST.pixel_time(80) == pytest.approx(0.02)


@pytest.mark.parametrize("field, value, message", [
    ("dwell", 0, "dwell must be > 0"),
    ("velocity", "0.2", "velocity must be a number"),
    ("settle", -0.1, "settle must be >= 0"),
    ("line_overhead", float("nan"), "line_overhead must be finite"),
])
def test_bad_timing_is_named(field, value, message):
    settings = {"pixel_size": 50e-6, "dwell": 0.01, "velocity": 0.2, "acceleration": 2.0, field: value}
    with pytest.raises((TypeError, ValueError), match=message):
        StageTiming(**settings)


def test_a_route_is_cut_into_the_lines_a_fly_scan_flies():
    route = [(0, 0), (0, 1), (0, 2), (0, 4), (0, 6), (1, 6), (1, 5), (2, 0), (3, 3), (3, 4)]
    assert flown_runs(route) == [(0, 3), (3, 5), (5, 7), (7, 8), (8, 10)]
    assert flown_runs([]) == [] and flown_runs([(5, 5)]) == [(0, 1)]
    assert flown_runs([(0, 0), (1, 0), (2, 0)]) == [(0, 1), (1, 2), (2, 3)]  # a column is not flown
    # priced: three lines flown (one at column step 2), one single step
    expected = (FAST.flight_time(3) + FAST.travel_time((0, 2), (0, 4)) + FAST.flight_time(2, 2)
                + FAST.travel_time((0, 6), (1, 6)) + FAST.flight_time(2)
                + FAST.step_time((1, 5), (2, 0)) + FAST.travel_time((2, 0), (3, 3)) + FAST.flight_time(2))
    assert FAST.route_time(route, mode="fly") == pytest.approx(expected)
    steps = sum(FAST.step_time(a, b) for a, b in zip([route[0], *route[:-1]], route, strict=True))
    assert FAST.route_time(route, mode="point") == pytest.approx(steps)


def test_rasters_fit_their_time_and_fly_mode_budgets_follow_the_stop_criteria():
    shape = (64, 64)
    full = full_raster_time(shape, FAST)
    assert FAST.route_time(coarse_raster(shape, 1), mode="fly") == pytest.approx(full)
    k, pts, seconds = finest_raster(shape, FAST, 0.25 * full)
    assert seconds <= 0.25 * full < FAST.route_time(coarse_raster(shape, k - 1), mode="fly")
    stretched = fly_raster(shape, FAST, 0.25 * full)
    assert FAST.route_time(stretched, mode="fly") <= 0.25 * full and len(stretched) > len(pts)
    assert fly_budget(shape, FAST, StopCriteria(max_beam_time=12.5)) == 12.5
    assert fly_budget(shape, FAST, StopCriteria(max_fraction=0.1)) == pytest.approx(0.1 * full)


def _fly_raster_by_exhaustive_search(shape, timing, seconds, anisotropy=(1.0, 2.0)):
    """fly_raster as first written: every column step, row counts from the most down to the first that fits."""
    H, W = shape
    best = None
    for step in range(1, max(2, W)):
        lo = int(np.ceil((H - 1) / (anisotropy[1] * step) + 1))
        hi = int(np.floor((H - 1) / (anisotropy[0] * step) + 1))
        cols = raster_positions(W, step)
        for n_rows in range(min(hi, H), max(lo, 2) - 1, -1):
            rows = np.unique(np.round(np.linspace(0, H - 1, n_rows)).astype(np.int64))
            if raster_time(rows, cols, timing) <= seconds:
                if best is None or len(rows) * len(cols) > len(best[0]) * len(best[1]):
                    best = (rows, cols)
                break
    return best


@pytest.mark.parametrize("shape", [(64, 64), (37, 200), (150, 90)])
def test_the_fly_raster_is_the_one_an_exhaustive_search_finds(shape):
    for share in (0.05, 0.2, 0.6, 1.0):
        seconds = share * full_raster_time(shape, FAST)
        rows, cols = _fly_raster_by_exhaustive_search(shape, FAST, seconds)
        pts = fly_raster(shape, FAST, seconds)
        np.testing.assert_array_equal(np.unique(pts[:, 0]), rows)
        np.testing.assert_array_equal(np.unique(pts[:, 1]), cols)


def test_the_benchmark_reports_fly_decisions_in_a_pipelined_plans_order():
    speed = fly_decision_times(96, batches=5)
    n = len(speed["tell_s"])
    assert n >= 3 and len(speed["ask_next_s"]) == len(speed["flight_s"]) == len(speed["points"]) == n
    shape, timing = (96, 96), SCENARIOS["fast"]
    raster = fly_raster(shape, timing, 0.9 * 0.1 * full_raster_time(shape, timing))
    assert speed["raster_batches"] == 2
    assert speed["points"][0] + speed["points"][1] == len(raster)  # the raster, then its tail
    tail = raster[-speed["points"][1]:]
    assert speed["flight_s"][1] <= 0.03 * sum(speed["flight_s"][:2]) or len(flown_runs(tail)) == 1
    text = format_fly_decision_times(speed)
    assert "The stage waits for: the first ask" in text and "the asks that build the maps in 1 stage(s)" in text


def test_fly_mode_asks_for_flown_lines_within_its_beam_time(blobs):
    budget = 0.2 * full_raster_time(blobs.shape, FAST)
    s = Sampler(blobs.shape, timing=FAST, scan_mode="fly", seed=0,
                stop=StopCriteria(max_fraction=None, max_beam_time=budget))
    routes = []
    run(s, lambda p: (routes.append(p), blobs[p[:, 0], p[:, 1]])[1])
    route = np.vstack(routes)
    assert len(np.unique(route, axis=0)) == len(route) == s.n_measured  # no pixel asked twice
    assert s.fly_.planned_ == pytest.approx(FAST.route_time(route, mode="fly")) and s.fly_.planned_ <= budget
    assert s.fly_.planned_ > 0.95 * budget  # the budget is spent, not left over
    assert s.stop_reason.startswith("beam time budget planned")
    for batch in routes[2:]:  # after the raster and its tail: whole segments, each in one row, in one direction
        runs = flown_runs(batch)
        assert len(runs) <= s.fly_.segments_per_batch and all(b - a >= 2 for a, b in runs)
    print(f"\nfly mode, 64x64 at 20% of a full fly raster's time: {len(routes)} asks, {s.n_measured} pixels, "
          f"{s.fly_.planned_:.2f} s of {budget:.2f} s")


def test_the_rasters_tail_comes_last_and_the_maps_are_built_while_it_is_flown(blobs):
    budget = 0.25 * full_raster_time(blobs.shape, FAST)
    s = Sampler(blobs.shape, timing=FAST, scan_mode="fly", seed=0,
                stop=StopCriteria(max_fraction=None, max_beam_time=budget))
    first = s.ask()
    tail = s.ask(start=first[-1])  # asked ahead, while the first part is flown
    raster = fly_raster(blobs.shape, FAST, s.fly_.raster_share * budget)
    np.testing.assert_array_equal(np.vstack([first, tail]), raster)
    whole, tail_time = FAST.route_time(raster, mode="fly"), FAST.route_time(tail, mode="fly", start=first[-1])
    a = flown_runs(first)[-1][0]  # the last line before the tail, with the move into it
    line_before = FAST.route_time(first[a:], mode="fly", start=first[a - 1])
    share = s.fly_.raster_tail * whole  # the tail: the last lines within this share, at least one line
    assert len(flown_runs(tail)) == 1 or tail_time <= share
    assert share < tail_time + line_before
    s.tell(first, blobs[first[:, 0], first[:, 1]])
    assert not s.erd.any()  # nothing built yet
    segments = s.ask(start=tail[-1])  # asked ahead, while the tail is flown: the maps are built first
    assert s.erd.any() and len(segments)
    assert not ({tuple(p) for p in segments.tolist()} & {tuple(p) for p in tail.tolist()})
    s.tell(tail, blobs[tail[:, 0], tail[:, 1]])
    s.tell(segments, blobs[segments[:, 0], segments[:, 1]])
    assert s.n_measured == len(raster) + len(segments)
    print(f"\n64x64, 25% budget: raster {len(first)} + tail {len(tail)} pixels ({tail_time:.2f} s of "
          f"{whole:.2f} s), then {len(segments)} pixels of segments chosen with the tail pending")


def test_the_tail_is_the_last_lines_of_the_raster_within_its_share_of_the_time():
    shape = (256, 256)
    planner = FlyPlanner(shape, FAST, 0.1 * full_raster_time(shape, FAST), raster_tail=0.2)
    flat = planner.initial()
    first = planner.raster_batch(flat)
    tail = planner.raster_batch(flat[len(first):])
    np.testing.assert_array_equal(tail, flat[len(first):])  # the rest, whole
    route = np.stack(np.divmod(flat, shape[1]), axis=1)
    whole, head_time = FAST.route_time(route, mode="fly"), FAST.route_time(route[:len(first)], mode="fly")
    runs = flown_runs(route[len(first):])
    a = flown_runs(route[:len(first)])[-1][0]  # the line before the tail, with the move into it
    line_before = FAST.route_time(route[a:len(first)], mode="fly", start=route[a - 1])
    assert len(runs) > 1 and whole - head_time <= 0.2 * whole < whole - head_time + line_before


def test_fly_mode_beats_the_coarse_raster_of_equal_beam_time_on_the_test_image(blobs):
    from steering.metrics import psnr
    from steering.reconstruction import reconstruct_linear

    def score(points):
        return psnr(blobs, reconstruct_linear(blobs.shape, points, blobs[points[:, 0], points[:, 1]]))

    seconds = 0.25 * full_raster_time(blobs.shape, FAST)
    fly, fly_time = run_fly(blobs, FAST, seconds)
    point, point_time = run_point(blobs, FAST, seconds)
    _, raster, raster_time = finest_raster(blobs.shape, FAST, seconds)
    assert max(fly_time, point_time, raster_time) <= seconds
    assert score(fly) > score(raster) > score(point)
    print(f"\n64x64 blobs, fast detector, 25% of a full fly raster's time: fly {score(fly):.2f} dB, "
          f"raster {score(raster):.2f} dB, point {score(point):.2f} dB")


def test_fly_mode_needs_a_timing_model_and_takes_no_probes():
    with pytest.raises(ValueError, match="scan_mode='fly' needs timing"):
        Sampler((16, 16), scan_mode="fly")
    with pytest.raises(ValueError, match="scan_mode must be 'point' or 'fly'"):
        Sampler((16, 16), scan_mode="flying", timing=FAST)
    with pytest.raises(TypeError, match="timing must be a steering.timing.StageTiming"):
        Sampler((16, 16), scan_mode="fly", timing={"dwell": 0.01})
    with pytest.raises(ValueError, match="probe_fraction > 0 is for scan_mode='point'"):
        Sampler((16, 16), scan_mode="fly", timing=FAST, probe_fraction=0.1)


def test_a_failed_pixel_of_the_raster_stays_a_candidate_and_nothing_is_asked_twice(blobs):
    s = Sampler(blobs.shape, timing=FAST, scan_mode="fly", stop=StopCriteria(max_fraction=0.15))
    raster = s.ask()
    failed = np.zeros(len(raster), bool)
    failed[5] = True
    s.tell(raster, np.where(failed, np.nan, blobs[raster[:, 0], raster[:, 1]]), failed=failed)
    assert not s.measured_mask[tuple(raster[5])] and s.n_measured == len(raster) - 1
    asked = [s.ask()]
    while len(asked[-1]):
        assert not s.measured_mask[asked[-1][:, 0], asked[-1][:, 1]].any()
        s.tell(asked[-1], blobs[asked[-1][:, 0], asked[-1][:, 1]])
        asked.append(s.ask())
    assert len(asked[0]) > 0 and len(asked[-1]) == 0 and s.done  # segments after the raster, then the end


def _pipelined_fly_scan(truth, *, tail_parts, raster_tail=0.3, pipelined=True):
    """A fly-mode scan asked ahead (each batch asked for while the one before is flown), or not."""
    s = Sampler(truth.shape, timing=FAST, scan_mode="fly", seed=0,
                stop=StopCriteria(max_fraction=None, max_beam_time=0.25 * full_raster_time(truth.shape, FAST)))
    s.fly_.raster_tail, s.fly_.tail_parts = raster_tail, tail_parts
    batches, building = [s.ask()], []
    while len(batches[-1]):
        p = batches[-1]
        if pipelined:
            batches.append(s.ask(start=p[-1]))
            building.append(s._maps.building)
            s.tell(p, truth[p[:, 0], p[:, 1]])
        else:
            s.tell(p, truth[p[:, 0], p[:, 1]])
            batches.append(s.ask(start=p[-1]))
    return s, batches, building


def test_a_large_grids_maps_are_built_in_stages_one_while_each_part_of_the_tail_is_flown(blobs):
    staged, batches, building = _pipelined_fly_scan(blobs, tail_parts=3)
    whole, batches_whole, _ = _pipelined_fly_scan(blobs, tail_parts=1)
    assert staged.fly_.raster_batches_ == 4 and whole.fly_.raster_batches_ == 2
    raster = np.vstack(batches[:4])
    np.testing.assert_array_equal(raster, np.vstack(batches_whole[:2]))  # the same raster, in 3 + 1 batches
    rows = [np.unique(b[:, 0]) for b in batches[1:4]]
    assert all(len(r) >= 1 for r in rows) and not set(rows[0]) & set(rows[1])  # whole rows per part
    # asked while the raster's first lines fly: nothing measured; while parts 1 and 2 fly: a stage each,
    # the build still under way; while the last part flies: the last stage, then the first segments
    assert building[:4] == [False, True, True, False]
    # the scan is the one a build in one piece gives: the same points, the same image
    np.testing.assert_array_equal(np.vstack(batches), np.vstack(batches_whole))
    np.testing.assert_array_equal(staged.reconstruction, whole.reconstruction)
    assert [h["n_measured"] for h in staged.history_] == [h["n_measured"] for h in whole.history_]
    for key in ("prediction_error", "erd_total", "recon_change"):  # the tail judged as one batch, as before
        np.testing.assert_allclose([h.get(key, 0.0) for h in staged.history_],
                                   [h.get(key, 0.0) for h in whole.history_], rtol=1e-9)
    # a plan that tells before it asks builds the maps in one piece once the raster is in
    told_first, batches_told_first, _ = _pipelined_fly_scan(blobs, tail_parts=3, pipelined=False)
    np.testing.assert_array_equal(np.vstack(batches_told_first[:4]), raster)
    print(f"\n64x64, raster in 1 + 3 batches ({[len(b) for b in batches[:4]]} pixels): the maps built in 3 stages; "
          f"{len(np.vstack(batches))} pixels, as with the build in one piece")
