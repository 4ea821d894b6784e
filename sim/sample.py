"""A sample under the beam: a 2-D image placed on stage coordinates, and what a detector counts on it.

Pure numpy, so both the in-process simulated microscope and the caproto IOC (which must not load
ophyd or a Channel Access client) use the same optics. Pixel (row, col) sits at stage position
``y = origin[0] + row * pixel_size``, ``x = origin[1] + col * pixel_size``; between pixels the beam
sees the bilinear interpolation, outside the image the nearest edge.
"""

from __future__ import annotations

import keyword
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from scipy.spatial import cKDTree

from steering.images import as_image, load_image
from steering.synthetic import synthetic_image

__all__ = ["SampleImage", "default_sample", "spot_pattern", "element_maps", "ELEMENTS", "check_element_maps"]

ELEMENTS = ("fe", "zn", "cu")
"""The elements of `element_maps`, in the order of their maps (and of the IOC's scaler channels)."""


def default_sample(size: int = 128) -> np.ndarray:
    """The built-in sample: particles of several sizes on a smooth background, values in [0, 1]."""
    return synthetic_image("particles", size, rng=np.random.default_rng(2023))


def _fe_map(size: int, rng: np.random.Generator) -> np.ndarray:
    """The matrix element: a broad level with a grain texture, thinning out towards one side."""
    scale = size / 128
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float64)
    broad = gaussian_filter(rng.standard_normal((size, size)), size / 6, mode="wrap")
    broad = (broad - broad.mean()) / (broad.std() or 1.0)
    n_grains = max(int(round(40 * scale**2)), 6)
    seeds = rng.uniform(0, size, (n_grains, 2))
    dist, which = cKDTree(seeds).query(np.column_stack([rr.ravel(), cc.ravel()]), k=2)
    grains = rng.uniform(-0.08, 0.08, n_grains)[which[:, 0]].reshape(size, size)
    boundaries = ((dist[:, 1] - dist[:, 0]) < 1.5).reshape(size, size)
    texture = gaussian_filter(grains - 0.06 * boundaries, 1.2 * scale)
    # the matrix thins out beyond a line across one corner (about a sixth of the field)
    angle = rng.uniform(0, 2 * np.pi)
    along = (rr - size / 2) * np.cos(angle) + (cc - size / 2) * np.sin(angle)
    edge = 1.0 / (1.0 + np.exp(-(along - 0.3 * size) / (0.04 * size)))
    fe = (0.62 + 0.1 * broad + texture) * (1.0 - 0.75 * edge)
    fe = np.clip(fe, 0.0, None)
    return fe / fe.max()


def _zn_map(size: int, rng: np.random.Generator, fe: np.ndarray) -> np.ndarray:
    """A handful of small bright particles on a near-zero background, half of them on iron-rich spots."""
    scale = size / 128
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float64)
    zn = 0.01 + 0.005 * gaussian_filter(rng.standard_normal((size, size)), size / 10, mode="wrap") * size / 10
    n = int(rng.integers(8, 13))
    rich = np.flatnonzero(fe >= np.quantile(fe, 0.9))
    on_fe = np.column_stack(np.unravel_index(rng.choice(rich, n // 2, replace=False), fe.shape)).astype(np.float64)
    anywhere = rng.uniform(0.05 * size, 0.95 * size, (n - n // 2, 2))
    for r0, c0 in np.vstack([on_fe, anywhere]):
        s1, s2 = rng.uniform(0.8, 2.2, 2) * scale
        theta = rng.uniform(0, np.pi)
        u = (rr - r0) * np.cos(theta) + (cc - c0) * np.sin(theta)
        v = -(rr - r0) * np.sin(theta) + (cc - c0) * np.cos(theta)
        zn += rng.uniform(0.45, 1.0) * np.exp(-0.5 * ((u / s1) ** 2 + (v / s2) ** 2))
    zn = np.clip(zn, 0.0, None)
    return zn / zn.max()


def _segment_distance(rr, cc, a, b) -> np.ndarray:
    """Distance of every pixel (rr, cc) to the segment from point ``a`` to point ``b``."""
    d = b - a
    t = np.clip(((rr - a[0]) * d[0] + (cc - a[1]) * d[1]) / max(float(d @ d), 1e-12), 0.0, 1.0)
    return np.hypot(rr - a[0] - t * d[0], cc - a[1] - t * d[1])


def _cu_map(size: int, rng: np.random.Generator) -> np.ndarray:
    """Thin curved streaks and two faint flakes on a low background."""
    scale = size / 128
    rr, cc = np.mgrid[0:size, 0:size].astype(np.float64)
    cu = np.full((size, size), 0.02)
    for _ in range(2):  # faint flakes: convex polygons
        k = int(rng.integers(4, 7))
        centre = rng.uniform(0.15 * size, 0.85 * size, 2)
        radius = rng.uniform(0.08, 0.16) * size
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        verts = centre + radius * np.column_stack([np.cos(ang), np.sin(ang)])
        inside = np.ones((size, size), bool)
        for j in range(k):
            (y1, x1), (y2, x2) = verts[j], verts[(j + 1) % k]
            inside &= (x2 - x1) * (rr - y1) - (y2 - y1) * (cc - x1) <= 0
        cu += rng.uniform(0.12, 0.22) * gaussian_filter(inside.astype(np.float64), 1.0 * scale)
    for _ in range(int(rng.integers(5, 8))):  # streaks: quadratic Bezier curves, 1-2 px wide
        start = rng.uniform(0, size, 2)
        heading = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(0.25, 0.55) * size
        end = start + length * np.array([np.cos(heading), np.sin(heading)])
        bend = (start + end) / 2 + rng.uniform(-0.25, 0.25) * length * np.array([-np.sin(heading), np.cos(heading)])
        t = np.linspace(0.0, 1.0, 17)[:, None]
        points = (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t**2 * end
        dist = np.min([_segment_distance(rr, cc, a, b) for a, b in zip(points[:-1], points[1:], strict=True)], axis=0)
        width = rng.uniform(0.6, 1.1) * scale
        cu += rng.uniform(0.5, 1.0) * np.exp(-0.5 * (dist / width) ** 2)
    cu = np.clip(cu, 0.0, None)
    return cu / cu.max()


def element_maps(size: int = 128, seed: int = 2023) -> dict[str, np.ndarray]:
    """The built-in multi-element sample: X-ray fluorescence maps of iron, zinc and copper over one field.

    Three element maps of one field of view, as the regions of interest of a fluorescence spectrum
    give them at a nanoprobe: they share some structure and differ deliberately in the rest.

    ``"fe"``
        The matrix: a broad, slowly varying level over most of the field with a grain texture
        (grains a few percent brighter or darker than their neighbours, slightly darker boundaries),
        falling off smoothly beyond a line across one corner, where the matrix thins out.
    ``"zn"``
        Sparse: 8 to 12 small bright particles (elliptical, 1-2 px across at ``size=128``) on a
        near-zero background (about 0.01 of the brightest); half of them sit on the most iron-rich
        spots of ``"fe"``, the others anywhere.
    ``"cu"``
        Structure of its own: 5 to 7 thin curved streaks (1-2 px wide) and two faint polygonal flakes
        on a low background, crossing the other two maps without following them.

    Parameters
    ----------
    size : int
        Maps are ``(size, size)`` pixels (at least 16); feature sizes scale with it.
    seed : int
        The maps are a deterministic function of ``size`` and ``seed``.

    Returns
    -------
    dict of str to ndarray
        ``{"fe": ..., "zn": ..., "cu": ...}`` (the order of `ELEMENTS`), each float64 of shape
        ``(size, size)`` with values in [0, 1] and its brightest pixel at 1.

    Examples
    --------
    >>> maps = element_maps(64)
    >>> list(maps), maps["fe"].shape
    (['fe', 'zn', 'cu'], (64, 64))
    """
    size = int(size)
    if size < 16:
        raise ValueError(f"size must be at least 16, got {size}")
    rng = np.random.default_rng(seed)
    fe = _fe_map(size, rng)
    zn = _zn_map(size, rng, fe)
    cu = _cu_map(size, rng)
    return {name: np.clip(m, 0.0, 1.0) for name, m in zip(ELEMENTS, (fe, zn, cu), strict=True)}


def check_element_maps(maps, *, what: str = "sample") -> dict[str, np.ndarray]:
    """Validate a multi-element sample: ``{element name: 2-D array}``, all of one shape.

    Parameters
    ----------
    maps : mapping of str to array
        One finite 2-D map per element (any order; kept as given).
    what : str
        What the maps are, for the messages.

    Returns
    -------
    dict of str to ndarray
        The maps as float64 arrays, in the order given.

    Raises
    ------
    ValueError
        If there are no maps, a name is not a Python identifier (or is a keyword or starts with an
        underscore), a map is not a finite 2-D array, or the maps differ in shape.
    """
    if not hasattr(maps, "items"):
        raise ValueError(f"{what}: element maps must be a dict of element name -> 2-D array, got {type(maps)}")
    if len(maps) == 0:
        raise ValueError(f"{what}: no element maps (an empty dict); give at least one name -> 2-D array")
    out = {}
    for name, image in maps.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise ValueError(f"{what}: element name {name!r} is not a Python identifier (letters, digits, "
                             "underscores, not starting with one or a digit, not a keyword)")
        out[name] = as_image(image, what=f"{what}: element map {name!r}")
    shapes = {name: image.shape for name, image in out.items()}
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise ValueError(f"{what}: element maps differ in shape ({listed}); they must be maps of one field")
    return out


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
