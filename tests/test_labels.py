"""The RD label (ladder of Gaussian blurs) against an explicit window sum."""

import numpy as np
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
