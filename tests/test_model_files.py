"""Model files are data: safetensors + JSON card; foreign or broken files fail cleanly."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from steering import ERDNet, ModelFileError, Sampler, load_model, save_model
from steering.erd import default_model_path
from steering.features import N_FEATURES


def test_shipped_model_loads_with_card():
    m = load_model()
    assert isinstance(m, ERDNet)
    assert default_model_path().suffix == ".safetensors"
    card = m.card
    for key in ("training_images", "validation", "label", "package_version"):
        assert key in card
    assert card["label"]["kind"].startswith("realised")
    # nothing from shared/data is trained on
    assert not any(n.startswith(("sem/", "s26/")) for n in card["training_images"])
    out = m.predict_erd(np.zeros((5, N_FEATURES), np.float32))
    assert out.shape == (5,) and np.all(out > 0)


def test_round_trip(tmp_path):
    m = ERDNet(hidden=(8, 4))
    m.set_standardisation(np.arange(N_FEATURES), np.ones(N_FEATURES) * 2)
    path = save_model(m, tmp_path / "m.safetensors", {"name": "m"})
    m2 = load_model(path)
    x = np.random.default_rng(0).random((10, N_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(m.predict_erd(x), m2.predict_erd(x))
    assert m2.card == {"name": "m"}
    s = Sampler((16, 16), model=str(path), seed=0)
    assert s.model_.hidden == (8, 4)


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(bad)
    # a pickle is refused, not executed
    pkl = tmp_path / "evil.safetensors"
    torch.save({"x": torch.zeros(2)}, pkl)
    with pytest.raises(ModelFileError):
        load_model(pkl)
    # a valid safetensors file of some other model
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"format": "other"})
    with pytest.raises(ModelFileError, match="not a steering ERD model"):
        load_model(foreign)
    # our format, another feature set
    m = ERDNet()
    path = save_model(m, tmp_path / "m.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    meta["feature_names"] = json.dumps(["a", "b"])
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(ModelFileError, match="trained on features"):
        load_model(path)


class _Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_file_that_would_run_code_is_refused_and_runs_nothing(tmp_path):
    import pickle

    marker = tmp_path / "code_ran"
    for suffix, write in ((".safetensors", lambda p: p.write_bytes(pickle.dumps(_Payload(marker)))),
                          (".pt", lambda p: torch.save({"x": _Payload(marker)}, p))):
        evil = tmp_path / f"evil{suffix}"
        write(evil)
        assert not marker.exists()
        with pytest.raises(ModelFileError, match="not a readable"):
            load_model(evil)
        with pytest.raises(ModelFileError):
            Sampler((16, 16), model=str(evil))
        assert not marker.exists()


def _flip_last_byte(path):
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x40
    path.write_bytes(bytes(data))


def test_altered_truncated_and_non_finite_files_are_refused(tmp_path):
    m = ERDNet(hidden=(8, 4))
    altered = save_model(m, tmp_path / "altered.safetensors")
    _flip_last_byte(altered)  # inside the last tensor's bytes: the header still parses
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(altered)
    truncated = save_model(m, tmp_path / "truncated.safetensors")
    truncated.write_bytes(truncated.read_bytes()[:-100])
    with pytest.raises(ModelFileError, match="not a readable"):
        load_model(truncated)
    with torch.no_grad():
        next(m.parameters())[0, 0] = float("nan")
    with pytest.raises(ModelFileError, match="NaN"):
        load_model(save_model(m, tmp_path / "nan.safetensors"))
    # a broken card next to good weights: the weights load, the card is empty
    good = save_model(ERDNet(hidden=(8, 4)), tmp_path / "good.safetensors", {"name": "x"})
    good.with_suffix(".json").write_text("{not json")
    assert load_model(good).card == {}


def test_a_bad_model_file_stops_smart_scan_before_anything_moves(tmp_path, blobs):
    from bluesky import RunEngine

    from plans import smart_scan
    from sim import SimulatedMicroscope

    RE = RunEngine({})
    docs = []
    RE.subscribe(lambda name, doc: docs.append(name))
    scope = SimulatedMicroscope(blobs[:16, :16], name="sim")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    for model, match in ((bad, "not a readable"), (tmp_path / "missing.safetensors", "not found")):
        with pytest.raises(ModelFileError, match=match):
            RE(smart_scan([scope.det], scope.y, 0, 15, 16, scope.x, 0, 15, 16, sampler={"model": str(model)}))
    assert scope.y.moves_ == scope.x.moves_ == 0 and docs == []  # nothing moved, no run opened
