"""Batch selection: the highest-ERD pixels, spread so that a batch does not cluster."""

from __future__ import annotations

import numpy as np

__all__ = ["select_spread", "select_by_erd"]


def select_spread(
    erd: np.ndarray,
    distance: np.ndarray,
    candidates: np.ndarray,
    n: int,
    *,
    suppression: float = 0.5,
    blockers: np.ndarray | None = None,
) -> np.ndarray:
    """Pick up to ``n`` candidates by descending ERD, skipping any too close to an earlier pick.

    A pick ``p`` suppresses every candidate within ``max(1, suppression * distance[p])`` of it, the
    distance being that from ``p`` to its nearest measured pixel: the region a measurement at ``p``
    will change. Pending points (asked, not yet told) given as ``blockers`` suppress the same way.

    Parameters
    ----------
    erd : (M,) array
        ERD of each candidate.
    distance : (M,) array
        Distance of each candidate to its nearest measured pixel.
    candidates : (M, 2) int array
        Candidate pixels (row, col).
    n : int
        Batch size.
    suppression : float
        Suppression radius in units of the pick's distance to the nearest measurement.
    blockers : (B, 3) array, optional
        (row, col, radius) of points that already suppress their surroundings.

    Returns
    -------
    (k,) int array
        Indices into ``candidates`` of the picks, best first; ``k <= n``.
    """
    if n <= 0 or len(erd) == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-erd, kind="stable")
    pts = candidates[order].astype(np.float64)
    alive = np.ones(len(order), bool)
    if blockers is not None:
        for br, bc, rad in blockers:
            alive &= (pts[:, 0] - br) ** 2 + (pts[:, 1] - bc) ** 2 >= rad * rad
    picks: list[int] = []
    while len(picks) < n:
        live = np.flatnonzero(alive)
        if live.size == 0:
            break
        i = live[0]  # candidates are visited in descending ERD order
        picks.append(int(order[i]))
        rad = max(1.0, suppression * float(distance[order[i]]))
        alive &= (pts[:, 0] - pts[i, 0]) ** 2 + (pts[:, 1] - pts[i, 1]) ** 2 >= rad * rad
    return np.asarray(picks, dtype=np.int64)


def select_by_erd(erd: np.ndarray, distance: np.ndarray, candidates: np.ndarray, n: int, *,
                  pending: np.ndarray | None = None, suppression: float = 0.75,
                  distance_discount: float = 0.0) -> np.ndarray:
    """The next batch of a grid: up to ``n`` candidate pixels by ERD, spread by `select_spread`.

    Parameters
    ----------
    erd, distance : (H, W) arrays
        Predicted ERD and distance to the nearest measurement of every pixel.
    candidates : (H, W) bool array
        Pixels that may be picked.
    n : int
        Batch size.
    pending : (H, W) bool array, optional
        Pixels asked for and not yet measured: they suppress their surroundings as picks do.
    suppression : float
        See `select_spread`.
    distance_discount : float
        Candidates are ranked by ``erd / distance ** distance_discount``.

    Returns
    -------
    (k,) int array
        Flat indices of the picks, best first; ``k <= n``. Where suppression leaves fewer than
        ``n`` candidates, the rest are filled by rank.
    """
    cand = np.flatnonzero(candidates)
    if len(cand) == 0 or n <= 0:
        return np.zeros(0, np.int64)
    dist_map, erd_map = distance.ravel(), erd.ravel()
    dist = dist_map[cand]
    score = erd_map[cand] / dist**distance_discount
    pool = min(len(cand), 40 * n)  # the top 40n by score hold the batch; spreading the rest costs time
    if pool < len(cand):
        top = np.argpartition(-score, pool - 1)[:pool]
        cand, score, dist = cand[top], score[top], dist[top]
    W = erd.shape[1]
    coords = np.stack(np.divmod(cand, W), axis=1)
    blockers = None
    if pending is not None and pending.any():
        pf = np.flatnonzero(pending)
        pr, pc = np.divmod(pf, W)
        blockers = np.column_stack([pr, pc, np.maximum(1.0, suppression * dist_map[pf])])
    picks = select_spread(score, dist, coords, n, suppression=suppression, blockers=blockers)
    if len(picks) < n:
        rest = np.setdiff1d(np.flatnonzero(candidates), cand[picks], assume_unique=True)
        rest_score = erd_map[rest] / dist_map[rest] ** distance_discount
        extra = rest[np.argsort(-rest_score, kind="stable")[: n - len(picks)]]
        return np.concatenate([cand[picks], extra])
    return cand[picks]
