"""The `steering.Sampler` of a scan, from the JSON-friendly settings a plan takes, and its metadata."""

from __future__ import annotations

import json
from pathlib import Path

from steering import Sampler, StopCriteria

__all__ = ["SAMPLER_SETTINGS", "make_sampler", "sampler_metadata"]

SAMPLER_SETTINGS = ("model", "initial_fraction", "initial_pattern", "batch_size", "stop", "seed", "suppression",
                    "distance_discount", "probe_fraction")
"""The `Sampler` settings a scan takes as a dict (or a JSON file of one)."""


def _settings_file(path: str | Path) -> dict:
    try:
        settings = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"cannot read sampler settings file {str(path)!r}: {exc}") from None
    except ValueError as exc:
        raise ValueError(f"sampler settings file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(settings, dict):
        raise ValueError(f"sampler settings file {str(path)!r} must hold a JSON object")
    return settings


def make_sampler(sampler: Sampler | dict | str | Path | None, shape: tuple[int, int]) -> Sampler:
    """The `Sampler` a scan of ``shape`` uses.

    Parameters
    ----------
    sampler : Sampler, dict, path or None
        A fresh `Sampler` for this grid; a dict of its settings (`SAMPLER_SETTINGS`: ``model`` a
        model file path or None for the shipped model, ``stop`` a dict of `StopCriteria` fields or
        the path of a JSON file holding one, ...); the path of a JSON file holding such a dict (as
        ``smart-scan-tune`` writes); or None for the defaults.
    shape : (H, W)
    """
    if isinstance(sampler, Sampler):
        if tuple(sampler.shape) != tuple(shape):
            raise ValueError(f"sampler is for a {sampler.shape} grid but the scan is {tuple(shape)}")
        if sampler.n_measured or sampler.ask_times_:
            raise ValueError("sampler has been used already; pass a fresh Sampler")
        return sampler
    if sampler is None:
        return Sampler(shape)
    if isinstance(sampler, (str, Path)):
        sampler = _settings_file(sampler)
    if not isinstance(sampler, dict):
        raise TypeError(f"sampler must be a Sampler, a dict of its settings, a JSON file of them or None, "
                        f"got {type(sampler).__name__}")
    unknown = set(sampler) - set(SAMPLER_SETTINGS)
    if unknown:
        raise ValueError(f"unknown sampler settings {sorted(unknown)}; known: {sorted(SAMPLER_SETTINGS)}")
    kwargs = dict(sampler)
    stop = kwargs.get("stop")
    if isinstance(stop, (str, Path)):
        kwargs["stop"] = StopCriteria.from_json(stop)
    elif isinstance(stop, dict):
        kwargs["stop"] = StopCriteria.from_dict(stop)
    return Sampler(shape, **kwargs)


def sampler_metadata(sampler: Sampler) -> dict:
    """The settings of ``sampler`` and the identity of its model, for a run's start document."""
    model = sampler.model_
    return {
        "initial_fraction": sampler.initial_fraction,
        "initial_pattern": sampler.initial_pattern,
        "batch_size": sampler.batch_size_,
        "seed": sampler.seed,
        "suppression": sampler.suppression,
        "distance_discount": sampler.distance_discount,
        "probe_fraction": sampler.probe_fraction,
        "stop": sampler.stop_.to_dict(),
        "model": {**model.source, "name": model.card.get("name"), "created": model.card.get("created"),
                  "hidden": list(model.hidden)},
    }
