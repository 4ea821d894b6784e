"""Reading 2-D images (TIFF, PNG/JPEG, NPY) as float arrays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["load_image", "as_image"]


def as_image(array, *, what: str = "image") -> np.ndarray:
    """Validate a 2-D finite image (RGB/RGBA reduced to luminance); return float64."""
    a = np.asarray(array)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3].astype(np.float64) @ np.array([0.2125, 0.7154, 0.0721])
    if a.ndim != 2:
        raise ValueError(f"{what} must be 2-D (H, W), got shape {a.shape}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{what} is empty: shape {a.shape}")
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} holds {int((~np.isfinite(a)).sum())} NaN or infinite values")
    return a


def load_image(path: str | Path) -> np.ndarray:
    """Load a 2-D image from ``.tif``/``.tiff``, ``.png``/``.jpg`` or ``.npy`` as float64.

    Raises
    ------
    ValueError
        If the file is missing, of an unknown type, or not a finite 2-D image.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"image file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            a = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            a = tifffile.imread(path)
        elif suffix in (".png", ".jpg", ".jpeg", ".bmp"):
            from PIL import Image

            with Image.open(path) as im:
                a = np.asarray(im)
        else:
            raise ValueError(f"unknown image type {suffix!r} (use .tif, .png, .jpg or .npy): {path}")
    except (OSError, ValueError) as exc:
        if "unknown image type" in str(exc):
            raise
        raise ValueError(f"cannot read image {path}: {exc}") from exc
    return as_image(a, what=f"image {path.name}")
