"""Travel-efficient visiting order for a batch of points (open path from the stage position)."""

from __future__ import annotations

import numpy as np

__all__ = ["order_route", "serpentine_order", "path_length"]


def path_length(points: np.ndarray, start: np.ndarray | None = None) -> float:
    """Euclidean length of the open path through ``points`` in order, from ``start`` if given."""
    p = np.asarray(points, dtype=np.float64)
    if start is not None:
        p = np.vstack([np.asarray(start, dtype=np.float64)[None], p])
    return float(np.linalg.norm(np.diff(p, axis=0), axis=1).sum()) if len(p) > 1 else 0.0


def serpentine_order(points: np.ndarray, start=None) -> np.ndarray:
    """Boustrophedon order over bands of rows; linear memory, for large point sets.

    Band height is chosen so that a band holds about as many points across as its height in pixels
    spans, which keeps hops short for evenly spread points. The sweep starts from the end nearest
    ``start``.
    """
    p = np.asarray(points, dtype=np.float64)
    k = len(p)
    if k == 0:
        return np.arange(0)
    span = np.ptp(p, axis=0) + 1.0
    band = max(1.0, float(np.sqrt(span[0] * span[1] / k)))
    rows = np.floor((p[:, 0] - p[:, 0].min()) / band).astype(np.int64)
    cols = np.where(rows % 2 == 0, p[:, 1], -p[:, 1])
    order = np.lexsort((cols, rows))
    if start is not None:
        s = np.asarray(start, dtype=np.float64)
        if np.linalg.norm(p[order[-1]] - s) < np.linalg.norm(p[order[0]] - s):
            order = order[::-1]
    return order


def order_route(points: np.ndarray, start=None, *, max_passes: int = 50, max_exact: int = 600) -> np.ndarray:
    """Order points for a short stage path: greedy nearest neighbour, then 2-opt.

    Batches larger than ``max_exact`` points (e.g. a large initial pattern) get `serpentine_order`,
    which needs no pairwise distance matrix.

    Parameters
    ----------
    points : (k, 2) array
        Points to visit (row, col).
    start : (2,) array-like, optional
        Where the stage is; the path begins at the point nearest to it. Default: the first point.
    max_passes : int
        Upper bound on 2-opt improvement passes.
    max_exact : int
        Largest batch ordered by nearest neighbour + 2-opt (quadratic memory in the batch size).

    Returns
    -------
    (k,) int array
        Permutation of ``range(k)`` giving the visiting order.
    """
    p = np.asarray(points, dtype=np.float64)
    k = len(p)
    if k > max_exact:
        return serpentine_order(p, start)
    if k <= 2:
        if k == 2 and start is not None:
            s = np.asarray(start, dtype=np.float64)
            return np.argsort(np.linalg.norm(p - s, axis=1), kind="stable")
        return np.arange(k)
    # Nearest-neighbour tour with a fixed, virtual start node (index k).
    s = p[0] if start is None else np.asarray(start, dtype=np.float64)
    nodes = np.vstack([p, s[None]])
    dist = np.linalg.norm(nodes[:, None, :] - nodes[None, :, :], axis=2)
    order = np.empty(k + 1, dtype=np.int64)
    order[0] = k
    visited = np.zeros(k + 1, bool)
    visited[k] = True
    cur = k
    for i in range(1, k + 1):
        row = np.where(visited, np.inf, dist[cur])
        cur = int(np.argmin(row))
        order[i] = cur
        visited[cur] = True
    # 2-opt on the open path: reversing order[i..j] replaces edges (i-1,i) and (j,j+1).
    n = k + 1
    for _ in range(max_passes):
        improved = False
        for i in range(1, n - 1):
            a, b = order[i - 1], order[i]
            js = np.arange(i + 1, n)
            c = order[js]
            nxt = np.where(js + 1 < n, order[np.minimum(js + 1, n - 1)], -1)
            old = dist[a, b] + np.where(nxt >= 0, dist[c, np.maximum(nxt, 0)], 0.0)
            new = dist[a, c] + np.where(nxt >= 0, dist[b, np.maximum(nxt, 0)], 0.0)
            gain = old - new
            j_best = int(np.argmax(gain))
            if gain[j_best] > 1e-9:
                j = int(js[j_best])
                order[i : j + 1] = order[i : j + 1][::-1]
                improved = True
        if not improved:
            break
    return order[1:]
