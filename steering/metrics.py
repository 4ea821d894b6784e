"""Image-quality metrics against the full raster, on min-max normalised images (data range 1)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter

__all__ = ["normalise", "psnr", "ssim", "nrmse", "quality"]


def normalise(truth: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both images by the truth's min and max so that the truth spans [0, 1]."""
    truth = np.asarray(truth, dtype=np.float64)
    lo, hi = float(truth.min()), float(truth.max())
    span = hi - lo if hi > lo else 1.0
    return (truth - lo) / span, (np.asarray(image, dtype=np.float64) - lo) / span


def psnr(truth: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (data range 1 after normalisation)."""
    t, x = normalise(truth, image)
    mse = float(np.mean((t - x) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(1.0 / mse))


def nrmse(truth: np.ndarray, image: np.ndarray) -> float:
    """Root-mean-square error divided by the truth's range."""
    t, x = normalise(truth, image)
    return float(np.sqrt(np.mean((t - x) ** 2)))


def ssim(truth: np.ndarray, image: np.ndarray, win: int = 7) -> float:
    """Mean structural similarity (7x7 uniform window, sample covariance, K1=0.01, K2=0.03).

    Follows the definition of Wang et al. (2004) with the conventions of scikit-image's default
    `structural_similarity` (data range 1, border of half a window excluded from the mean).
    """
    t, x = normalise(truth, image)
    win = min(win, *t.shape) | 1
    npix = win * win
    cov = npix / (npix - 1) if npix > 1 else 1.0
    ux, uy = uniform_filter(t, win), uniform_filter(x, win)
    vx = cov * (uniform_filter(t * t, win) - ux * ux)
    vy = cov * (uniform_filter(x * x, win) - uy * uy)
    vxy = cov * (uniform_filter(t * x, win) - ux * uy)
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = (win - 1) // 2
    inner = s[pad : s.shape[0] - pad or None, pad : s.shape[1] - pad or None]
    return float(inner.mean()) if inner.size else float(s.mean())


def quality(truth: np.ndarray, image: np.ndarray) -> dict:
    """PSNR, SSIM and NRMSE of ``image`` against ``truth``."""
    return {"psnr": psnr(truth, image), "ssim": ssim(truth, image), "nrmse": nrmse(truth, image)}
