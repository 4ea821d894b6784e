"""A sample under the beam: a 2-D image placed on stage coordinates, and what a detector counts on it.

Pure numpy, so both the in-process simulated microscope and the caproto IOC (which must not load
ophyd or a Channel Access client) use the same optics. Pixel (row, col) sits at stage position
``y = origin[0] + row * pixel_size``, ``x = origin[1] + col * pixel_size``; between pixels the beam
sees the bilinear interpolation, outside the image the nearest edge.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import map_coordinates

from steering.images import as_image, load_image
from steering.synthetic import synthetic_image

__all__ = ["SampleImage", "default_sample", "spot_pattern"]


def default_sample(size: int = 128) -> np.ndarray:
    """The built-in sample: particles of several sizes on a smooth background, values in [0, 1]."""
    return synthetic_image("particles", size, rng=np.random.default_rng(2023))


def spot_pattern(shape: tuple[int, int]) -> np.ndarray:
    """A Gaussian beam spot on a detector of ``shape`` pixels, normalised to sum 1."""
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"frame shape must be positive, got {shape}")
    rr, cc = np.mgrid[0:h, 0:w]
    spot = np.exp(-((rr - (h - 1) / 2) ** 2 + (cc - (w - 1) / 2) ** 2) / (2 * (max(h, w) / 6) ** 2))
    return spot / spot.sum()


class SampleImage:
    """A sample image on stage coordinates.

    Parameters
    ----------
    sample : array, path or None
        A 2-D array, or a TIFF/PNG/JPEG/NPY file; None gives `default_sample`.
    pixel_size : float or (py, px)
        Stage distance between sample pixels (µm), one for both axes or one per axis.
    origin : (y0, x0)
        Stage position of pixel (0, 0).

    Attributes
    ----------
    pixel_yx : (py, px)
        Pixel size per axis.
    """

    def __init__(self, sample=None, *, pixel_size: float | tuple[float, float] = 1.0, origin=(0.0, 0.0)):
        if sample is None:
            image = default_sample()
        elif isinstance(sample, (str, Path)):
            image = load_image(sample)
        else:
            image = as_image(sample, what="sample")
        py, px = (pixel_size, pixel_size) if np.isscalar(pixel_size) else tuple(pixel_size)
        if not (py > 0 and px > 0 and np.isfinite(py) and np.isfinite(px)):
            raise ValueError(f"pixel_size must be finite and > 0, got {pixel_size}")
        if not np.all(np.isfinite(origin)) or len(origin) != 2:
            raise ValueError(f"origin must be a finite (y0, x0) pair, got {origin}")
        self.image = image
        self.peak = float(image.max())
        self.pixel_yx = (float(py), float(px))
        self.pixel_size = self.pixel_yx[0] if py == px else self.pixel_yx
        self.origin = (float(origin[0]), float(origin[1]))

    @classmethod
    def from_extent(cls, sample, extent) -> SampleImage:
        """Place ``sample`` so that its first and last pixels sit at ``extent = ((y0, y1), (x0, x1))``."""
        probe = cls(sample)
        try:
            (y0, y1), (x0, x1) = ((float(a), float(b)) for a, b in extent)
        except (TypeError, ValueError):
            raise ValueError(f"extent must be ((y0, y1), (x0, x1)), got {extent!r}") from None
        h, w = probe.shape
        py = (y1 - y0) / (h - 1) if h > 1 else 1.0
        px = (x1 - x0) / (w - 1) if w > 1 else 1.0
        if not (py > 0 and px > 0):
            raise ValueError(f"extent must increase along both axes, got {extent!r}")
        return cls(probe.image, pixel_size=(py, px), origin=(y0, x0))

    @property
    def shape(self) -> tuple[int, int]:
        """Image shape in pixels (rows, cols)."""
        return self.image.shape

    def extent(self) -> tuple[float, float, float, float]:
        """Stage coordinates ``(y_start, y_stop, x_start, x_stop)`` of the first and last pixels."""
        (h, w), (y0, x0), (py, px) = self.shape, self.origin, self.pixel_yx
        return (y0, y0 + (h - 1) * py, x0, x0 + (w - 1) * px)

    def value_at(self, y: float, x: float) -> float:
        """The noiseless sample value with the beam at stage position (y, x)."""
        r = (y - self.origin[0]) / self.pixel_yx[0]
        c = (x - self.origin[1]) / self.pixel_yx[1]
        return float(map_coordinates(self.image, [[r], [c]], order=1, mode="nearest")[0])

    def values_at(self, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        """`value_at` of many stage positions at once."""
        r = (np.asarray(y, dtype=np.float64) - self.origin[0]) / self.pixel_yx[0]
        c = (np.asarray(x, dtype=np.float64) - self.origin[1]) / self.pixel_yx[1]
        return map_coordinates(self.image, [r, c], order=1, mode="nearest")

    def count(self, y: float, x: float, *, dwell: float, flux: float, rng: np.random.Generator) -> float:
        """One detector reading at (y, x).

        With ``flux > 0`` (photons per second at the brightest sample value) a Poisson photon count
        over ``dwell`` seconds; with ``flux == 0`` the noiseless sample value.
        """
        return float(self.noisy(self.value_at(y, x), dwell=dwell, flux=flux, rng=rng))

    def noisy(self, value, *, dwell: float, flux: float, rng: np.random.Generator):
        """What a detector counts in ``dwell`` seconds where the noiseless sample value is ``value``.

        The noise model of `count`: with ``flux > 0`` a Poisson photon count of mean
        ``max(value, 0) / peak * flux * dwell``; with ``flux == 0`` the value itself.

        Parameters
        ----------
        value : float or array
            Noiseless sample value(s), e.g. a mean along a stretch the beam swept.
        dwell, flux : float
            Counting time (s) and photons per second at the brightest sample value.
        rng : numpy.random.Generator
            Source of the noise.

        Returns
        -------
        float or ndarray
            Of the shape of ``value``.
        """
        if flux > 0:
            if self.peak <= 0:
                return np.zeros_like(np.asarray(value, dtype=np.float64))[()]
            lam = np.maximum(value, 0.0) / self.peak * flux * dwell
            return np.asarray(rng.poisson(lam), dtype=np.float64)[()]
        return value
