"""Training labels: the approximate reduction in distortion (RD) of measuring a pixel.

SLADS defines the reduction in distortion of measuring pixel ``s`` as the error that measurement
removes from the reconstruction, approximated by a Gaussian window around ``s``::

    RD(s) = sum_r |X - X_hat|(r) * exp(-|r - s|^2 / (2 sigma(s)^2)),   sigma(s) = d(s) / c

with ``d(s)`` the distance from ``s`` to the nearest measured pixel. A per-pixel window loop costs
O(pixels x window). Instead the error image is blurred once per level of a geometric ladder of sigmas
and each pixel takes the value interpolated (in log sigma) between the two levels that bracket its own
sigma; at a sigma on the ladder the result is exact.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

__all__ = ["reduction_in_distortion", "reduction_in_distortion_bruteforce", "SIGMA_LADDER_BASE"]

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
