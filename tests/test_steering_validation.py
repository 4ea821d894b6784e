"""Settings typed by a person are refused by name in steering, before any sampling starts."""

import json

import numpy as np
import pytest

from steering import Sampler, StopCriteria
from steering.checks import number_in, whole_number

_BAD_STOP = [
    ({"max_fraction": "0.2"}, TypeError, "max_fraction must be a number, got '0.2'"),
    ({"max_fraction": True}, TypeError, "max_fraction must be a number"),
    ({"max_fraction": None, "max_points": 2.5}, ValueError, "max_points must be an integer >= 1"),
    ({"max_points": "100"}, TypeError, "max_points must be a number"),
    ({"erd_ratio": "0.05"}, TypeError, "erd_ratio must be a number"),
    ({"ssim_estimate": 1.0}, ValueError, r"ssim_estimate must be in \(0, 1\)"),
    ({"recon_change": float("nan")}, ValueError, "recon_change must be a finite number > 0"),
    ({"max_wall_time": "60"}, TypeError, "max_wall_time must be a number"),
    ({"combine": ["any"]}, ValueError, "combine must be 'any' or 'all'"),
    ({"error_window": "200"}, TypeError, "error_window must be a number"),
    ({"min_fraction": -0.1}, ValueError, r"min_fraction must be in \[0, 1\]"),
]


@pytest.mark.parametrize("fields, error, message", _BAD_STOP)
def test_a_bad_stop_field_is_named(fields, error, message):
    with pytest.raises(error, match=message):
        StopCriteria(**fields)


def test_quoted_numbers_in_a_stop_file_name_the_field_and_the_file(tmp_path):
    path = tmp_path / "night-shift-stop.json"
    path.write_text(json.dumps({"max_fraction": "0.2", "erd_ratio": 0.05}))
    with pytest.raises(TypeError, match=r"file '.*night-shift-stop\.json': max_fraction must be a number"):
        StopCriteria.from_json(path)
    with pytest.raises(TypeError, match=r"stop criteria '\{.*: max_fraction must be a number"):
        StopCriteria.from_json(path.read_text())


def test_a_binary_stop_file_is_named_not_decoded(tmp_path):
    path = tmp_path / "garbage.bin"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"stop criteria file '.*garbage\.bin' is not a text file"):
        StopCriteria.from_json(path)
    (tmp_path / "list.json").write_text("[0.2]")
    with pytest.raises(ValueError, match=r"'.*list\.json' must hold a JSON object, got list"):
        StopCriteria.from_json(tmp_path / "list.json")


_BAD_SAMPLER = [
    ({"seed": -1}, ValueError, "seed must be an integer >= 0, got -1"),
    ({"seed": "a"}, TypeError, "seed must be a number"),
    ({"seed": 1.5}, ValueError, "seed must be an integer >= 0"),
    ({"model": 123}, TypeError, "model .* must be a file path"),
    ({"model": "/no/such/model.safetensors"}, ValueError, "model file not found"),
    ({"model": "."}, ValueError, "model .* must be a file, got the folder"),
    ({"batch_size": "3"}, TypeError, "batch_size must be a number"),
    ({"batch_size": 2.5}, ValueError, "batch_size must be an integer >= 1"),
    ({"initial_fraction": True}, TypeError, "initial_fraction must be a number"),
    ({"probe_fraction": "0.1"}, TypeError, "probe_fraction must be a number"),
    ({"suppression": None}, TypeError, "suppression must be a number"),
    ({"distance_discount": float("nan")}, ValueError, "distance_discount must be finite"),
]


@pytest.mark.parametrize("settings, error, message", _BAD_SAMPLER)
def test_a_bad_sampler_setting_is_named(settings, error, message):
    with pytest.raises(error, match=message):
        Sampler((16, 16), **settings)


@pytest.mark.parametrize("shape", [(16, "16"), (True, 4), 5, (4, 4, 4), (0, 4)])
def test_a_bad_shape_is_named(shape):
    with pytest.raises(ValueError, match="shape must be"):
        Sampler(shape)


def test_whole_seeds_given_as_floats_or_numpy_integers_give_the_same_points():
    picks = [Sampler((16, 16), seed=seed).ask() for seed in (7, 7.0, np.int64(7))]
    assert all(np.array_equal(picks[0], p) for p in picks[1:])


def test_checks_take_numpy_numbers_and_say_the_range():
    assert whole_number("n", np.int32(3), 1) == 3
    assert number_in("f", np.float32(0.5), 0.0, 1.0, closed="high") == 0.5
    with pytest.raises(ValueError, match=r"f must be in \(0, 1\], got 0"):
        number_in("f", 0, 0.0, 1.0, closed="high")


def test_tune_names_a_blank_reference_image():
    from steering.tools.tune import tune

    noise = np.random.default_rng(0).random((32, 32))
    with pytest.raises(ValueError, match="reference image 'flat.png' is blank: every pixel is 3"):
        tune({"noise": noise, "flat.png": np.full((32, 32), 3.0)}, progress=False, target=0.5)
