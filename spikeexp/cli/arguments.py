"""``key=value`` arguments of the commands that are not Hydra apps (``spikeexp-plot``,
``spikeexp-export``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any, TypeVar

T = TypeVar("T")


def parse_key_values(argv: Sequence[str], cls: type[T], integers: Sequence[str] = ()) -> T:
    """``key=value`` words into the dataclass ``cls`` (its fields are the valid keys);
    ``integers`` name the fields given as non-negative integers. One-line ``ValueError`` on an
    unknown key or a bad integer."""
    valid = [item.name for item in fields(cls)]
    values: dict[str, Any] = {}
    for word in argv:
        key, separator, value = word.partition("=")
        if not separator or key not in valid:
            raise ValueError(f"unknown argument {word!r}; valid: {'=..., '.join(valid)}=...")
        values[key] = value
    for key in integers:
        if key in values:
            if not values[key].isdigit():
                raise ValueError(f"{key} must be an integer >= 0 (got {values[key]!r})")
            values[key] = int(values[key])
    return cls(**values)


def check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    """One-line ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)} (got {value!r})")
