"""Edge cases: full coverage, tiny and thin grids, large grids, bad input."""

import tracemalloc

import numpy as np
import pytest
from conftest import run_to_end

from steering import Sampler, StopCriteria


def test_full_coverage_no_crash():
    rng = np.random.default_rng(0)
    truth = rng.random((16, 16))
    s = Sampler(truth.shape, seed=0, batch_size=17, stop=StopCriteria(max_fraction=1.0))
    run_to_end(s, truth)
    assert s.done and s.fraction == 1.0
    assert s.stop_reason == "all 256 pixels measured"
    np.testing.assert_array_equal(s.reconstruction, truth)
    assert s.ask().shape == (0, 2)
    assert np.all(s.erd == 0)


def test_batch_larger_than_what_is_left():
    truth = np.arange(100.0).reshape(10, 10)
    s = Sampler(truth.shape, seed=0, stop=StopCriteria(max_fraction=1.0))
    p = s.ask()
    s.tell(p, truth[p[:, 0], p[:, 1]])
    while s.n_measured < 95:
        p = s.ask(min(10, 95 - s.n_measured))
        s.tell(p, truth[p[:, 0], p[:, 1]])
    p = s.ask(1000)
    assert len(p) == 5
    s.tell(p, truth[p[:, 0], p[:, 1]])
    assert s.done


def test_budget_caps_a_batch():
    truth = np.ones((20, 20))
    s = Sampler(truth.shape, seed=0, batch_size=50, stop=StopCriteria(max_fraction=0.1))
    run_to_end(s, truth)
    assert s.n_measured == 40


@pytest.mark.parametrize("shape", [(1, 40), (40, 1), (2, 2), (1, 1), (3, 2), (37, 53)])
def test_small_thin_and_non_square_grids(shape):
    rng = np.random.default_rng(0)
    truth = rng.random(shape)
    s = Sampler(shape, seed=0, stop=StopCriteria(max_fraction=1.0))
    run_to_end(s, truth)
    assert s.fraction == 1.0
    np.testing.assert_array_equal(s.reconstruction, truth)


def test_thin_grid_interpolates_linearly():
    truth = np.linspace(0, 1, 50)[None, :]
    s = Sampler(truth.shape, seed=0, stop=StopCriteria(max_fraction=0.5))
    p = s.ask()
    s.tell(p, truth[p[:, 0], p[:, 1]])
    p = s.ask()
    s.tell(p, truth[p[:, 0], p[:, 1]])
    rec = s.reconstruction
    lo, hi = s.measured_points[:, 1].min(), s.measured_points[:, 1].max()
    np.testing.assert_allclose(rec[0, lo : hi + 1], truth[0, lo : hi + 1], atol=1e-9)


def test_large_grid_memory_is_linear():
    shape = (2048, 2048)
    tracemalloc.start()
    s = Sampler(shape, seed=0, batch_size=50, stop=StopCriteria(max_fraction=0.5))
    p = s.ask()
    assert len(p) == round(0.01 * 2048 * 2048)
    rr, cc = p[:, 0], p[:, 1]
    s.tell(p, np.sin(rr / 50.0) + np.cos(cc / 70.0))
    for _ in range(3):
        p = s.ask()
        assert len(p) == 50
        s.tell(p, np.sin(p[:, 0] / 50.0) + np.cos(p[:, 1] / 70.0))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # Linear: a few hundred bytes per pixel at most; quadratic would be ~1.8e13 bytes.
    assert peak < 400 * 2048 * 2048


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shape": (0, 5)}, "shape"),
        ({"shape": (5,)}, "shape"),
        ({"shape": (4.5, 4)}, "shape"),
        ({"shape": (8, 8), "initial_fraction": 0}, "initial_fraction"),
        ({"shape": (8, 8), "initial_fraction": 1.5}, "initial_fraction"),
        ({"shape": (8, 8), "batch_size": 0}, "batch_size"),
        ({"shape": (8, 8), "initial_pattern": "spiral"}, "initial_pattern"),
        ({"shape": (8, 8), "stop": 0.3}, "stop"),
        ({"shape": (8, 8), "model": "/nonexistent/model.safetensors"}, "not found"),
    ],
)
def test_bad_sampler_arguments(kwargs, match):
    shape = kwargs.pop("shape")
    with pytest.raises(ValueError, match=match):
        Sampler(shape, **kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"max_fraction": 0}, "max_fraction"),
        ({"max_fraction": 1.2}, "max_fraction"),
        ({"max_points": 0}, "max_points"),
        ({"erd_ratio": 1.5}, "erd_ratio"),
        ({"prediction_error": -1}, "prediction_error"),
    ],
)
def test_bad_stop_criteria(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StopCriteria(**kwargs)


def test_bad_tell_input():
    s = Sampler((8, 8), seed=0, stop=StopCriteria(max_fraction=1.0))
    p = s.ask()
    with pytest.raises(ValueError, match=r"shape \(k, 2\)"):
        s.tell(np.array([1, 2, 3]), np.array([1.0]))
    with pytest.raises(ValueError, match="outside the 8x8 grid"):
        s.tell(np.array([[8, 0]]), np.array([1.0]))
    with pytest.raises(ValueError, match="outside"):
        s.tell(np.array([[-1, 0]]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-finite"):
        s.tell(p[:1], np.array([np.nan]))
    with pytest.raises(ValueError, match="non-finite"):
        s.tell(p[:1], np.array([np.inf]))
    with pytest.raises(ValueError, match="integer"):
        s.tell(np.array([[0.5, 1.0]]), np.array([1.0]))
    with pytest.raises(ValueError, match="to match points"):
        s.tell(np.array([[0, 0], [0, 1]]), np.array([1.0]))
    with pytest.raises(ValueError, match="duplicates"):
        s.tell(np.array([[1, 1], [1, 1]]), np.array([1.0, 2.0]))
    s.tell(p, np.ones(len(p)))
    with pytest.raises(ValueError, match="already measured"):
        s.tell(p[:1], np.array([1.0]))
    with pytest.raises(ValueError, match="n must be"):
        s.ask(0)
    with pytest.raises(ValueError, match="start"):
        s.ask(start=(1, 2, 3))
