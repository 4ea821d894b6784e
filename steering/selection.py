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
    pool: int = 40,
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
    pool : int
        Only the ``pool * n`` highest-ERD candidates are considered (then the rest if too few survive).

    Returns
    -------
    (k,) int array
        Indices into ``candidates`` of the picks, best first; ``k <= n``.
    """
    m = len(erd)
    if n <= 0 or m == 0:
        return np.zeros(0, np.int64)
    order = np.argsort(-erd, kind="stable")
    picks: list[int] = []
    start = 0
    alive_blockers = blockers if blockers is not None and len(blockers) else np.zeros((0, 3))
    while len(picks) < n and start < m:
        chunk = order[start : start + max(pool * n, 1)]
        start += len(chunk)
        pts = candidates[chunk].astype(np.float64)
        alive = np.ones(len(chunk), bool)
        for br, bc, rad in alive_blockers:
            alive &= (pts[:, 0] - br) ** 2 + (pts[:, 1] - bc) ** 2 >= rad * rad
        while len(picks) < n:
            live = np.flatnonzero(alive)
            if live.size == 0:
                break
            i = live[0]  # chunk is in descending ERD order
            picks.append(int(chunk[i]))
            rad = max(1.0, suppression * float(distance[chunk[i]]))
            alive &= (pts[:, 0] - pts[i, 0]) ** 2 + (pts[:, 1] - pts[i, 1]) ** 2 >= rad * rad
        if len(picks) < n and start < m:
            new_b = np.array([[*candidates[p], max(1.0, suppression * float(distance[p]))] for p in picks])
            base = blockers if blockers is not None and len(blockers) else np.zeros((0, 3))
            alive_blockers = np.vstack([base, new_b])
    return np.asarray(picks, dtype=np.int64)
