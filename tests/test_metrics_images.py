import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from steering.images import load_image
from steering.metrics import normalise, nrmse, psnr, ssim


def test_metrics_match_scikit_image(blobs):
    noisy = blobs + np.random.default_rng(0).normal(0, 0.05, blobs.shape)
    t, x = normalise(blobs, noisy)
    assert ssim(blobs, noisy) == pytest.approx(structural_similarity(t, x, data_range=1.0), rel=1e-9)
    assert psnr(blobs, noisy) == pytest.approx(peak_signal_noise_ratio(t, x, data_range=1.0), rel=1e-9)
    assert nrmse(blobs, noisy) == pytest.approx(np.sqrt(np.mean((t - x) ** 2)))
    assert psnr(blobs, blobs) == float("inf") and ssim(blobs, blobs) == pytest.approx(1.0)


def test_load_image_formats(tmp_path):
    import tifffile
    from PIL import Image

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    tifffile.imwrite(tmp_path / "a.tif", a)
    np.save(tmp_path / "a.npy", a)
    Image.fromarray(a.astype(np.uint8)).save(tmp_path / "a.png")
    for f in ("a.tif", "a.npy", "a.png"):
        np.testing.assert_array_equal(load_image(tmp_path / f), a)
    with pytest.raises(ValueError, match="not found"):
        load_image(tmp_path / "missing.tif")
    np.save(tmp_path / "b.npy", np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        load_image(tmp_path / "b.npy")
    np.save(tmp_path / "c.npy", np.array([[1.0, np.nan]]))
    with pytest.raises(ValueError, match="NaN"):
        load_image(tmp_path / "c.npy")
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(ValueError, match="unknown image type"):
        load_image(tmp_path / "d.txt")


def test_idw_baseline_interpolates(blobs):
    from steering.reconstruction import reconstruct_idw

    rng = np.random.default_rng(0)
    flat = rng.choice(blobs.size, blobs.size // 10, replace=False)
    pts = np.stack(np.divmod(flat, blobs.shape[1]), axis=1)
    vals = blobs[pts[:, 0], pts[:, 1]]
    idw = reconstruct_idw(blobs.shape, pts, vals)
    np.testing.assert_allclose(idw[pts[:, 0], pts[:, 1]], vals)
    # a weighted mean of measured values: inside their range, and a constant field stays constant
    assert vals.min() - 1e-12 <= idw.min() and idw.max() <= vals.max() + 1e-12
    np.testing.assert_allclose(reconstruct_idw(blobs.shape, pts, np.full(len(pts), 3.0)), 3.0)
