"""Training labels: the reduction in distortion (RD) of measuring a pixel.

SLADS defines the reduction in distortion of measuring pixel ``s`` as the error that measurement
removes from the reconstruction. `realised_reduction` computes it exactly, for the squared error of
the Delaunay-linear reconstruction: the triangulation with ``s`` inserted, interpolated again where
it changed, against the true image (the default training label). SLADS approximates it by a Gaussian
window around ``s`` (`reduction_in_distortion`)::

    RD(s) = sum_r |X - X_hat|(r) * exp(-|r - s|^2 / (2 sigma(s)^2)),   sigma(s) = d(s) / c

with ``d(s)`` the distance from ``s`` to the nearest measured pixel. A per-pixel window loop costs
O(pixels x window). Instead the error image is blurred once per level of a geometric ladder of sigmas
and each pixel takes the value interpolated (in log sigma) between the two levels that bracket its own
sigma; at a sigma on the ladder the result is exact.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import Delaunay, cKDTree

from .reconstruction import interpolate_linear, triangulate

__all__ = [
    "reduction_in_distortion",
    "reduction_in_distortion_bruteforce",
    "realised_reduction",
    "realised_gain",
    "realised_gain_bruteforce",
    "SIGMA_LADDER_BASE",
]

SIGMA_LADDER_BASE = 0.25
_TRUNCATE = 4.0


def _unnormalised_mass(sigma: float) -> float:
    """Sum of the discrete, truncated, unnormalised 2-D Gaussian kernel that `gaussian_filter` uses."""
    radius = int(_TRUNCATE * sigma + 0.5)
    i = np.arange(-radius, radius + 1)
    return float(np.exp(-(i**2) / (2.0 * sigma**2)).sum() ** 2)


def reduction_in_distortion(
    error: np.ndarray, distance: np.ndarray, c: float = 4.0, mask: np.ndarray | None = None
) -> np.ndarray:
    """RD label of every pixel from an error image, by interpolation over a ladder of Gaussian blurs.

    Parameters
    ----------
    error : (H, W) array
        Absolute reconstruction error ``|X - X_hat|``.
    distance : (H, W) array
        Distance of each pixel to the nearest measured pixel (0 at measured pixels).
    c : float
        Window constant: ``sigma = distance / c``.
    mask : (H, W) bool array, optional
        Pixels to label; others get 0. Default: every pixel with ``distance > 0``.

    Returns
    -------
    (H, W) float64 array
        The RD label; 0 at measured (and unlabelled) pixels.
    """
    error = np.asarray(error, dtype=np.float64)
    distance = np.asarray(distance, dtype=np.float64)
    if error.shape != distance.shape or error.ndim != 2:
        raise ValueError(f"error and distance must be 2-D of one shape, got {error.shape}, {distance.shape}")
    if c <= 0:
        raise ValueError(f"c must be > 0, got {c}")
    if mask is None:
        mask = distance > 0
    out = np.zeros_like(error)
    if not mask.any():
        return out
    sigma = distance[mask] / c
    smax = float(sigma.max())
    n_levels = max(2, int(np.ceil(2.0 * np.log2(max(smax, SIGMA_LADDER_BASE) / SIGMA_LADDER_BASE))) + 1)
    ladder = SIGMA_LADDER_BASE * np.sqrt(2.0) ** np.arange(n_levels)
    blurred = np.empty((n_levels, int(mask.sum())))
    for k, s in enumerate(ladder):
        b = gaussian_filter(error, s, mode="constant", cval=0.0, truncate=_TRUNCATE)
        blurred[k] = b[mask] * _unnormalised_mass(s)
    pos = np.log(np.clip(sigma, ladder[0], ladder[-1]) / SIGMA_LADDER_BASE) / np.log(np.sqrt(2.0))
    lo = np.clip(np.floor(pos).astype(int), 0, n_levels - 2)
    t = pos - lo
    cols = np.arange(blurred.shape[1])
    out[mask] = (1.0 - t) * blurred[lo, cols] + t * blurred[lo + 1, cols]
    return out


def reduction_in_distortion_bruteforce(error: np.ndarray, distance: np.ndarray, c: float = 4.0) -> np.ndarray:
    """Reference RD by an explicit window sum at every unmeasured pixel (slow; for tests)."""
    error = np.asarray(error, dtype=np.float64)
    H, W = error.shape
    rr, cc = np.mgrid[0:H, 0:W]
    out = np.zeros_like(error)
    for r, q in zip(*np.nonzero(distance > 0), strict=True):
        s = distance[r, q] / c
        radius = int(_TRUNCATE * s + 0.5)
        win = (np.abs(rr - r) <= radius) & (np.abs(cc - q) <= radius)
        out[r, q] = np.sum(error[win] * np.exp(-((rr[win] - r) ** 2 + (cc[win] - q) ** 2) / (2 * s * s)))
    return out


def _circumcircles(tri: Delaunay) -> tuple[np.ndarray, np.ndarray]:
    """Centre (t, 2) and squared radius (t,) of every triangle's circumcircle."""
    p = tri.points[tri.simplices]
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    d = 2.0 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1]) + c[:, 0] * (a[:, 1] - b[:, 1]))
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    a2, b2, c2 = (a * a).sum(1), (b * b).sum(1), (c * c).sum(1)
    ux = (a2 * (b[:, 1] - c[:, 1]) + b2 * (c[:, 1] - a[:, 1]) + c2 * (a[:, 1] - b[:, 1])) / d
    uy = (a2 * (c[:, 0] - b[:, 0]) + b2 * (a[:, 0] - c[:, 0]) + c2 * (b[:, 0] - a[:, 0])) / d
    centre = np.column_stack([ux, uy])
    return centre, ((a - centre) ** 2).sum(1)


def _cavities(tri: Delaunay, cand: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Sorted keys ``s * n_triangles + t`` of the triangles whose circumcircle holds candidate ``s``.

    Bowyer-Watson: inserting a point removes exactly these triangles (a connected set holding the
    triangle ``start[s]`` that contains it); they are found by growing outwards over neighbours.
    """
    n_tri = len(tri.simplices)
    centre, r2 = _circumcircles(tri)
    keys = np.unique(np.arange(len(cand), dtype=np.int64) * n_tri + start)
    front_s, front_t = keys // n_tri, keys % n_tri
    while len(front_s):
        s = np.repeat(front_s, 3)
        t = tri.neighbors[front_t].ravel()
        ok = t >= 0
        s, t = s[ok], t[ok]
        holds = ((cand[s] - centre[t]) ** 2).sum(1) < r2[t] * (1.0 - 1e-12)
        new = np.unique(s[holds] * n_tri + t[holds])
        new = new[~np.isin(new, keys, assume_unique=True)]
        keys = np.union1d(keys, new)
        front_s, front_t = new // n_tri, new % n_tri
    return keys


def _star_values(tri, vals, cand, cand_vals, keys, pix, pix_tri):
    """For every (candidate, pixel of its cavity) pair: the value after the candidate is inserted.

    The cavity is star-shaped from the candidate and is re-triangulated as a fan from it to the
    cavity's boundary edges; a pixel takes the linear interpolation in the fan triangle whose angular
    sector (seen from the candidate) holds it.
    """
    n_tri, m = len(tri.simplices), len(cand)
    cav_s, cav_t = keys // n_tri, keys % n_tri
    # Boundary edges: edge j of a cavity triangle (opposite vertex j) whose neighbour is not in the cavity.
    es, et = np.repeat(cav_s, 3), np.repeat(cav_t, 3)
    ej = np.tile(np.arange(3), len(cav_s))
    across = tri.neighbors[et, ej]
    probe = es * n_tri + np.maximum(across, 0)
    pos = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
    boundary = ~((across >= 0) & (keys[pos] == probe))
    es, et, ej = es[boundary], et[boundary], ej[boundary]
    va = tri.simplices[et, (ej + 1) % 3]
    vb = tri.simplices[et, (ej + 2) % 3]
    P = tri.points
    ua, ub = P[va] - cand[es], P[vb] - cand[es]
    cross = ua[:, 0] * ub[:, 1] - ua[:, 1] * ub[:, 0]
    keep = np.abs(cross) > 1e-9  # a candidate on a hull edge: that edge spans no triangle
    es, va, vb, cross = es[keep], va[keep], vb[keep], cross[keep]
    va, vb = np.where(cross < 0, vb, va), np.where(cross < 0, va, vb)  # counter-clockwise around s
    ua = P[va] - cand[es]
    sector = es * 8.0 + np.arctan2(ua[:, 1], ua[:, 0]) + np.pi  # edges sorted by (s, start angle)
    order = np.argsort(sector)
    es, va, vb, sector = es[order], va[order], vb[order], sector[order]
    first = np.searchsorted(es, np.arange(m))
    last = np.searchsorted(es, np.arange(m), side="right") - 1
    # Pixels of each cavity triangle.
    inside = np.flatnonzero(pix_tri >= 0)
    inside = inside[np.argsort(pix_tri[inside], kind="stable")]
    counts = np.bincount(pix_tri[inside], minlength=n_tri)
    starts = np.concatenate([[0], np.cumsum(counts)])
    per = counts[cav_t]
    rs = np.repeat(cav_s, per)
    offset = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    rp = inside[np.repeat(starts[cav_t], per) + offset]
    dv = pix[rp] - cand[rs]
    e = np.searchsorted(sector, rs * 8.0 + np.arctan2(dv[:, 1], dv[:, 0]) + np.pi, side="right") - 1
    e = np.where(e < first[rs], last[rs], e)  # the sector that wraps past the angle -pi
    v0, v1 = P[va[e]] - cand[rs], P[vb[e]] - cand[rs]
    den = v0[:, 0] * v1[:, 1] - v0[:, 1] * v1[:, 0]
    la = (dv[:, 0] * v1[:, 1] - dv[:, 1] * v1[:, 0]) / den
    lb = (v0[:, 0] * dv[:, 1] - v0[:, 1] * dv[:, 0]) / den
    new = (1.0 - la - lb) * cand_vals[rs] + la * vals[va[e]] + lb * vals[vb[e]]
    return rs, rp, new


def _outside_hull_gain(
    points, vals, tree, s, s_val, pix, pix_truth, pix_old, pix_tree, beyond, beyond_d, k=30
) -> float:
    """Realised gain of measuring ``s`` outside the hull of the measurements.

    Every triangle that inserting ``s`` creates has ``s`` as a vertex (a fan from ``s``); it is
    taken from a triangulation of the ``k`` measurements nearest to ``s``, ``k`` growing until the
    circumcircles of the fan lie within them. Pixels in the fan are
    interpolated; pixels still beyond the hull take ``s``'s value where it is their nearest
    measurement (``beyond``: indices of the pixels beyond the old hull, ``beyond_d``: their distance
    to the nearest measurement). ``tree`` and ``pix_tree``: k-d trees of ``points`` and ``pix``.
    """
    while True:
        k = min(k, len(points))
        dk, idx = (np.atleast_1d(a) for a in tree.query(s, k=k))
        local = np.vstack([points[idx], s])
        local_vals = np.append(vals[idx], s_val)
        tri = triangulate(local)
        s_index = len(local) - 1
        if tri is None or k == len(points):
            break
        fan = np.any(tri.simplices == s_index, axis=1)
        # A fan triangle whose circumcircle lies within the k nearest is Delaunay among all points;
        # and the fan is whole if its two outer edges bound all points, not only the k nearest.
        centre, r2 = _circumcircles(tri)
        if np.all(np.sqrt(((centre[fan] - s) ** 2).sum(1)) + np.sqrt(r2[fan]) < dk[-1]):
            outer = tri.convex_hull[np.any(tri.convex_hull == s_index, axis=1)]
            ends = local[outer[outer != s_index]] - s

            def cross(e, q):
                return e[0] * (q[:, 1] - s[1]) - e[1] * (q[:, 0] - s[0])

            sign = [np.sign(sd[np.argmax(np.abs(sd))]) for sd in (cross(e, local[:-1]) for e in ends)]
            if all(np.all(cross(e, points) * sg >= -1e-9) for e, sg in zip(ends, sign, strict=True)):
                break
        k *= 4
    new_old: dict[int, float] = {}
    if tri is not None:
        fan = np.any(tri.simplices == s_index, axis=1)
        reach = float(np.sqrt(((local[np.unique(tri.simplices[fan])] - s) ** 2).sum(1).max())) if fan.any() else 0.0
        near = np.asarray(pix_tree.query_ball_point(s, reach + 1e-9), dtype=np.int64)
        if len(near):
            lin, simplex = interpolate_linear(tri, local_vals, pix[near])
            in_fan = (simplex >= 0) & fan[np.maximum(simplex, 0)]
            new_old.update(zip(near[in_fan].tolist(), lin[in_fan].tolist(), strict=True))
    closer = beyond[((pix[beyond] - s) ** 2).sum(1) < beyond_d**2 - 1e-9]
    for r in closer.tolist():
        new_old.setdefault(r, s_val)
    if not new_old:
        return 0.0
    r = np.fromiter(new_old.keys(), np.int64, len(new_old))
    new = np.fromiter(new_old.values(), np.float64, len(new_old))
    return float(np.sum((pix_truth[r] - pix_old[r]) ** 2 - (pix_truth[r] - new) ** 2))


def realised_gain(points, vals, cand, cand_vals, pix, pix_truth, pix_old) -> np.ndarray:
    """`realised_reduction` on explicit coordinates (any (row, col) floats, e.g. for tests).

    Parameters
    ----------
    points, vals : (n, 2), (n,) arrays
        Measured positions and values.
    cand, cand_vals : (m, 2), (m,) arrays
        Candidate positions and the values a measurement there would give.
    pix, pix_truth, pix_old : (q, 2), (q,), (q,) arrays
        Positions of the unmeasured pixels, their true values and their current reconstruction.
    """
    tri = triangulate(points)
    if tri is None:
        raise ValueError("realised_reduction needs at least 3 measured pixels that are not all on one line")
    pix_tri = tri.find_simplex(pix)
    err_old = pix_truth - pix_old
    out = np.zeros(len(cand))
    start = tri.find_simplex(cand) if len(cand) else np.zeros(0, np.int64)
    ins = np.flatnonzero(start >= 0)
    if len(ins):
        keys = _cavities(tri, cand[ins], start[ins])
        rs, rp, new = _star_values(tri, vals, cand[ins], cand_vals[ins], keys, pix, pix_tri)
        gain = err_old[rp] ** 2 - (pix_truth[rp] - new) ** 2
        out[ins] = np.bincount(rs, weights=gain, minlength=len(ins))
    # Beyond the hull a pixel takes its nearest measured value: a candidate that is nearer than
    # every measured point becomes its value there.
    beyond = np.flatnonzero(pix_tri < 0)
    points_tree = cKDTree(points)
    beyond_d = points_tree.query(pix[beyond])[0] if len(beyond) else np.zeros(0)
    if len(ins) and len(beyond):
        tree = cKDTree(cand[ins])
        for j, near in zip(beyond.tolist(), tree.query_ball_point(pix[beyond], beyond_d - 1e-9), strict=True):
            if near:
                near = ins[np.asarray(near)]
                out[near] += err_old[j] ** 2 - (pix_truth[j] - cand_vals[near]) ** 2
    outside = np.flatnonzero(start < 0)
    if len(outside):
        pix_tree = cKDTree(pix)
        for j in outside:
            out[j] = _outside_hull_gain(points, vals, points_tree, cand[j], cand_vals[j], pix, pix_truth, pix_old,
                                        pix_tree, beyond, beyond_d)  # fmt: skip
    return out


def realised_reduction(
    truth: np.ndarray, measured: np.ndarray, recon: np.ndarray, candidates: np.ndarray, *, scale: float = 1.0
) -> np.ndarray:
    """Reduction of the squared error of the linear reconstruction that measuring each candidate brings.

    The exact counterpart of `reduction_in_distortion`: for each unmeasured candidate pixel ``s``,
    ``sum_r (X - X_hat)^2(r) - (X - X_hat_s)^2(r)``, where ``X_hat_s`` is the Delaunay-linear
    reconstruction (nearest value outside the hull) with ``s`` measured too. Inside the hull the
    insertion is Bowyer-Watson's (only the triangles whose circumcircle holds ``s`` change), computed
    for all candidates at once; outside it, from a local triangulation. Unlike the Gaussian-window
    approximation it can be negative: a noisy value can make its neighbours' interpolation worse.
    Where four or more measurements lie on one circle the triangulation is not unique; this takes
    the insertion's own choice there.

    Parameters
    ----------
    truth : (H, W) array
        The full image.
    measured : (H, W) bool array
        Measured pixels (at least 3, not all on one line).
    recon : (H, W) array
        The current Delaunay-linear reconstruction from the measured pixels.
    candidates : (m, 2) int array
        Unmeasured pixels (row, col).
    scale : float
        Intensity unit: the result is in units of ``scale**2``.

    Returns
    -------
    (m,) float64 array
    """
    truth = np.asarray(truth, dtype=np.float64) / scale
    recon = np.asarray(recon, dtype=np.float64) / scale
    measured = np.asarray(measured, dtype=bool)
    if truth.shape != measured.shape or truth.shape != recon.shape or truth.ndim != 2:
        raise ValueError(f"truth, measured and recon must be 2-D of one shape, got {truth.shape}, "
                         f"{measured.shape}, {recon.shape}")  # fmt: skip
    ci = np.asarray(candidates, dtype=np.int64).reshape(-1, 2)
    if len(ci) and measured[ci[:, 0], ci[:, 1]].any():
        raise ValueError("candidates must be unmeasured pixels")
    free = ~measured
    return realised_gain(np.argwhere(measured).astype(np.float64), truth[measured], ci.astype(np.float64),
                         truth[ci[:, 0], ci[:, 1]], np.argwhere(free).astype(np.float64), truth[free],
                         recon[free])  # fmt: skip


def realised_gain_bruteforce(points, vals, cand, cand_vals, pix, pix_truth) -> np.ndarray:
    """Reference `realised_gain`: a whole new triangulation per candidate (slow; for tests)."""
    def recon(p, v):
        tri = triangulate(p)
        out = interpolate_linear(tri, v, pix)[0]
        bad = ~np.isfinite(out)
        out[bad] = v[cKDTree(p).query(pix[bad])[1]]
        return out

    e0 = np.sum((pix_truth - recon(points, vals)) ** 2)
    return np.asarray([e0 - np.sum((pix_truth - recon(np.vstack([points, s]), np.append(vals, v))) ** 2)
                       for s, v in zip(cand, cand_vals, strict=True)])  # fmt: skip
