"""Checks of settings given by a person: each error names the setting and says what it must be.

A setting typed as ``"0.2"`` or ``True`` is a slip, not a number, even where ``float()`` would take
it; a seed of -1 or a model given as ``123`` fails deep inside numpy or torch with a message that
names neither. The checks here refuse such values at once, by name.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

__all__ = ["real_number", "whole_number", "number_in", "file_path"]


def real_number(name: str, value: Any, *, finite: bool = True) -> float:
    """``value`` as a float; a TypeError or ValueError naming ``name`` unless it is a real number.

    Strings, booleans and None are refused even where ``float()`` would take them.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    number = float(value)
    if finite and not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def whole_number(name: str, value: Any, minimum: int) -> int:
    """``value`` as an int >= ``minimum``; an error naming ``name`` otherwise (2.0 is taken, 2.5 is not)."""
    number = real_number(name, value, finite=False)
    if not math.isfinite(number) or number != int(number) or number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(number)


def number_in(name: str, value: Any, low: float, high: float, *, closed: str = "both") -> float:
    """``value`` as a float inside ``low .. high``; ``closed`` is "both", "low", "high" or "neither"."""
    number = real_number(name, value, finite=False)
    above = number >= low if closed in ("both", "low") else number > low
    below = number <= high if closed in ("both", "high") else number < high
    if not (above and below):
        left = "[" if closed in ("both", "low") else "("
        right = "]" if closed in ("both", "high") else ")"
        raise ValueError(f"{name} must be in {left}{low:g}, {high:g}{right}, got {value!r}")
    return number


def file_path(name: str, value: Any) -> Path:
    """``value`` as the path of an existing file; an error naming ``name`` if it is not a path or no file."""
    if not isinstance(value, (str, Path)):
        raise TypeError(f"{name} must be a file path (str or Path), got {value!r} ({type(value).__name__})")
    path = Path(value).expanduser()
    if path.is_dir():
        raise ValueError(f"{name} must be a file, got the folder {str(path)!r}")
    return path
