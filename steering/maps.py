"""What a scan knows of its image: the measurements and, at every pixel, the maps the sampler ranks by.

`SamplingMaps` holds the measured values and, for every pixel of the grid, the Delaunay-linear
reconstruction, the distance to the nearest measurement and the ERD the network predicts. With
several channels (element maps of one fluorescence spectrum, say) every channel has its own values,
reconstruction, intensity scale and ERD (in units of its own scale squared), the geometry (which
pixels are measured, the triangulation, the distances) is shared and computed once, and the ERD the
sampler ranks by is the channels' ERDs combined by weights. After
the initial pattern the maps are built once for the whole grid (in one piece, or in stages spread
over several decisions: `SamplingMaps.begin_build`); after that each `SamplingMaps.add`
refreshes them only in windows around the new points (the Delaunay triangles that a new point
changes lie within about twice the local sampling distance of it), which keeps a decision cheap on
large grids and memory linear in the number of pixels.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from .features import N_FEATURES, pixel_features, triangle_features, triangle_geometry, triangle_rings
from .reconstruction import interpolate_linear, mirror_for_thin_grid, reconstruct_linear, triangulate

__all__ = ["SamplingMaps"]

# Beyond this share of the grid, a local refresh costs more than rebuilding everything.
_GLOBAL_REBUILD_SHARE = 0.3
# Window radii around a new point, in units of the largest nearby distance to a measurement: the
# triangles a new point changes have circumcircles through it, so they lie within about twice that.
_CHANGED_RADIUS = 2.0
_MARGIN_RADIUS = 2.0


class SamplingMaps:
    """Measurements of an H x W grid, in one or more channels, and the maps derived from them.

    Parameters
    ----------
    shape : (H, W)
        Grid shape.
    model : ERDNet
        The network that predicts the ERD from per-pixel features.
    channels : int
        Values per measured pixel.
    weights : (channels,) array, optional
        Weights of the channels' ERDs in the combined `erd` (normalised to sum 1); default equal.

    Attributes
    ----------
    measured : (H, W) bool array
        True where measured.
    values : (H, W) float array, or (C, H, W) with several channels
        Measured values (NaN elsewhere). A channel a measurement did not give (NaN in it) holds the
        channel's reconstruction there at the time (see `missing`).
    missing : (C, H, W) bool array
        Where a measured pixel's value in a channel was missing and stands in for it.
    order : list of int arrays
        Flat indices of the measured pixels, one array per `add`, in order.
    n_measured : int
    recon : (H, W) float array, or (C, H, W) with several channels
        Reconstruction (NaN until `build`).
    distance : (H, W) float32 array
        Distance to the nearest measured pixel (inf until `build`).
    erd : (H, W) float32 array
        Predicted ERD (with several channels, their weighted sum); 0 at measured pixels and until `build`.
    channel_erd : (C, H, W) float32 array
        Each channel's predicted ERD, in units of that channel's scale squared.
    scales, offsets : (C,) arrays
        Per channel: the intensity scale (1st to 99th percentile spread of its values at the first
        `build`) and the 1st percentile in units of it: the units of the network's features.
    scale, offset : float
        The first channel's.
    ready : bool
        Whether the maps have been built.
    late : int array
        Flat indices measured while a staged build was under way: measured, but the maps around them
        (and their own reconstruction and ERD) are as predicted before; the next `add` refreshes them.
    """

    def __init__(self, shape: tuple[int, int], model, *, channels: int = 1, weights=None):
        H, W = shape
        C = int(channels)
        self.shape = (H, W)
        self.model = model
        self.channels = C
        w = np.ones(C) if weights is None else np.asarray(weights, dtype=np.float64)
        self.weights = w / w.sum()
        self.measured = np.zeros((H, W), bool)
        self._values = np.full((C, H, W), np.nan)
        self.missing = np.zeros((C, H, W), bool)
        self.order: list[np.ndarray] = []
        self.n_measured = 0
        self._recon = np.full((C, H, W), np.nan)
        self.distance = np.full((H, W), np.inf, dtype=np.float32)
        self.nearest = np.full((H, W), -1, dtype=np.int64)
        self.channel_erd = np.zeros((C, H, W), dtype=np.float32)
        self.erd = self.channel_erd[0] if C == 1 else np.zeros((H, W), dtype=np.float32)
        self.values = self._values[0] if C == 1 else self._values
        self.recon = self._recon[0] if C == 1 else self._recon
        self.scales = np.ones(C)
        self.offsets = np.zeros(C)
        self._lowest, self._highest = np.full(C, np.inf), np.full(C, -np.inf)
        self.ready = False
        self.late = np.zeros(0, np.int64)
        self._staged: dict | None = None
        self._staged_change = np.zeros(C)
        self._building_from = 0

    @property
    def scale(self) -> float:
        """The first channel's intensity scale."""
        return float(self.scales[0])

    @property
    def offset(self) -> float:
        """The first channel's low reference level, in units of its scale."""
        return float(self.offsets[0])

    @property
    def value_range(self) -> float:
        """The spread (highest - lowest) of the first channel's measured values."""
        return float(self._highest[0] - self._lowest[0])

    @property
    def measured_flat(self) -> np.ndarray:
        """Flat indices of the measured pixels, in the order they were added."""
        return np.concatenate(self.order) if self.order else np.zeros(0, np.int64)

    def channel(self, c: int) -> SimpleNamespace:
        """Channel ``c``'s maps as one channel's would be: ``n_measured``, ``ready``, ``measured``,
        ``values``, ``recon``, ``erd`` (its own), ``scale``, ``value_range`` (what `steering.signals.StopSignals`
        reads)."""
        return SimpleNamespace(n_measured=self.n_measured, ready=self.ready, measured=self.measured,
                               values=self._values[c], recon=self._recon[c], erd=self.channel_erd[c],
                               scale=float(self.scales[c]), value_range=float(self._highest[c] - self._lowest[c]))

    def reconstruction(self) -> np.ndarray:
        """A copy of the reconstruction ((H, W), or (C, H, W) with several channels); before `build`, one
        computed from the values so far (NaN without any)."""
        if self.ready:
            out = self._recon.copy()
            out[:, self.late // self.shape[1], self.late % self.shape[1]] = self._values[
                :, self.late // self.shape[1], self.late % self.shape[1]]
        elif self.n_measured == 0:
            out = np.full((self.channels, *self.shape), np.nan)
        else:
            flat = self.measured_flat
            points = np.stack(np.divmod(flat, self.shape[1]), axis=1)
            out = np.stack([reconstruct_linear(self.shape, points, v.ravel()[flat]) for v in self._values])
        return out[0] if self.channels == 1 else out

    def add(self, flat: np.ndarray, values: np.ndarray):
        """Record measurements at unmeasured pixels ``flat``; once built, refresh the maps around them.

        ``values`` is (k,) with one channel, (k, C) with several; a NaN in some (not all) channels
        of a pixel stands for a value the measurement did not give: the channel's reconstruction
        there takes its place (before `build`: the mean of the channel's values so far), and
        `missing` records it.

        Returns the change of the reconstruction at the refreshed unmeasured pixels (sum of
        ``|change|`` in units of the scale; 0 before `build`): a float, or a (C,) array with several channels.
        """
        vals = np.asarray(values, dtype=np.float64).reshape(len(flat), self.channels)
        gaps = ~np.isfinite(vals)
        if gaps.any():
            vals = vals.copy()
            for c in np.flatnonzero(gaps.any(axis=0)):
                rows = gaps[:, c]
                if self.ready:
                    vals[rows, c] = self._recon[c].ravel()[flat[rows]]
                else:
                    known = np.concatenate([self._values[c].ravel()[self.measured_flat], vals[~rows, c]])
                    vals[rows, c] = float(np.mean(known)) if len(known) else 0.0
                self.missing[c].ravel()[flat[rows]] = True
        for c in range(self.channels):
            self._values[c].ravel()[flat] = vals[:, c]
        if len(flat):
            self._lowest = np.minimum(self._lowest, vals.min(axis=0))
            self._highest = np.maximum(self._highest, vals.max(axis=0))
        self.measured.ravel()[flat] = True
        self.order.append(flat)
        self.n_measured += len(flat)
        if not self.ready:
            return self._as_change(np.zeros(self.channels))
        if len(self.late):
            flat, self.late = np.concatenate([self.late, flat]), np.zeros(0, np.int64)
        return self._as_change(self._update(flat))

    def judged_batch(self, flat: np.ndarray, values: np.ndarray, probed: np.ndarray):
        """The points whose prediction errors a batch's `add` is judged by: the new ones and, before them,
        any `late` ones (measured during a staged build). Returns ``(flat, values (k, C) with NaN where a
        channel was missing, probed)``."""
        values = np.asarray(values, dtype=np.float64).reshape(len(flat), -1)
        if not len(self.late):
            return flat, values, probed
        W = self.shape[1]
        late_values = np.where(self.missing[:, self.late // W, self.late % W], np.nan,
                               self._values.reshape(self.channels, -1)[:, self.late]).T
        return (np.concatenate([self.late, flat]), np.concatenate([late_values, values]),
                np.concatenate([np.zeros(len(self.late), bool), probed]))

    def _as_change(self, change: np.ndarray):
        return float(change[0]) if self.channels == 1 else change

    def build(self):
        """Build the maps for the whole grid from all measurements; return the change (see `add`).

        Where `begin_build` has started a staged build, this finishes it instead.
        """
        if self._staged is None and self.n_measured == 0:
            return self._as_change(np.zeros(self.channels))
        return self._as_change(self._build())

    def _build(self) -> np.ndarray:
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
            for c in range(self.channels):
                vals = self._values[c].ravel()[self.measured_flat]
                lo, hi = np.percentile(vals, [1, 99])
                spread = float(hi - lo)
                self.scales[c] = spread if spread > 0 else (float(np.abs(vals).max()) or 1.0)
                self.offsets[c] = float(lo) / self.scales[c]
        dist, (ir, ic) = distance_transform_edt(~self.measured, return_indices=True)
        self.distance[:] = dist
        self.nearest[:] = ir * self.shape[1] + ic
        points = np.flatnonzero(self.measured)
        query = np.flatnonzero(~self.measured)
        self._staged = {"points": points, "geometry": self._geometry(points),
                        "parts": np.array_split(query, max(1, int(stages)))}
        self._staged_change = np.zeros(self.channels)
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
        built = staged["points"]
        for c in range(self.channels):
            self._recon[c].ravel()[built] = self._values[c].ravel()[built]
            self.channel_erd[c].ravel()[built] = 0.0
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
        """Feature matrix of unmeasured pixels ``query`` (flat indices), from all measurements (the first channel's)."""
        return self._reconstruct_and_featurise(query, np.flatnonzero(self.measured), update_distance=False)[1][0]

    def _update(self, new: np.ndarray) -> np.ndarray:
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
            return self._build()
        for c in range(self.channels):
            self._recon[c].ravel()[new] = self._values[c].ravel()[new]
            self.channel_erd[c].ravel()[new] = 0.0
        self.erd.ravel()[new] = 0.0
        self.distance.ravel()[new] = 0.0
        self.nearest.ravel()[new] = new
        return self._refresh(np.flatnonzero(inner & ~self.measured), np.flatnonzero(outer & self.measured), local=True)

    def _refresh(self, query: np.ndarray, points: np.ndarray, *, local: bool, geometry=None) -> np.ndarray:
        """Recompute reconstruction, (local: distance) and ERD at unmeasured pixels ``query``; return the
        change per channel."""
        change = np.zeros(self.channels)
        if len(query) == 0:
            return change
        recon, feats = self._reconstruct_and_featurise(query, points, update_distance=local, geometry=geometry)
        for c in range(self.channels):
            if self.ready:
                moved = np.abs(recon[:, c] - self._recon[c].ravel()[query] / self.scales[c])
                change[c] = float(moved[np.isfinite(moved)].sum())
            self._recon[c].ravel()[query] = recon[:, c] * self.scales[c]
        if self.channels == 1:
            self.erd.ravel()[query] = self.model.predict_erd(feats[0])
            return change
        erd = self.model.predict_erd(feats.reshape(-1, feats.shape[-1])).reshape(self.channels, len(query))
        for c in range(self.channels):
            self.channel_erd[c].ravel()[query] = erd[c]
        combined = np.zeros(len(query), dtype=np.float64)
        for c in range(self.channels):
            combined += self.weights[c] * erd[c]
        self.erd.ravel()[query] = combined
        return change

    def _geometry(self, points: np.ndarray, *, features: bool = True):
        """Triangulation of measured ``points`` (flat indices), its vertex values ((n, C), scaled) and
        (with ``features``) each channel's triangle features."""
        pts = np.stack(np.divmod(points, self.shape[1]), axis=1).astype(np.float64)
        vals = (self._values.reshape(self.channels, -1)[:, points] / self.scales[:, None]).T
        mp, mv = mirror_for_thin_grid(pts, vals, self.shape)
        tri = triangulate(mp)
        return tri, mv, self._triangle_features(tri, mv) if features else None

    def _triangle_features(self, tri, mv: np.ndarray, rows=None):
        """Each channel's `triangle_features` (of the triangles ``rows``, or of all)."""
        if tri is None:
            return None
        geometry = triangle_geometry(tri)
        rings = None if rows is None else triangle_rings(geometry, rows)
        return list(triangle_features(tri, mv, geometry, rings))

    def _reconstruct_and_featurise(self, query, points, *, update_distance: bool, geometry=None):
        """Linear reconstruction ((Q, C), scaled units) and each channel's features ((C, Q, N_FEATURES)) at
        ``query`` from measured ``points``.

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
        tri, mv, tri_feats = self._geometry(points, features=False) if geometry is None else geometry
        if tri is not None:
            recon, simplex = interpolate_linear(tri, mv, q)
            if geometry is None:  # a local refresh: the features of the triangles its pixels lie in
                tri_feats = self._triangle_features(tri, mv, np.unique(simplex[simplex >= 0]))
        else:
            recon, simplex = np.full((len(q), self.channels), np.nan), np.full(len(q), -1)
        nearest = self.nearest.ravel()[query]
        nearest_val = (self._values.reshape(self.channels, -1)[:, nearest] / self.scales[:, None]).T
        outside = ~np.isfinite(recon)
        recon[outside] = nearest_val[outside]
        d = self.distance.ravel()[query].astype(np.float64)
        feats = np.empty((self.channels, len(query), N_FEATURES), dtype=np.float32)
        for c in range(self.channels):
            pixel_features(d, simplex, None if tri_feats is None else tri_feats[c], recon[:, c], nearest_val[:, c],
                           self.offsets[c], out=feats[c])
        return recon, feats
