"""Reconstruction of the full image from sparse measurements.

The default is Delaunay-linear interpolation (it beat inverse-distance weighting and Clough-Tocher
cubic on adaptively chosen points in our measurements, see DESIGN.md); pixels outside the convex hull
of the measurements take the value of the nearest measurement. `reconstruct_idw` is SLADS'
inverse-distance weighting, kept as a baseline.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay, QhullError, cKDTree
from threadpoolctl import ThreadpoolController

from .lattice import LatticeTriangulation, product_lattice

__all__ = ["triangulate", "interpolate_linear", "reconstruct_linear", "reconstruct_idw", "mirror_for_thin_grid"]


def mirror_for_thin_grid(points: np.ndarray, values: np.ndarray, shape: tuple[int, int]):
    """Copy the points of a 1xN (or Nx1) grid to the rows (columns) either side.

    Points on a line cannot be triangulated; with mirrored copies carrying the same values, a
    triangulation of the strip interpolates linearly along the line, exactly as 1-D interpolation.
    """
    H, W = shape
    if H > 1 and W > 1:
        return points, values
    axis = 0 if H == 1 else 1
    up, down = points.copy(), points.copy()
    up[:, axis] -= 1
    down[:, axis] += 1
    return np.vstack([points, up, down]), np.concatenate([values, values, values])


def triangulate(points: np.ndarray) -> Delaunay | LatticeTriangulation | None:
    """Delaunay triangulation of distinct (row, col) points, or None where none exists (< 3 or collinear).

    A product lattice (every pair of a set of rows and a set of columns, as a coarse raster measures)
    gets a `LatticeTriangulation`, built by arithmetic; other point sets Qhull's.
    """
    if len(points) < 3:
        return None
    points = np.asarray(points, dtype=np.float64)
    lattice = product_lattice(points)
    if lattice is not None:
        return LatticeTriangulation(points, lattice)
    try:
        tri = Delaunay(points)
    except (QhullError, ValueError):
        return None
    # scipy computes the barycentric transforms (which find_simplex needs) with one small LAPACK solve
    # per triangle; with BLAS threads on a busy machine each solve waits on them: 2-3 s instead of
    # 0.15 s for 50k triangles. One thread gives the same numbers.
    with _blas_controller().limit(limits=1, user_api="blas"):
        tri.transform  # noqa: B018  (computed and cached now)
    return tri


_BLAS: list[ThreadpoolController] = []  # made once, on first use: it inspects the loaded libraries


def _blas_controller() -> ThreadpoolController:
    if not _BLAS:
        _BLAS.append(ThreadpoolController())
    return _BLAS[0]


def interpolate_linear(
    tri: Delaunay | LatticeTriangulation, values: np.ndarray, queries: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-linear interpolation on a triangulation.

    Parameters
    ----------
    tri : Delaunay or LatticeTriangulation
    values : (n,) or (n, C) array
        Values at the triangulation's points; with C columns, C images share the points and the
        queries are located once.
    queries : (Q, 2) array

    Returns
    -------
    vals : (Q,) or (Q, C) float array
        Interpolated values; NaN outside the convex hull.
    simplex : (Q,) int array
        Containing triangle of each query, -1 outside the hull.
    """
    values = np.asarray(values, dtype=np.float64)
    channels = values[None, :] if values.ndim == 1 else values.T
    if isinstance(tri, LatticeTriangulation):
        simplex = tri.find_simplex(queries)
        vals = np.column_stack([tri.interpolate(v, queries, simplex=simplex)[0] for v in channels])
        return (vals[:, 0] if values.ndim == 1 else vals), simplex
    q = np.asarray(queries, dtype=np.float64)
    simplex = tri.find_simplex(q)
    inside = simplex >= 0
    vals = np.full((len(q), len(channels)), np.nan)
    if inside.any():
        s = simplex[inside]
        T = tri.transform[s]
        b = np.einsum("nij,nj->ni", T[:, :2, :], q[inside] - T[:, 2, :])
        bary = np.column_stack([b, 1.0 - b.sum(axis=1)])
        corners = tri.simplices[s]
        for k, v in enumerate(channels):
            vals[inside, k] = np.einsum("ni,ni->n", bary, v[corners])
    return (vals[:, 0] if values.ndim == 1 else vals), simplex


def _grid_queries(shape):
    H, W = shape
    rr, cc = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    return np.column_stack([rr.ravel(), cc.ravel()])


def reconstruct_linear(shape: tuple[int, int], points: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Delaunay-linear reconstruction of a whole grid (nearest value outside the hull).

    Parameters
    ----------
    shape : (H, W)
        Grid shape.
    points : (n, 2) array
        Measured pixels (row, col), n >= 1.
    values : (n,) array
        Measured values.

    Returns
    -------
    (H, W) float64 array
    """
    points = np.asarray(points, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(points) == 0:
        raise ValueError("reconstruct_linear needs at least one measured point")
    q = _grid_queries(shape)
    mp, mv = mirror_for_thin_grid(points, values, shape)
    tri = triangulate(mp)
    vals = np.full(len(q), np.nan) if tri is None else interpolate_linear(tri, mv, q)[0]
    out = ~np.isfinite(vals)
    if out.any():
        vals[out] = values[cKDTree(points).query(q[out])[1]]
    return vals.reshape(shape)


def reconstruct_idw(shape: tuple[int, int], points: np.ndarray, values: np.ndarray, k: int = 10) -> np.ndarray:
    """SLADS' inverse-distance-weighted reconstruction (weights 1/d^2 over the k nearest measurements)."""
    points = np.asarray(points, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if len(points) == 0:
        raise ValueError("reconstruct_idw needs at least one measured point")
    q = _grid_queries(shape)
    k = min(k, len(points))
    d, i = cKDTree(points).query(q, k=k)
    d, i = d.reshape(len(q), k), i.reshape(len(q), k)
    w = 1.0 / np.maximum(d, 1e-12) ** 2
    exact = d[:, 0] == 0
    vals = (w * values[i]).sum(axis=1) / w.sum(axis=1)
    vals[exact] = values[i[exact, 0]]
    return vals.reshape(shape)
