"""Delaunay triangulation of a product lattice, built by arithmetic instead of by Qhull.

A coarse fly raster measures every pixel of a set of rows crossed with a set of columns. Qhull takes
seconds to triangulate such a lattice at 1024x1024 (each cell's four corners lie on one circle, a
degenerate case it resolves one facet at a time) and locating a million pixels in its triangles takes
as long again. Here every cell is cut along one of its diagonals, alternating like a checkerboard so
the interpolation has no preferred direction (Qhull's choice on co-circular corners is arbitrary), and
a pixel's triangle follows from two `searchsorted` calls. Any such cut is a Delaunay triangulation of
the lattice, so it serves wherever a `scipy.spatial.Delaunay` of the same points would.
"""

from __future__ import annotations

import numpy as np

__all__ = ["LatticeTriangulation", "product_lattice"]


def product_lattice(points: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The row and column coordinates of ``points`` if they are exactly every (row, col) pair of them.

    Parameters
    ----------
    points : (n, 2) array
        Distinct (row, col) points.

    Returns
    -------
    (rows, cols) sorted unique coordinates with ``len(rows) * len(cols) == n`` and at least two of
    each, or None where the points are not such a lattice.
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 4:
        return None
    rows, ri = np.unique(points[:, 0], return_inverse=True)
    cols, ci = np.unique(points[:, 1], return_inverse=True)
    if len(rows) < 2 or len(cols) < 2 or len(rows) * len(cols) != len(points):
        return None
    if len(np.unique(ri.ravel() * len(cols) + ci.ravel())) != len(points):
        return None
    return rows, cols


class LatticeTriangulation:
    """Triangulation of a product lattice with the attributes of `scipy.spatial.Delaunay` that this package uses.

    Parameters
    ----------
    points : (n, 2) array
        Distinct (row, col) points forming a product lattice (see `product_lattice`), in any order;
        ``simplices`` index into them as given.
    lattice : (rows, cols), optional
        `product_lattice` of ``points``, where the caller has it already.

    Attributes
    ----------
    points : (n, 2) float64 array
    simplices : (t, 3) int array
        Vertices of each triangle; two triangles per lattice cell.
    neighbors : (t, 3) int array
        ``neighbors[k, m]``: the triangle across the edge opposite vertex ``m`` of triangle ``k``, -1 on the hull.
    transform : (t, 3, 2) float64 array
        Barycentric transform as in `scipy.spatial.Delaunay.transform`.
    rows, cols : sorted 1-D arrays
        Coordinates of the lattice's rows and columns.
    """

    def __init__(self, points: np.ndarray, lattice: tuple[np.ndarray, np.ndarray] | None = None):
        lattice = product_lattice(points) if lattice is None else lattice
        if lattice is None:
            raise ValueError("points are not a product lattice of at least 2 x 2 distinct points")
        self.points = np.ascontiguousarray(points, dtype=np.float64)
        self.rows, self.cols = lattice
        nr, nc = len(self.rows), len(self.cols)
        index = np.empty((nr, nc), dtype=np.int64)
        index[np.searchsorted(self.rows, self.points[:, 0]), np.searchsorted(self.cols, self.points[:, 1])] = np.arange(
            len(self.points)
        )
        a, b = index[:-1, :-1].ravel(), index[:-1, 1:].ravel()  # (i, j), (i, j+1)
        c, d = index[1:, :-1].ravel(), index[1:, 1:].ravel()  # (i+1, j), (i+1, j+1)
        main = self._main_diagonal(np.arange(nr - 1)[:, None], np.arange(nc - 1)[None, :]).ravel()
        # Two triangles per cell; on the main diagonal (i, j)-(i+1, j+1)
        # the first is the one below it (row fraction >= column fraction), on the other the one above
        # the anti-diagonal (i, j+1)-(i+1, j) (fractions summing to at most 1).
        first = np.where(main[:, None], np.column_stack([a, c, d]), np.column_stack([a, c, b]))
        second = np.where(main[:, None], np.column_stack([a, d, b]), np.column_stack([c, d, b]))
        self.simplices = np.stack([first, second], axis=1).reshape(-1, 3)
        self.neighbors = _neighbours(self.simplices)
        self.transform = _barycentric_transform(self.points[self.simplices])

    @staticmethod
    def _main_diagonal(i, j):
        return (i + j) % 2 == 0

    def find_simplex(self, queries: np.ndarray) -> np.ndarray:
        """Index of the triangle holding each (row, col) query, -1 outside the lattice's bounding box."""
        return self._locate(queries)

    def interpolate(self, values: np.ndarray, queries: np.ndarray, *,
                    simplex: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Piecewise-linear interpolation of ``values`` (one per point) at ``queries``, as
        `steering.reconstruction.interpolate_linear` returns it: (values, NaN outside; triangles, -1 outside).
        ``simplex``: `find_simplex` of the queries, where the caller has it."""
        simplex = self._locate(queries) if simplex is None else simplex
        inside = np.flatnonzero(simplex >= 0)
        out = np.full(len(simplex), np.nan)
        if len(inside):
            # each triangle's plane value = a * row + b * col + c, from its barycentric transform
            T = self.transform
            v = np.asarray(values, dtype=np.float64)[self.simplices]
            d0, d1 = v[:, 0] - v[:, 2], v[:, 1] - v[:, 2]
            a = d0 * T[:, 0, 0] + d1 * T[:, 1, 0]
            b = d0 * T[:, 0, 1] + d1 * T[:, 1, 1]
            c = v[:, 2] - a * T[:, 2, 0] - b * T[:, 2, 1]
            q = np.asarray(queries, dtype=np.float64)[inside]
            s = simplex[inside]
            out[inside] = a[s] * q[:, 0] + b[s] * q[:, 1] + c[s]
        return out, simplex

    def _locate(self, queries):
        q = np.asarray(queries, dtype=np.float64)
        r, c = q[:, 0], q[:, 1]
        rows, cols = self.rows, self.cols
        i = np.clip(np.searchsorted(rows, r, side="right") - 1, 0, len(rows) - 2)
        j = np.clip(np.searchsorted(cols, c, side="right") - 1, 0, len(cols) - 2)
        u = (r - rows[i]) / (rows[i + 1] - rows[i])
        v = (c - cols[j]) / (cols[j + 1] - cols[j])
        simplex = 2 * (i * (len(cols) - 1) + j) + np.where(self._main_diagonal(i, j), u < v, u + v > 1.0)
        simplex[(r < rows[0]) | (r > rows[-1]) | (c < cols[0]) | (c > cols[-1])] = -1
        return simplex


def _neighbours(simplices: np.ndarray) -> np.ndarray:
    """Triangle across each edge (opposite each vertex) of a manifold triangulation, -1 where none."""
    t = len(simplices)
    a = simplices[:, [1, 2, 0]].ravel()  # edge opposite vertex m joins the other two
    b = simplices[:, [2, 0, 1]].ravel()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = lo * (int(simplices.max()) + 1) + hi
    order = np.argsort(key, kind="stable")
    ks = key[order]
    pair = np.flatnonzero(ks[1:] == ks[:-1])
    out = np.full(3 * t, -1, dtype=np.int64)
    left, right = order[pair], order[pair + 1]
    out[left] = right // 3
    out[right] = left // 3
    return out.reshape(t, 3)


def _barycentric_transform(corners: np.ndarray) -> np.ndarray:
    """`scipy.spatial.Delaunay.transform` of triangles with corners (t, 3, 2): inverse of [p0 - p2, p1 - p2] and p2."""
    e0 = corners[:, 0] - corners[:, 2]
    e1 = corners[:, 1] - corners[:, 2]
    det = e0[:, 0] * e1[:, 1] - e1[:, 0] * e0[:, 1]
    out = np.empty((len(corners), 3, 2))
    out[:, 0, 0] = e1[:, 1] / det
    out[:, 0, 1] = -e1[:, 0] / det
    out[:, 1, 0] = -e0[:, 1] / det
    out[:, 1, 1] = e0[:, 0] / det
    out[:, 2] = corners[:, 2]
    return out
