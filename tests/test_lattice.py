"""The arithmetic triangulation of a product lattice (a coarse raster) against what a Delaunay triangulation must be."""

import numpy as np
import pytest
from scipy.spatial import Delaunay

from steering.lattice import LatticeTriangulation, product_lattice
from steering.reconstruction import interpolate_linear, reconstruct_linear, triangulate


def _lattice(rng, shape=(60, 50), n=(9, 7)):
    rows = np.sort(rng.choice(shape[0], n[0], replace=False)).astype(float)
    cols = np.sort(rng.choice(shape[1], n[1], replace=False)).astype(float)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    points = np.column_stack([r.ravel(), c.ravel()])
    return points[rng.permutation(len(points))]  # any order: simplices index the points as given


def _queries(shape, pad=2):
    r, c = np.meshgrid(np.arange(-pad, shape[0] + pad), np.arange(-pad, shape[1] + pad), indexing="ij")
    return np.column_stack([r.ravel(), c.ravel()]).astype(float)


def test_a_product_lattice_is_recognised_and_nothing_else():
    rng = np.random.default_rng(0)
    points = _lattice(rng)
    rows, cols = product_lattice(points)
    assert len(rows) == 9 and len(cols) == 7
    assert product_lattice(points[1:]) is None  # one corner missing
    assert product_lattice(np.vstack([points[1:], [[0.5, 0.5]]])) is None  # one off the lattice, same count
    assert product_lattice(np.vstack([points[1:], points[1:2]])) is None  # one corner missing, another twice
    assert product_lattice(points[points[:, 0] == points[0, 0]]) is None  # a single row
    assert product_lattice(rng.uniform(0, 50, (63, 2))) is None
    assert isinstance(triangulate(points), LatticeTriangulation)
    assert isinstance(triangulate(rng.uniform(0, 50, (63, 2))), Delaunay)


def test_every_triangle_has_an_empty_circumcircle_and_the_cells_are_covered_once():
    rng = np.random.default_rng(1)
    points = _lattice(rng)
    tri = LatticeTriangulation(points)
    p = tri.points[tri.simplices]
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    d = 2 * (a[:, 0] * (b[:, 1] - c[:, 1]) + b[:, 0] * (c[:, 1] - a[:, 1]) + c[:, 0] * (a[:, 1] - b[:, 1]))
    sa, sb, sc = (a**2).sum(1), (b**2).sum(1), (c**2).sum(1)
    centre = np.column_stack([(sa * (b[:, 1] - c[:, 1]) + sb * (c[:, 1] - a[:, 1]) + sc * (a[:, 1] - b[:, 1])) / d,
                              (sa * (c[:, 0] - b[:, 0]) + sb * (a[:, 0] - c[:, 0]) + sc * (b[:, 0] - a[:, 0])) / d])
    radius2 = ((a - centre) ** 2).sum(1)
    inside = ((tri.points[None, :, :] - centre[:, None, :]) ** 2).sum(2) < radius2[:, None] * (1 - 1e-9)
    assert not inside.any()  # Delaunay: no lattice point strictly inside a triangle's circumcircle
    e1, e2 = b - a, c - a
    areas = 0.5 * np.abs(e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0])
    rows, cols = tri.rows, tri.cols
    assert len(tri.simplices) == 2 * (len(rows) - 1) * (len(cols) - 1)
    assert areas.sum() == pytest.approx((rows[-1] - rows[0]) * (cols[-1] - cols[0]))
    assert (areas > 0).all()
    # the cells are cut along alternating diagonals, like a checkerboard: no preferred direction
    i = np.searchsorted(rows, p[..., 0])
    j = np.searchsorted(cols, p[..., 1])
    main = ((np.abs(np.diff(i[:, [0, 1, 2, 0]], axis=1)) == 1) & (np.diff(j[:, [0, 1, 2, 0]], axis=1) * np.diff(
        i[:, [0, 1, 2, 0]], axis=1) == 1)).any(axis=1)
    cell_parity = (i.min(axis=1) + j.min(axis=1)) % 2
    np.testing.assert_array_equal(main, cell_parity == 0)


def test_neighbours_share_the_edge_opposite_each_vertex():
    tri = LatticeTriangulation(_lattice(np.random.default_rng(2)))
    reference = Delaunay(tri.points)
    assert (tri.neighbors < 0).sum() == (reference.neighbors < 0).sum()  # the hull's edges
    for k, simplex in enumerate(tri.simplices):
        for m in range(3):
            edge = set(simplex) - {simplex[m]}
            if tri.neighbors[k, m] >= 0:
                assert edge <= set(tri.simplices[tri.neighbors[k, m]])
                assert k in tri.neighbors[tri.neighbors[k, m]]


def test_interpolation_is_linear_on_each_triangle_and_matches_the_barycentric_transform():
    rng = np.random.default_rng(3)
    points = _lattice(rng)
    tri = LatticeTriangulation(points)
    q = _queries((60, 50))
    plane = 2.0 * q[:, 0] - 3.0 * q[:, 1] + 5.0
    vals, simplex = interpolate_linear(tri, 2.0 * points[:, 0] - 3.0 * points[:, 1] + 5.0, q)
    inside = simplex >= 0
    np.testing.assert_allclose(vals[inside], plane[inside], atol=1e-10)  # exact for a plane
    assert np.isnan(vals[~inside]).all()
    box = ((q[:, 0] >= tri.rows[0]) & (q[:, 0] <= tri.rows[-1]) & (q[:, 1] >= tri.cols[0]) & (q[:, 1] <= tri.cols[-1]))
    np.testing.assert_array_equal(inside, box)  # a lattice's hull is its bounding box
    values = rng.normal(size=len(points))
    vals, simplex = interpolate_linear(tri, values, q)
    T = tri.transform[simplex[inside]]
    b = np.einsum("nij,nj->ni", T[:, :2, :], q[inside] - T[:, 2, :])
    bary = np.column_stack([b, 1.0 - b.sum(axis=1)])
    assert bary.min() >= -1e-12  # each query lies in the triangle it is given
    np.testing.assert_allclose(vals[inside], np.einsum("ni,ni->n", bary, values[tri.simplices[simplex[inside]]]),
                               atol=1e-12)
    corner = np.flatnonzero((q[:, None, :] == points[None, :, :]).all(axis=2).any(axis=1))
    np.testing.assert_allclose(np.sort(vals[corner]), np.sort(values))  # the measured values where measured


def test_a_rasters_reconstruction_is_qhulls_up_to_the_cut_of_each_cell():
    """Qhull cuts a square cell along either diagonal; where both cuts agree (along the cell's edges and
    at its corners) the reconstructions agree to rounding."""
    rng = np.random.default_rng(4)
    truth = rng.normal(size=(41, 37))
    rows, cols = np.arange(0, 41, 4), np.arange(0, 37, 4)
    r, c = np.meshgrid(rows, cols, indexing="ij")
    points = np.column_stack([r.ravel(), c.ravel()])
    ours = reconstruct_linear(truth.shape, points, truth[r.ravel(), c.ravel()])
    tri = Delaunay(points.astype(float))
    qhull = interpolate_linear(tri, truth[r.ravel(), c.ravel()], _queries(truth.shape, pad=0))[0].reshape(truth.shape)
    on_lines = np.isin(np.arange(41), rows)[:, None] | np.isin(np.arange(37), cols)[None, :]
    np.testing.assert_allclose(ours[on_lines], qhull[on_lines], atol=1e-12)
    assert not np.allclose(ours, qhull)  # inside the cells the cut matters
