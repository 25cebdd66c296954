"""``key=value`` arguments of the commands that are not Hydra apps (``spikeexp-plot``,
``spikeexp-export``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
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


def run_command(
    name: str, usage: str, argv: Sequence[str] | None, work: Callable[[list[str]], list[str]]
) -> int:
    """Run a ``key=value`` command: ``-h``/``--help`` prints ``usage``; ``work(argv)`` returns
    the lines to print. Bad input (``ValueError``, ``OSError``) is one line ``<name>: <error>``
    on stderr and exit status 2; success exits 0."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(word in ("-h", "--help") for word in argv):
        print(usage)
        return 0
    try:
        lines = work(argv)
    except (ValueError, OSError) as error:
        print(f"{name}: {error}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    return 0
