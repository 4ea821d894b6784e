"""Synthetic microscope-like images for training: particles, grains, flakes, domains, Bragg peaks."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree

__all__ = ["KINDS", "synthetic_image"]

KINDS = ("particles", "grains", "flakes", "domains", "peaks")


def _grid(size):
    return np.mgrid[0:size, 0:size].astype(np.float64)


def _rotated(dr, dc, theta):
    """Coordinates (dr, dc) in a frame rotated by ``theta``."""
    return dr * np.cos(theta) + dc * np.sin(theta), -dr * np.sin(theta) + dc * np.cos(theta)


def _particles(size, rng):
    rr, cc = _grid(size)
    img = np.full((size, size), rng.uniform(0.0, 0.3))
    for _ in range(rng.integers(5, 60)):
        r0, c0 = rng.uniform(0, size, 2)
        a, b = rng.uniform(2, size / 8, 2)
        u, v = _rotated(rr - r0, cc - c0, rng.uniform(0, np.pi))
        inside = (u / a) ** 2 + (v / b) ** 2 <= 1
        img[inside] = rng.uniform(0.3, 1.0) * (1 - 0.3 * rng.random() * ((u / a) ** 2 + (v / b) ** 2))[inside]
    return img


def _grains(size, rng):
    n = int(rng.integers(10, 150))
    seeds = rng.uniform(0, size, (n, 2))
    rr, cc = _grid(size)
    q = np.column_stack([rr.ravel(), cc.ravel()])
    d, i = cKDTree(seeds).query(q, k=2)
    levels = rng.uniform(0, 1, n)
    img = levels[i[:, 0]].reshape(size, size)
    edge = (d[:, 1] - d[:, 0]).reshape(size, size) < rng.uniform(0.5, 2.0)
    img[edge] *= rng.uniform(0.2, 0.8)
    return img


def _flakes(size, rng):
    rr, cc = _grid(size)
    img = np.full((size, size), rng.uniform(0.0, 0.2))
    for _ in range(rng.integers(3, 25)):
        k = int(rng.integers(3, 7))
        r0, c0 = rng.uniform(0, size, 2)
        radius = rng.uniform(size / 20, size / 4)
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        verts = np.column_stack([r0 + radius * np.cos(ang), c0 + radius * np.sin(ang)])
        inside = np.ones((size, size), bool)
        for j in range(k):
            (y1, x1), (y2, x2) = verts[j], verts[(j + 1) % k]
            inside &= (x2 - x1) * (rr - y1) - (y2 - y1) * (cc - x1) <= 0
        img[inside] += rng.uniform(0.1, 0.6)
    return img


def _domains(size, rng):
    noise = gaussian_filter(rng.standard_normal((size, size)), rng.uniform(2, size / 10))
    img = (noise > rng.uniform(-0.3, 0.3) * noise.std()).astype(np.float64)
    if rng.random() < 0.5:
        img = img + 0.3 * gaussian_filter(rng.standard_normal((size, size)), 4) / 0.05
    return img


def _peaks(size, rng):
    rr, cc = _grid(size)
    img = np.zeros((size, size))
    for _ in range(rng.integers(1, 12)):
        r0, c0 = rng.uniform(0, size, 2)
        s1, s2 = rng.uniform(1.5, size / 6, 2)
        u, v = _rotated(rr - r0, cc - c0, rng.uniform(0, np.pi))
        img += rng.uniform(0.2, 1.0) * np.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2))
    return np.log1p(rng.uniform(10, 1000) * img)


_MAKERS = {"particles": _particles, "grains": _grains, "flakes": _flakes, "domains": _domains, "peaks": _peaks}


def synthetic_image(kind: str, size: int = 128, *, rng: np.random.Generator) -> np.ndarray:
    """A (size, size) float image in [0, 1] of the given kind, blurred, with occasional noise."""
    if kind not in _MAKERS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    img = _MAKERS[kind](size, rng)
    img = gaussian_filter(img, rng.uniform(0.3, 1.5))
    if rng.random() < 0.4:
        img = img + rng.uniform(0.005, 0.03) * np.ptp(img) * rng.standard_normal(img.shape)
    lo, hi = img.min(), img.max()
    return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
