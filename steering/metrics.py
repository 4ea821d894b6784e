"""Image-quality metrics against the full raster, on min-max normalised images (data range 1).

Thin wrappers over `skimage.metrics` that fix the conventions every figure of this project uses:
both images are scaled by the truth's minimum and maximum, so the truth spans [0, 1] and the data
range is 1; SSIM uses scikit-image's defaults (7x7 uniform window, sample covariance).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

__all__ = ["normalise", "psnr", "ssim", "nrmse", "quality"]


def normalise(truth: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both images by the truth's min and max so that the truth spans [0, 1]."""
    truth = np.asarray(truth, dtype=np.float64)
    lo, hi = float(truth.min()), float(truth.max())
    span = hi - lo if hi > lo else 1.0
    return (truth - lo) / span, (np.asarray(image, dtype=np.float64) - lo) / span


def psnr(truth: np.ndarray, image: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB (data range 1 after normalisation; inf for a perfect image)."""
    t, x = normalise(truth, image)
    if mean_squared_error(t, x) == 0:
        return float("inf")
    return float(peak_signal_noise_ratio(t, x, data_range=1.0))


def nrmse(truth: np.ndarray, image: np.ndarray) -> float:
    """Root-mean-square error divided by the truth's range."""
    t, x = normalise(truth, image)
    return float(np.sqrt(mean_squared_error(t, x)))


def ssim(truth: np.ndarray, image: np.ndarray, win: int = 7) -> float:
    """Mean structural similarity (scikit-image's `structural_similarity`, data range 1).

    The window shrinks to the image's smaller side (made odd) for images smaller than ``win``.
    """
    t, x = normalise(truth, image)
    return float(structural_similarity(t, x, data_range=1.0, win_size=min(win, *t.shape) | 1))


def quality(truth: np.ndarray, image: np.ndarray) -> dict:
    """PSNR, SSIM and NRMSE of ``image`` against ``truth``."""
    return {"psnr": psnr(truth, image), "ssim": ssim(truth, image), "nrmse": nrmse(truth, image)}
