"""Steering on several channels at once: the sampler's side (channels, weights, missing values, stop signals)."""

import numpy as np
import pytest

from steering import Sampler, StopCriteria
from steering.reconstruction import reconstruct_linear
from steering.synthetic import synthetic_image


@pytest.fixture(scope="module")
def elements():
    """Three 64x64 'element maps' of one field of view with different structure, (64, 64, 3)."""
    kinds = ("particles", "grains", "flakes")
    return np.stack([synthetic_image(k, 64, rng=np.random.default_rng(i)) for i, k in enumerate(kinds)], axis=-1)


def _scan(truth, **settings):
    s = Sampler(truth.shape[:2], seed=0, stop=StopCriteria(max_fraction=0.15), batch_size=20, **settings)
    while not s.done:
        p = s.ask()
        if not len(p):
            break
        s.tell(p, truth[p[:, 0], p[:, 1]])
    return s


def test_each_channel_is_reconstructed_from_the_shared_points(elements):
    s = _scan(elements, channels=3)
    recon = s.reconstruction
    assert recon.shape == (3, 64, 64) and s.measured_values.shape == (s.n_measured, 3)
    pts = s.measured_points
    np.testing.assert_array_equal(s.measured_values, elements[pts[:, 0], pts[:, 1]])
    for c in range(3):
        whole = reconstruct_linear((64, 64), pts, elements[pts[:, 0], pts[:, 1], c])
        # the maps are refreshed in windows around new points; they agree with a rebuild from scratch
        assert np.abs(recon[c] - whole).mean() < 1e-3 * np.ptp(elements[..., c])
    erd, per_channel = s.erd, s.channel_erd
    np.testing.assert_allclose(erd, per_channel.mean(axis=0), rtol=1e-5, atol=1e-12)  # equal weights
    signals = s.signals
    for name in ("erd_ratio", "prediction_error", "recon_change"):
        per = [signals[f"{name}_{c}"] for c in range(3)]
        assert signals[name] == pytest.approx(np.mean(per))


def test_a_channel_of_weight_one_steers_as_that_channel_alone(elements):
    alone = _scan(elements[..., 0])
    weighted = _scan(elements, channels=3, channel_weights=[1.0, 0.0, 0.0])
    np.testing.assert_array_equal(weighted.measured_points, alone.measured_points)
    np.testing.assert_allclose(weighted.reconstruction[0], alone.reconstruction, rtol=0, atol=1e-12)
    equal = _scan(elements, channels=3)
    assert not np.array_equal(equal.measured_points, alone.measured_points)  # the others count when weighted


def test_each_channel_counts_in_units_of_its_own_spread(elements):
    """A channel 1024 times brighter (an exact power of two) steers exactly as before: no channel wins by brightness."""
    s = _scan(elements, channels=3)
    brighter = elements * np.array([1.0, 1024.0, 1.0])
    t = _scan(brighter, channels=3)
    np.testing.assert_array_equal(t.measured_points, s.measured_points)
    np.testing.assert_array_equal(t.intensity_scales, s.intensity_scales * [1.0, 1024.0, 1.0])


def test_a_value_missing_in_one_channel_is_filled_from_that_channels_reconstruction(elements):
    s = Sampler((64, 64), seed=0, stop=StopCriteria(max_fraction=0.15), batch_size=20, channels=3)
    p = s.ask()
    s.tell(p, elements[p[:, 0], p[:, 1]])
    p = s.ask()
    before = s.n_measured
    values = elements[p[:, 0], p[:, 1]].copy()
    predicted = s.reconstruction[1][p[:3, 0], p[:3, 1]]
    values[:3, 1] = np.nan  # the second channel did not come back for three points
    s.tell(p, values)
    assert s.n_measured == before + len(p) and not s.pending_points.size  # every point measured, none asked again
    missing = s.missing_mask
    assert missing[1][p[:3, 0], p[:3, 1]].all() and missing.sum() == 3
    stored = s.measured_values[-len(p):]
    np.testing.assert_allclose(stored[:3, 1], predicted)  # the channel's estimate there, not a hole
    np.testing.assert_array_equal(stored[:, [0, 2]], elements[p[:, 0], p[:, 1]][:, [0, 2]])
    assert np.isfinite(s.reconstruction).all() and np.isfinite(s.erd).all()
    q = s.ask()
    both = elements[q[:, 0], q[:, 1]].copy()
    both[0] = np.nan
    with pytest.raises(ValueError, match="non-finite values in every channel"):
        s.tell(q, both)
    s.tell(q, both, failed=np.arange(len(q)) == 0)  # a point with nothing is a failed point, asked again
    assert not s.measured_mask[q[0, 0], q[0, 1]]


def test_stop_rules_read_the_channels_combined_or_every_channel():
    signals = {"n_measured": 500, "n_pixels": 4096, "fraction": 0.12, "erd_ratio": 0.04,
               "erd_ratio_0": 0.01, "erd_ratio_1": 0.03, "erd_ratio_2": 0.08,
               "ssim_estimate": 0.93, "ssim_estimate_0": 0.97, "ssim_estimate_1": 0.95, "ssim_estimate_2": 0.87}
    assert "erd_ratio fell to 0.04" in StopCriteria(erd_ratio=0.05).check(signals)
    assert StopCriteria(erd_ratio=0.05, channels="every").check(signals) is None  # the third is at 0.08
    assert "every channel" in StopCriteria(erd_ratio=0.1, channels="every").check(signals)
    assert StopCriteria(ssim_estimate=0.9).check(signals) is not None
    assert StopCriteria(ssim_estimate=0.9, channels="every").check(signals) is None
    status = StopCriteria(ssim_estimate=0.9, channels="every").status(signals)["ssim_estimate"]
    assert status == {"value": 0.87, "threshold": 0.9, "met": False}
    one_channel = {k: v for k, v in signals.items() if not k[-1].isdigit()}
    assert StopCriteria(erd_ratio=0.05, channels="every").check(one_channel) is not None
    with pytest.raises(ValueError, match="channels must be one of"):
        StopCriteria(channels="worst")
    assert StopCriteria.from_dict(StopCriteria(channels="every").to_dict()).channels == "every"


@pytest.mark.parametrize("settings, message", [
    ({"channels": 0}, "channels"),
    ({"channels": 2.5}, "channels"),
    ({"channels": 2, "channel_weights": [1.0]}, "channel_weights must be 2 numbers"),
    ({"channels": 2, "channel_weights": [1.0, -1.0]}, "channel_weights must be finite, >= 0"),
    ({"channels": 2, "channel_weights": [0.0, 0.0]}, "not all 0"),
    ({"channels": 2, "channel_weights": [1.0, np.nan]}, "finite"),
])
def test_bad_channel_settings_are_refused(settings, message):
    with pytest.raises(ValueError, match=message):
        Sampler((16, 16), **settings)


def test_values_of_the_wrong_shape_are_refused(elements):
    s = Sampler((64, 64), seed=0, channels=3)
    p = s.ask()
    with pytest.raises(ValueError, match=r"values must have shape \(\d+, 3\) .* one value per channel"):
        s.tell(p, elements[p[:, 0], p[:, 1], 0])
    one = Sampler((64, 64), seed=0)
    with pytest.raises(ValueError, match=r"values must have shape \(\d+,\)"):
        one.tell(p, elements[p[:, 0], p[:, 1]])


def test_the_channels_triangle_features_in_one_pass_are_each_channels_own():
    from steering.features import triangle_features, triangle_geometry, triangle_rings
    from steering.reconstruction import triangulate

    rng = np.random.default_rng(0)
    tri = triangulate(rng.uniform(0, 100, (800, 2)))
    values = rng.normal(size=(800, 3))
    geometry = triangle_geometry(tri)
    rows = np.unique(rng.integers(0, len(tri.simplices), 150))
    for rings in (None, triangle_rings(geometry, rows)):
        together = triangle_features(tri, values, geometry, rings)
        for c in range(3):
            np.testing.assert_array_equal(together[c], triangle_features(tri, values[:, c], geometry, rings))
