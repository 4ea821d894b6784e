"""The `steering.Sampler` of a scan, from the JSON-friendly settings a plan takes, and its metadata."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from steering import Sampler, StopCriteria
from steering.timing import StageTiming

__all__ = ["SAMPLER_SETTINGS", "make_sampler", "sampler_metadata"]

SAMPLER_SETTINGS = ("model", "initial_fraction", "initial_pattern", "batch_size", "stop", "seed", "suppression",
                    "distance_discount", "probe_fraction", "timing", "scan_mode")
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


def make_sampler(sampler: Sampler | dict | str | Path | None, shape: tuple[int, int], flyer=None, *,
                 channels: str | tuple[str, ...] = "", channel_weights=None) -> Sampler:
    """The `Sampler` a scan of ``shape`` uses.

    Parameters
    ----------
    sampler : Sampler, dict, path or None
        A fresh `Sampler` for this grid; a dict of its settings (`SAMPLER_SETTINGS`: ``model`` a
        model file path or None for the shipped model, ``stop`` a dict of `StopCriteria` fields or
        the path of a JSON file holding one, ...); the path of a JSON file holding such a dict (as
        ``smart-scan-tune`` writes); or None for the defaults. ``timing`` is a
        `steering.timing.StageTiming` or a dict of its fields.
    shape : (H, W)
    flyer : flyer device, optional
        A fly scan: the settings get ``scan_mode="fly"`` and, unless they hold one, the flyer's
        timing model (its ``timing``).
    channels : str or tuple of str
        The steering field, or fields: with a tuple, the sampler steers on one channel per field
        (``channels=len(channels)``, ``channel_weights``); a given `Sampler` must have as many.
    channel_weights : sequence of float, optional
        The weight of each field (needs a tuple of fields).
    """
    n_channels = 1 if isinstance(channels, str) else len(channels)
    if channel_weights is not None and isinstance(channels, str):
        raise ValueError("channel_weights needs value_field to be a list of fields (one weight per field)")
    sampler = _fly_settings(sampler, flyer) if flyer is not None else sampler
    if isinstance(sampler, Sampler):
        if tuple(sampler.shape) != tuple(shape):
            raise ValueError(f"sampler is for a {sampler.shape} grid but the scan is {tuple(shape)}")
        if sampler.n_measured or sampler.ask_times_:
            raise ValueError("sampler has been used already; pass a fresh Sampler")
        if sampler.channels != n_channels:
            raise ValueError(f"sampler steers on {sampler.channels} channel(s) but value_field names {n_channels}")
        return sampler
    if sampler is None:
        sampler = {}
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
    if isinstance(kwargs.get("timing"), dict):
        kwargs["timing"] = _timing(kwargs["timing"])
    if n_channels > 1:
        kwargs.update(channels=n_channels, channel_weights=channel_weights)
    return Sampler(shape, **kwargs)


def _timing(fields: dict) -> StageTiming:
    known = set(StageTiming.__dataclass_fields__)
    if set(fields) - known:
        raise ValueError(f"unknown timing fields {sorted(set(fields) - known)}; known: {sorted(known)}")
    try:
        return StageTiming(**fields)
    except TypeError as exc:  # a field missing
        raise TypeError(f"timing: {exc}") from None


def _fly_settings(sampler, flyer):
    """The sampler settings of a fly scan: fly mode, and the flyer's timing model unless the settings give one."""
    if isinstance(sampler, Sampler):
        if sampler.scan_mode != "fly":
            raise ValueError("a scan with a flyer needs a Sampler with scan_mode='fly' (or its settings as a dict)")
        return sampler
    if isinstance(sampler, (str, Path)):
        sampler = _settings_file(sampler)
    settings = dict(sampler or {})
    if settings.setdefault("scan_mode", "fly") != "fly":
        raise ValueError(f"a scan with a flyer flies: scan_mode must be 'fly', got {settings['scan_mode']!r}")
    if settings.get("timing") is None:
        timing = getattr(flyer, "timing", None)
        if timing is None:
            raise ValueError("a fly scan needs a timing model: sampler={'timing': {...StageTiming fields...}}")
        settings["timing"] = timing
    return settings


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
        "scan_mode": sampler.scan_mode,
        "channels": sampler.channels,
        "channel_weights": sampler.channel_weights_.tolist(),
        "timing": None if sampler.timing is None else dataclasses.asdict(sampler.timing),
        "stop": sampler.stop_.to_dict(),
        "model": {**model.source, "name": model.card.get("name"), "created": model.card.get("created"),
                  "hidden": list(model.hidden)},
    }
