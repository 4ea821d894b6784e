"""What a scan knows of its image: the measurements and, at every pixel, the maps the sampler ranks by.

`SamplingMaps` holds the measured values and, for every pixel of the grid, the Delaunay-linear
reconstruction, the distance to the nearest measurement and the ERD the network predicts. After
the initial pattern the maps are built once for the whole grid (in one piece, or in stages spread
over several decisions: `SamplingMaps.begin_build`); after that each `SamplingMaps.add`
refreshes them only in windows around the new points (the Delaunay triangles that a new point
changes lie within about twice the local sampling distance of it), which keeps a decision cheap on
large grids and memory linear in the number of pixels.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from .features import pixel_features, triangle_features
from .reconstruction import interpolate_linear, mirror_for_thin_grid, reconstruct_linear, triangulate

__all__ = ["SamplingMaps"]

# Beyond this share of the grid, a local refresh costs more than rebuilding everything.
_GLOBAL_REBUILD_SHARE = 0.3
# Window radii around a new point, in units of the largest nearby distance to a measurement: the
# triangles a new point changes have circumcircles through it, so they lie within about twice that.
_CHANGED_RADIUS = 2.0
_MARGIN_RADIUS = 2.0


class SamplingMaps:
    """Measurements of an H x W grid and the maps derived from them.

    Parameters
    ----------
    shape : (H, W)
        Grid shape.
    model : ERDNet
        The network that predicts the ERD from per-pixel features.

    Attributes
    ----------
    measured : (H, W) bool array
        True where measured.
    values : (H, W) float array
        Measured values (NaN elsewhere).
    order : list of int arrays
        Flat indices of the measured pixels, one array per `add`, in order.
    n_measured : int
    recon : (H, W) float array
        Reconstruction (NaN until `build`).
    distance : (H, W) float32 array
        Distance to the nearest measured pixel (inf until `build`).
    erd : (H, W) float32 array
        Predicted ERD; 0 at measured pixels and until `build`.
    scale, offset : float
        Intensity scale (1st to 99th percentile spread of the values at the first `build`) and
        the 1st percentile in units of it: the units of the network's features.
    ready : bool
        Whether the maps have been built.
    late : int array
        Flat indices measured while a staged build was under way: measured, but the maps around them
        (and their own reconstruction and ERD) are as predicted before; the next `add` refreshes them.
    """

    def __init__(self, shape: tuple[int, int], model):
        H, W = shape
        self.shape = (H, W)
        self.model = model
        self.measured = np.zeros((H, W), bool)
        self.values = np.full((H, W), np.nan)
        self.order: list[np.ndarray] = []
        self.n_measured = 0
        self.recon = np.full((H, W), np.nan)
        self.distance = np.full((H, W), np.inf, dtype=np.float32)
        self.nearest = np.full((H, W), -1, dtype=np.int64)
        self.erd = np.zeros((H, W), dtype=np.float32)
        self.scale = 1.0
        self.offset = 0.0
        self.ready = False
        self.late = np.zeros(0, np.int64)
        self._staged: dict | None = None
        self._staged_change = 0.0
        self._building_from = 0

    @property
    def measured_flat(self) -> np.ndarray:
        """Flat indices of the measured pixels, in the order they were added."""
        return np.concatenate(self.order) if self.order else np.zeros(0, np.int64)

    def reconstruction(self) -> np.ndarray:
        """A copy of the reconstruction; before `build`, one computed from the values so far (NaN without any)."""
        if self.ready:
            out = self.recon.copy()
            out.ravel()[self.late] = self.values.ravel()[self.late]
            return out
        if self.n_measured == 0:
            return np.full(self.shape, np.nan)
        flat = self.measured_flat
        points = np.stack(np.divmod(flat, self.shape[1]), axis=1)
        return reconstruct_linear(self.shape, points, self.values.ravel()[flat])

    def add(self, flat: np.ndarray, values: np.ndarray) -> float:
        """Record measurements at unmeasured pixels ``flat``; once built, refresh the maps around them.

        Returns the change of the reconstruction at the refreshed unmeasured pixels (sum of
        ``|change|`` in units of `scale`; 0 before `build`).
        """
        self.values.ravel()[flat] = values
        self.measured.ravel()[flat] = True
        self.order.append(flat)
        self.n_measured += len(flat)
        if not self.ready:
            return 0.0
        if len(self.late):
            flat, self.late = np.concatenate([self.late, flat]), np.zeros(0, np.int64)
        return self._update(flat)

    def build(self) -> float:
        """Build the maps for the whole grid from all measurements; return the change (see `add`).

        Where `begin_build` has started a staged build, this finishes it instead.
        """
        if self._staged is None and self.n_measured == 0:
            return 0.0
        if self._staged is None:
            self.begin_build(1)
        while not self.build_step():
            pass
        return self._staged_change

    def begin_build(self, stages: int) -> None:
        """Start building the maps from the measurements so far, in ``stages`` calls of `build_step`.

        A large grid's build can so be spread over several decisions. The build uses the measurements
        of this moment; values added before it ends are kept aside (`late`) and refreshed around,
        with the next `add`'s, by that `add`.
        """
        if self.n_measured == 0:
            raise ValueError("the maps cannot be built before anything is measured")
        if not self.ready:
            vals = self.values.ravel()[self.measured_flat]
            lo, hi = np.percentile(vals, [1, 99])
            spread = float(hi - lo)
            self.scale = spread if spread > 0 else (float(np.abs(vals).max()) or 1.0)
            self.offset = float(lo) / self.scale
        dist, (ir, ic) = distance_transform_edt(~self.measured, return_indices=True)
        self.distance[:] = dist
        self.nearest[:] = ir * self.shape[1] + ic
        points = np.flatnonzero(self.measured)
        query = np.flatnonzero(~self.measured)
        self._staged = {"points": points, "geometry": self._geometry(points),
                        "parts": np.array_split(query, max(1, int(stages)))}
        self._staged_change = 0.0
        self._building_from = self.n_measured

    def build_step(self) -> bool:
        """Do the next stage of the build `begin_build` started; return whether the maps are built."""
        staged = self._staged
        if staged is None:
            return self.ready
        if staged["parts"]:
            self._staged_change += self._refresh(staged["parts"].pop(0), staged["points"], local=False,
                                                 geometry=staged["geometry"])
        if staged["parts"]:
            return False
        built = np.zeros(self.measured.size, bool)
        built[staged["points"]] = True
        self.recon.ravel()[built] = self.values.ravel()[built]
        self.erd.ravel()[built] = 0.0
        late = self.measured_flat[self._building_from:]
        self.late = np.concatenate([self.late, late]) if len(late) else self.late
        self._staged = None
        self.ready = True
        return True

    @property
    def building(self) -> bool:
        """Whether a staged build is under way."""
        return self._staged is not None

    def features_at(self, query: np.ndarray) -> np.ndarray:
        """Feature matrix of unmeasured pixels ``query`` (flat indices), from all measurements."""
        return self._reconstruct_and_featurise(query, np.flatnonzero(self.measured), update_distance=False)[1]

    def _update(self, new: np.ndarray) -> float:
        """Refresh the maps around newly measured pixels ``new`` (flat indices)."""
        H, W = self.shape
        rows, cols = np.divmod(new, W)
        inner = np.zeros((H, W), bool)
        outer = np.zeros((H, W), bool)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            d0 = float(self.distance[r, c])
            w = int(math.ceil(d0)) + 1
            rho = float(self.distance[max(r - w, 0) : r + w + 1, max(c - w, 0) : c + w + 1].max())
            r_in = int(math.ceil(_CHANGED_RADIUS * rho)) + 2
            r_out = r_in + int(math.ceil(_MARGIN_RADIUS * rho)) + 1
            inner[max(r - r_in, 0) : r + r_in + 1, max(c - r_in, 0) : c + r_in + 1] = True
            outer[max(r - r_out, 0) : r + r_out + 1, max(c - r_out, 0) : c + r_out + 1] = True
        if inner.sum() > _GLOBAL_REBUILD_SHARE * inner.size:
            return self.build()
        self.recon.ravel()[new] = self.values.ravel()[new]
        self.distance.ravel()[new] = 0.0
        self.nearest.ravel()[new] = new
        self.erd.ravel()[new] = 0.0
        return self._refresh(np.flatnonzero(inner & ~self.measured), np.flatnonzero(outer & self.measured), local=True)

    def _refresh(self, query: np.ndarray, points: np.ndarray, *, local: bool, geometry=None) -> float:
        """Recompute reconstruction, (local: distance) and ERD at unmeasured pixels ``query``."""
        if len(query) == 0:
            return 0.0
        recon, feats = self._reconstruct_and_featurise(query, points, update_distance=local, geometry=geometry)
        change = 0.0
        if self.ready:
            moved = np.abs(recon - self.recon.ravel()[query] / self.scale)
            change = float(moved[np.isfinite(moved)].sum())
        self.recon.ravel()[query] = recon * self.scale
        self.erd.ravel()[query] = self.model.predict_erd(feats)
        return change

    def _geometry(self, points: np.ndarray):
        """Triangulation of measured ``points`` (flat indices), its vertex values (scaled) and triangle features."""
        pts = np.stack(np.divmod(points, self.shape[1]), axis=1).astype(np.float64)
        mp, mv = mirror_for_thin_grid(pts, self.values.ravel()[points] / self.scale, self.shape)
        tri = triangulate(mp)
        return tri, mv, (None if tri is None else triangle_features(tri, mv))

    def _reconstruct_and_featurise(self, query, points, *, update_distance: bool, geometry=None):
        """Linear reconstruction (in scaled units) and features at ``query`` from measured ``points``.

        With ``update_distance`` the distance and nearest-measurement maps at ``query`` are first
        recomputed from ``points`` (which must include every measurement near the query pixels).
        ``geometry``: `_geometry` of ``points``, where the caller has it.
        """
        W = self.shape[1]
        q = np.stack(np.divmod(query, W), axis=1).astype(np.float64)
        if update_distance:
            pts = np.stack(np.divmod(points, W), axis=1).astype(np.float64)
            d, i = cKDTree(pts).query(q)
            self.distance.ravel()[query] = d
            self.nearest.ravel()[query] = points[i]
        tri, mv, tri_feats = self._geometry(points) if geometry is None else geometry
        if tri is not None:
            recon, simplex = interpolate_linear(tri, mv, q)
        else:
            recon, simplex = np.full(len(q), np.nan), np.full(len(q), -1)
        nearest_val = self.values.ravel()[self.nearest.ravel()[query]] / self.scale
        outside = ~np.isfinite(recon)
        recon[outside] = nearest_val[outside]
        d = self.distance.ravel()[query].astype(np.float64)
        feats = pixel_features(d, simplex, tri_feats, recon, nearest_val, self.offset)
        return recon, feats
