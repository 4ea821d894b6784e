"""Per-pixel features for the ERD network.

The features describe, at the scale of the local sampling density, how badly the linear
reconstruction may miss the truth around a pixel: the size of the Delaunay triangle that holds the
pixel, the spread of its vertex values, the change of the reconstructed value across it, and the kink
between its plane and the planes of its neighbours (a discrete curvature, the quantity that bounds
the error of linear interpolation). All value-like features are in units of a fixed intensity scale
and enter as logarithms, so the network sees ratios and the same model serves any intensity range.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import Delaunay

__all__ = ["FEATURE_NAMES", "N_FEATURES", "triangle_geometry", "triangle_rings", "triangle_features", "pixel_features"]

FEATURE_NAMES = (
    "log_distance",
    "log_triangle_size",
    "log_vertex_range",
    "log_triangle_variation",
    "log_kink_max",
    "log_kink_mean",
    "log_nearest_deviation",
    "inside_hull",
    "log_neighbour_range_max",
    "log_neighbour_kink_max",
    "level",
)
N_FEATURES = len(FEATURE_NAMES)
_EPS = 1e-3


def triangle_geometry(tri: Delaunay) -> dict:
    """The value-free part of `triangle_features`: edges, sizes and neighbours, shared by every channel."""
    simp = tri.simplices
    p = tri.points[simp]  # (t, 3, 2)
    e1, e2 = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    det = np.where(np.abs(det) < 1e-12, 1e-12, det)
    edges = np.stack([e1, e2, p[:, 2] - p[:, 1]], axis=1)
    nb = tri.neighbors
    valid = nb >= 0
    return {"e1": e1, "e2": e2, "det": det, "size": np.linalg.norm(edges, axis=2).max(axis=1),
            "neighbours": np.maximum(nb, 0), "valid": valid, "n_valid": valid.sum(axis=1)}


def triangle_rings(geometry: dict, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``rows`` (all triangles if None), with their neighbours, and with their neighbours' neighbours:
    the triangles whose gradients and ranges `triangle_features` of ``rows`` depends on."""
    if rows is None:
        every = np.arange(len(geometry["neighbours"]))
        return every, every, every
    nb, valid = geometry["neighbours"], geometry["valid"]
    ring0 = np.asarray(rows, dtype=np.int64)
    ring1 = np.union1d(ring0, nb[ring0][valid[ring0]])
    return ring0, ring1, np.union1d(ring1, nb[ring1][valid[ring1]])


def triangle_features(tri: Delaunay, values: np.ndarray, geometry: dict | None = None,
                      rows: np.ndarray | None = None) -> np.ndarray:
    """Per-triangle (size, vertex range, variation across, kink max, kink mean, and the largest vertex
    range and kink among the three neighbouring triangles).

    Parameters
    ----------
    tri : Delaunay
        Triangulation of measured (row, col) points.
    values : (n,) array, or (n, C) for C channels at once
        Values at the points, already divided by the intensity scale.
    geometry : dict, optional
        `triangle_geometry` of ``tri``, where the caller has it.
    rows : int array or tuple, optional
        Only these triangles' features are needed (the others are left 0): a local refresh needs
        the triangles holding its pixels, and computes what they depend on, two rings of
        neighbours, instead of every triangle of its window. A tuple: `triangle_rings` of them,
        where several channels share it.

    Returns
    -------
    (n_triangles, 7) float64 array, or (C, n_triangles, 7)
    """
    geo = triangle_geometry(tri) if geometry is None else geometry
    ring0, ring1, ring2 = triangle_rings(geo, rows) if rows is None or not isinstance(rows, tuple) else rows
    together = _triangle_features_of_channels(tri, np.asarray(values).reshape(len(values), -1), geo,
                                              (ring0, ring1, ring2), rows is not None)
    return together if np.ndim(values) == 2 else together[0]


def _triangle_features_of_channels(tri, values: np.ndarray, geo: dict, rings, subset: bool) -> np.ndarray:
    """`triangle_features` of (n, C) values: (C, n_triangles, 7), every channel in one pass (a last axis)."""
    ring0, ring1, ring2 = rings
    nb, valid = geo["neighbours"], geo["valid"]
    t, C = len(tri.simplices), values.shape[1]
    e1, e2, det, size = geo["e1"][ring2], geo["e2"][ring2], geo["det"][ring2, None], geo["size"]
    v = values[tri.simplices[ring2]]  # (t2, 3, C)
    d1, d2 = v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]
    g = np.zeros((t, 2, C))
    g[ring2, 0] = (d1 * e2[:, 1:2] - d2 * e1[:, 1:2]) / det
    g[ring2, 1] = (e1[:, 0:1] * d2 - e2[:, 0:1] * d1) / det
    vrange = np.zeros((t, C))
    vrange[ring2] = np.ptp(v, axis=1)
    kink = np.sqrt(((g[ring1][:, None] - g[nb[ring1]]) ** 2).sum(axis=2)) * size[ring1][:, None, None]
    kink = np.where(valid[ring1][:, :, None], kink, 0.0)  # (t1, 3, C)
    kmax = np.zeros((t, C))
    kmax[ring1] = kink.max(axis=1)
    k0 = kink if not subset else kink[np.searchsorted(ring1, ring0)]
    out = np.zeros((C, t, 7))
    at = ring0 if subset else slice(None)
    out[:, at, 0] = size[ring0]
    out[:, at, 1] = vrange[ring0].T
    out[:, at, 2] = (np.sqrt((g[ring0] ** 2).sum(axis=1)) * size[ring0][:, None]).T
    out[:, at, 3] = kmax[ring0].T
    out[:, at, 4] = (k0.sum(axis=1) / np.maximum(geo["n_valid"][ring0], 1)[:, None]).T
    out[:, at, 5] = np.where(valid[ring0][:, :, None], vrange[nb[ring0]], 0.0).max(axis=1).T
    out[:, at, 6] = np.where(valid[ring0][:, :, None], kmax[nb[ring0]], 0.0).max(axis=1).T
    return out


def pixel_features(
    distance: np.ndarray,
    simplex: np.ndarray,
    tri_feats: np.ndarray | None,
    recon: np.ndarray,
    nearest_value: np.ndarray,
    offset: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Assemble the (n, N_FEATURES) float32 feature matrix of n unmeasured pixels.

    Parameters
    ----------
    distance : (n,) array
        Distance to the nearest measured pixel (>= 1 for unmeasured pixels).
    simplex : (n,) int array
        Containing triangle (-1 outside the convex hull or without a triangulation).
    tri_feats : (t, 7) array or None
        Output of `triangle_features`.
    recon, nearest_value : (n,) arrays
        Reconstructed value at the pixel and value of its nearest measurement (scaled units).
    offset : float
        Low reference level (scaled units) subtracted from ``recon`` for the ``level`` feature.
    out : (n, N_FEATURES) float32 array, optional
        Written in place and returned (several channels' features fill one array for the network).
    """
    n = len(distance)
    inside = simplex >= 0
    out = np.empty((n, N_FEATURES), dtype=np.float32) if out is None else out
    out[:, 0] = np.log(np.maximum(distance, 1e-6))
    # The logs are taken per triangle and gathered (a million pixels share a few hundred thousand triangles);
    # pixels outside the hull have a "triangle" of twice their distance and zeros elsewhere.
    n_tri = 0 if tri_feats is None else len(tri_feats)
    per_triangle = np.empty((n_tri + 1, 7), dtype=np.float32)
    if n_tri:
        per_triangle[:-1, 0] = np.log(np.maximum(tri_feats[:, 0], 1e-6))
        per_triangle[:-1, 1:] = np.log(tri_feats[:, 1:] + _EPS)
    per_triangle[-1] = np.log(_EPS)
    gathered = per_triangle[np.where(inside, simplex, n_tri)]
    for k, col in enumerate((1, 2, 3, 4, 5, 8, 9)):
        out[:, col] = gathered[:, k]
    outside = np.flatnonzero(~inside)
    out[outside, 1] = np.log(np.maximum(2.0 * distance[outside], 1e-6))
    out[:, 6] = np.log(np.abs(recon - nearest_value) + _EPS)
    out[:, 7] = inside
    out[:, 10] = recon - offset
    return out
