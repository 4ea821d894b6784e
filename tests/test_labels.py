"""The RD label (ladder of Gaussian blurs) against an explicit window sum."""

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from steering.labels import SIGMA_LADDER_BASE, reduction_in_distortion, reduction_in_distortion_bruteforce


def _state(seed=0, shape=(24, 20), frac=0.08):
    rng = np.random.default_rng(seed)
    measured = rng.random(shape) < frac
    error = np.abs(rng.normal(size=shape)) * ~measured
    return error, distance_transform_edt(~measured)


def test_matches_bruteforce_within_interpolation_error():
    for c in (2.0, 4.0):
        error, dist = _state()
        fast = reduction_in_distortion(error, dist, c)
        slow = reduction_in_distortion_bruteforce(error, dist, c)
        m = dist > 0
        rel = np.abs(fast[m] - slow[m]) / slow[m]
        assert np.median(rel) < 0.03 and rel.max() < 0.25
        assert np.all(fast[~m] == 0)


def test_exact_on_ladder_sigmas():
    error, dist = _state(1)
    # Force every unmeasured pixel's sigma onto a ladder level: d = c * 0.25 * sqrt(2)^k.
    c = 4.0
    k = (np.arange(dist.size).reshape(dist.shape) % 5).astype(float)
    dist = np.where(dist > 0, c * SIGMA_LADDER_BASE * np.sqrt(2.0) ** k, 0.0)
    np.testing.assert_allclose(
        reduction_in_distortion(error, dist, c),
        reduction_in_distortion_bruteforce(error, dist, c),
        rtol=1e-9,
        atol=1e-12,
    )


def test_rd_grows_with_distance_and_error():
    error = np.ones((31, 31))
    dist = np.zeros((31, 31))
    dist[15, 15], dist[5, 5] = 4.0, 8.0
    rd = reduction_in_distortion(error, dist, 4.0)
    assert rd[5, 5] > rd[15, 15] > 0
    rd2 = reduction_in_distortion(2 * error, dist, 4.0)
    np.testing.assert_allclose(rd2, 2 * rd)


def _points_state(seed, n, shape=(40, 36)):
    """A smooth noisy image sampled at ``n`` points in general position (no four on one circle)."""
    from scipy.interpolate import RegularGridInterpolator
    from scipy.ndimage import gaussian_filter
    from scipy.spatial import cKDTree

    from steering.reconstruction import interpolate_linear, triangulate

    rng = np.random.default_rng(seed)
    H, W = shape
    img = gaussian_filter(rng.normal(size=shape), 2) + 0.05 * rng.normal(size=shape)
    f = RegularGridInterpolator((np.arange(H), np.arange(W)), img)
    pts = rng.uniform(0, 1, (n, 2)) * [H - 1, W - 1]
    vals = f(pts)
    pix = np.argwhere(np.ones(shape, bool)).astype(float)
    old = interpolate_linear(triangulate(pts), vals, pix)[0]
    out = ~np.isfinite(old)
    old[out] = vals[cKDTree(pts).query(pix[out])[1]]
    cand = rng.uniform(0, 1, (150, 2)) * [H - 1, W - 1]
    return pts, vals, cand, f(cand), pix, img.ravel(), old


def test_realised_gain_equals_a_full_retriangulation_per_candidate():
    from steering.labels import realised_gain, realised_gain_bruteforce
    from steering.reconstruction import triangulate

    for seed, n in ((0, 6), (1, 25), (2, 90), (3, 220)):
        pts, vals, cand, cand_vals, pix, truth, old = _points_state(seed, n)
        fast = realised_gain(pts, vals, cand, cand_vals, pix, truth, old)
        slow = realised_gain_bruteforce(pts, vals, cand, cand_vals, pix, truth)
        outside = triangulate(pts).find_simplex(cand) < 0
        assert outside.any() and (~outside).any()  # both code paths are exercised
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)
        assert (slow < 0).any()  # a noisy value can make the reconstruction worse


def test_realised_reduction_on_a_pixel_grid():
    from scipy.stats import spearmanr

    from steering.labels import realised_gain_bruteforce, realised_reduction
    from steering.reconstruction import reconstruct_linear

    rng = np.random.default_rng(4)
    truth = np.cumsum(rng.normal(size=(30, 28)), axis=1)
    measured = rng.random(truth.shape) < 0.08
    recon = reconstruct_linear(truth.shape, np.argwhere(measured), truth[measured])
    cand = np.argwhere(~measured)
    gain = realised_reduction(truth * 3.0, measured, recon * 3.0, cand, scale=3.0)
    ref = realised_gain_bruteforce(np.argwhere(measured).astype(float), truth[measured], cand.astype(float),
                                   truth[~measured], np.argwhere(~measured).astype(float), truth[~measured])
    # Pixel grids hold cocircular measurements, where the triangulation is not unique and a new
    # triangulation may flip ties far from the candidate; the ranking still agrees.
    assert np.mean(np.abs(gain - ref) <= 1e-9 * np.abs(ref).max()) > 0.3
    assert spearmanr(gain, ref).statistic > 0.9
    own = (truth - recon)[~measured] ** 2  # measuring a pixel at least removes its own error...
    assert np.corrcoef(gain, own)[0, 1] > 0.3
    with pytest.raises(ValueError, match="unmeasured"):
        realised_reduction(truth, measured, recon, np.argwhere(measured)[:2])
    with pytest.raises(ValueError, match="3 measured"):
        few = np.zeros_like(measured)
        few[0, :2] = True
        realised_reduction(truth, few, recon, np.array([[10, 10], [11, 12], [20, 5]]))
