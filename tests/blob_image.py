"""The test image: edges and smooth parts, no data files needed (numpy and scipy only)."""

import numpy as np
from scipy.ndimage import gaussian_filter


def blob_image(size: int = 64) -> np.ndarray:
    """Eight overlapping discs, blurred, on a gentle vertical wave; the same for every call."""
    rng = np.random.default_rng(123)
    rr, cc = np.mgrid[0:size, 0:size]
    img = np.zeros((size, size))
    for _ in range(8):
        r0, c0, rad = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(4, 12)
        img[(rr - r0) ** 2 + (cc - c0) ** 2 < rad**2] += rng.uniform(0.3, 1.0)
    return gaussian_filter(img, 1.0) + 0.2 * np.sin(rr / 9.0)
