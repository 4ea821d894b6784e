"""Batch selection: the highest-ERD pixels, spread so that a batch does not cluster."""

from __future__ import annotations

import numpy as np

__all__ = ["select_spread"]


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
