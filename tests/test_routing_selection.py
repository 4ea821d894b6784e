import itertools

import numpy as np
import pytest

from steering.routing import order_route, path_length, serpentine_order
from steering.selection import select_spread


def test_route_is_a_short_permutation():
    rng = np.random.default_rng(0)
    pts = rng.integers(0, 200, (50, 2))
    start = np.array([0, 0])
    order = order_route(pts, start)
    assert sorted(order.tolist()) == list(range(50))
    routed = path_length(pts[order], start)
    assert routed < 0.6 * path_length(pts, start)  # random order is far longer
    assert routed < path_length(pts[order_route(pts, start, max_passes=0)], start)  # 2-opt shortens the greedy tour
    # starts at (or next to) the point nearest the stage
    assert np.linalg.norm(pts[order[0]] - start) <= np.sort(np.linalg.norm(pts - start, axis=1))[2]


def test_two_opt_finds_the_shortest_path_where_the_greedy_tour_does_not():
    pts = np.array([[7, 17], [7, 16], [4, 9], [6, 4], [17, 16], [2, 18], [19, 5]])
    start = np.array([0, 0])
    shortest = min(path_length(pts[list(p)], start) for p in itertools.permutations(range(len(pts))))
    greedy = path_length(pts[order_route(pts, start, max_passes=0)], start)
    assert greedy > shortest + 3  # nearest neighbour alone crosses itself here
    assert path_length(pts[order_route(pts, start)], start) == pytest.approx(shortest)


def test_serpentine_for_large_batches():
    rr, cc = np.meshgrid(np.arange(0, 100, 5), np.arange(0, 100, 5), indexing="ij")
    pts = np.column_stack([rr.ravel(), cc.ravel()])
    order = order_route(pts, None, max_exact=10)
    assert sorted(order.tolist()) == list(range(len(pts)))
    np.testing.assert_array_equal(order, serpentine_order(pts))
    assert path_length(pts[order]) < 1.2 * len(pts) * 5


def test_small_routes():
    assert order_route(np.zeros((0, 2))).tolist() == []
    assert order_route(np.array([[3, 3]])).tolist() == [0]
    assert order_route(np.array([[0, 0], [9, 9]]), start=(9, 8)).tolist() == [1, 0]


def test_select_spread_suppresses_neighbours():
    # Two bumps of ERD; without suppression all picks would sit on the first bump.
    cand = np.array([[r, c] for r in range(20) for c in range(20)])
    erd = np.exp(-((cand[:, 0] - 5.0) ** 2 + (cand[:, 1] - 5.0) ** 2) / 8) + 0.5 * np.exp(
        -((cand[:, 0] - 15.0) ** 2 + (cand[:, 1] - 15.0) ** 2) / 8
    )
    dist = np.full(len(cand), 6.0)
    picks = select_spread(erd, dist, cand, 6, suppression=0.5)
    p = cand[picks]
    d = np.linalg.norm(p[:, None] - p[None], axis=2) + np.eye(len(p)) * 99
    assert d.min() >= 3.0
    assert np.any(np.linalg.norm(p - [15, 15], axis=1) < 4)
    assert picks[0] == np.argmax(erd)
    # pending points block their surroundings
    picks_b = select_spread(erd, dist, cand, 3, blockers=np.array([[5.0, 5.0, 3.0]]))
    assert np.all(np.linalg.norm(cand[picks_b] - [5, 5], axis=1) >= 3.0)
