"""Initial sampling patterns: the first ~1% of the grid, measured before any model is consulted."""

from __future__ import annotations

import numpy as np
from scipy.stats import qmc

__all__ = ["initial_pattern", "PATTERNS"]

PATTERNS = ("halton", "random")


def initial_pattern(
    shape: tuple[int, int],
    n: int,
    *,
    kind: str = "halton",
    rng: np.random.Generator,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Choose ``n`` distinct pixels of a grid.

    Parameters
    ----------
    shape : (H, W)
        Grid shape.
    n : int
        Number of pixels wanted (clipped to the number available).
    kind : {"halton", "random"}
        ``"halton"``: a scrambled Halton sequence snapped to pixels (even coverage, no clumps);
        ``"random"``: uniform without replacement.
    rng : numpy Generator
        Source of randomness (the pattern is a function of its state).
    exclude : (H, W) bool array, optional
        Pixels that must not be chosen (already measured or pending).

    Returns
    -------
    (n, 2) int64 array of (row, col)
    """
    if kind not in PATTERNS:
        raise ValueError(f"initial pattern must be one of {PATTERNS}, got {kind!r}")
    H, W = shape
    free = np.ones(H * W, bool) if exclude is None else ~np.asarray(exclude, bool).ravel()
    n = int(min(n, free.sum()))
    if n <= 0:
        return np.zeros((0, 2), np.int64)
    chosen: list[np.ndarray] = []
    if kind == "halton":
        u = qmc.Halton(d=2, scramble=True, seed=rng).random(2 * n)
        flat = np.minimum((u[:, 0] * H).astype(np.int64), H - 1) * W + np.minimum((u[:, 1] * W).astype(np.int64), W - 1)
        _, first = np.unique(flat, return_index=True)
        flat = flat[np.sort(first)]
        flat = flat[free[flat]][:n]
        chosen.append(flat)
        free = free.copy()
        free[flat] = False
    missing = n - sum(len(c) for c in chosen)
    if missing > 0:
        chosen.append(rng.choice(np.flatnonzero(free), size=missing, replace=False))
    flat = np.concatenate(chosen)
    return np.stack(np.divmod(flat, W), axis=1).astype(np.int64)
