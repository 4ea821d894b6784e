"""The ERD network: predicts, for each unmeasured pixel, the reduction in distortion of measuring it.

`ERDNet` is a small per-pixel MLP over the scale-aware features of `steering.features`. It outputs
``log(ERD)``, the ERD being the reduction of the reconstruction's squared error (summed over pixels,
in units of the intensity scale squared) that measuring the pixel is expected to bring; the
sampler uses ``exp`` of it.
Weights are stored as safetensors (data only, never a pickle) beside a JSON model card.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from .features import FEATURE_NAMES, N_FEATURES

__all__ = ["ERDNet", "load_model", "save_model", "default_model_path", "weights_digest", "ModelFileError"]

_FORMAT = "steering-erd-mlp/1"
logger = logging.getLogger(__name__)


class ModelFileError(ValueError):
    """A model file is missing, unreadable, or not an ERD model of this package's feature set."""


class ERDNet(nn.Module):
    """Per-pixel MLP: standardised features -> hidden layers (ReLU) -> log ERD.

    Parameters
    ----------
    n_features : int
        Number of input features (`steering.features.N_FEATURES`).
    hidden : tuple of int
        Widths of the hidden layers.

    Attributes
    ----------
    card : dict
        The model card (training data, settings, validation figures) when loaded from a file.
    source : dict
        ``path`` and ``sha256`` of the file it was loaded from (empty for an untrained network).
    """

    def __init__(self, n_features: int = N_FEATURES, hidden: tuple[int, ...] = (64, 64, 32)):
        super().__init__()
        self.n_features = int(n_features)
        self.hidden = tuple(int(h) for h in hidden)
        self.register_buffer("feature_mean", torch.zeros(self.n_features))
        self.register_buffer("feature_std", torch.ones(self.n_features))
        layers: list[nn.Module] = []
        width = self.n_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)
        self.card: dict = {}
        self.source: dict = {}

    def set_standardisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Fix the per-feature mean and standard deviation used to standardise inputs."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.mlp((x - self.feature_mean) / self.feature_std).squeeze(-1)

    @torch.no_grad()
    def predict_erd(self, features: np.ndarray, chunk: int = 1 << 13) -> np.ndarray:
        """ERD (``exp`` of the network output) of each row of an (n, n_features) feature matrix."""
        out = np.empty(len(features), dtype=np.float32)
        for i in range(0, len(features), chunk):
            x = torch.from_numpy(np.ascontiguousarray(features[i : i + chunk], dtype=np.float32))
            out[i : i + chunk] = torch.exp(self.forward(x).clamp(max=60.0)).numpy()
        return out


def default_model_path() -> Path:
    """Path of the pretrained model shipped inside the package."""
    return Path(str(resources.files("steering") / "models" / "default.safetensors"))


def weights_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of ``tensors`` (stored in the file, checked on load)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_model(model: ERDNet, path: str | Path, card: dict | None = None) -> Path:
    """Write ``path`` (safetensors) and its model card ``path`` with suffix ``.json``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": _FORMAT,
        "n_features": str(model.n_features),
        "hidden": json.dumps(list(model.hidden)),
        "feature_names": json.dumps(list(FEATURE_NAMES)),
        "weights_sha256": weights_digest(tensors),
    }
    save_file(tensors, str(path), metadata=meta)
    if card is not None:
        path.with_suffix(".json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def load_model(path: str | Path | None = None) -> ERDNet:
    """Load an ERD model from a safetensors file (default: the shipped one).

    The file is read as data only (safetensors: a JSON header and raw tensor bytes; nothing in it
    is ever executed). Its header must name this package's format and feature set, and the
    weights must match the checksum the header holds and be finite, so a file altered after it
    was written is refused.

    Raises
    ------
    ModelFileError
        If the file is missing, corrupt or altered, or was made for another feature set.
    """
    path = default_model_path() if path is None else Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"not a readable safetensors model file: {path} ({exc})") from exc
    if meta.get("format") != _FORMAT:
        raise ModelFileError(
            f"{path} is not a steering ERD model (format {meta.get('format')!r}, expected {_FORMAT!r})"
        )
    try:
        names = json.loads(meta.get("feature_names", "[]"))
    except ValueError as exc:
        raise ModelFileError(f"{path}: unreadable header field feature_names ({exc})") from exc
    if tuple(names) != FEATURE_NAMES:
        raise ModelFileError(f"{path} was trained on features {names}, this package computes {list(FEATURE_NAMES)}")
    if meta.get("weights_sha256") != weights_digest(tensors):
        raise ModelFileError(f"{path}: the weights do not match the checksum in the file's header "
                             "(altered or damaged after it was written)")
    if not all(bool(torch.isfinite(t).all()) for t in tensors.values() if t.is_floating_point()):
        raise ModelFileError(f"{path}: the weights hold NaN or inf")
    try:
        model = ERDNet(int(meta["n_features"]), tuple(json.loads(meta["hidden"])))
        model.load_state_dict(tensors, strict=True)
    except (KeyError, RuntimeError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} does not hold the weights of an ERDNet: {exc}") from exc
    card_path = path.with_suffix(".json")
    model.card = {}
    if card_path.is_file():
        try:
            model.card = json.loads(card_path.read_text())
        except ValueError:
            logger.warning("model card %s is not valid JSON; ignored", card_path)
    model.source = {"path": str(path.resolve()), "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    model.eval()
    return model
