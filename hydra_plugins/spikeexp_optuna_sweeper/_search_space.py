"""Hydra sweep expressions -> Optuna distributions, and suggested values -> override strings."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

PRIMITIVES = (type(None), bool, int, float, str)
VALID_TAGS = {"log", "int"}
VALID_EXPRESSIONS = (
    "interval(a,b), tag(log, interval(a,b)), tag(int, interval(a,b)), choice(...), "
    "range(...), a,b,c"
)


@dataclass
class SearchSpace:
    """The distributions Optuna samples, and how a sample becomes a trial's overrides."""

    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    # Parameter name -> key element of the override (keeps a `+`/`++` prefix).
    keys: dict[str, str] = field(default_factory=dict)
    # Categorical parameters whose categories are override text (lists, dicts).
    verbatim: set[str] = field(default_factory=set)
    # Overrides passed unchanged to every trial.
    fixed: list[str] = field(default_factory=list)

    def overrides(self, params: Mapping[str, Any]) -> list[str]:
        """The overrides of a trial with sampled ``params``."""
        sampled = [
            f"{self.keys[name]}={value if name in self.verbatim else override_value(value)}"
            for name, value in params.items()
        ]
        return [*self.fixed, *sampled]


def override_value(value: Any) -> str:
    """``value`` written so that Hydra's override parser reads it back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if _parses_back(value):
            return value
        escaped = value.replace("\\", "\\\\").replace("'", "\\'")
        return f"'{escaped}'"
    if isinstance(value, list | tuple):
        return "[" + ",".join(override_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        items = ",".join(f"{key}:{override_value(item)}" for key, item in value.items())
        return "{" + items + "}"
    raise ValueError(f"cannot write {value!r} ({type(value).__name__}) as a Hydra override value")


def _parses_back(text: str) -> bool:
    try:
        parsed = OverridesParser.create().parse_override(f"key={text}")
    except Exception:
        return False
    return not parsed.is_sweep_override() and parsed.value() == text


def _param_name(override: Override) -> str:
    if override.package:
        return f"{override.key_or_group}@{override.package}"
    return override.key_or_group


def _interval(name: str, sweep: IntervalSweep) -> BaseDistribution:
    unknown = set(sweep.tags) - VALID_TAGS
    if unknown:
        raise ValueError(
            f"hydra.sweeper.params.{name}: unknown tag(s) {sorted(unknown)}; "
            f"valid: {sorted(VALID_TAGS)}"
        )
    log = "log" in sweep.tags
    if "int" in sweep.tags:
        return IntDistribution(int(sweep.start), int(sweep.end), log=log)
    return FloatDistribution(float(sweep.start), float(sweep.end), log=log)


def _range(name: str, sweep: RangeSweep) -> BaseDistribution:
    start, stop, step = sweep.start, sweep.stop, sweep.step
    if step is None or step <= 0 or stop <= start:
        raise ValueError(
            f"hydra.sweeper.params.{name}: range({start},{stop},{step}) must have "
            "start < stop and step > 0"
        )
    count = math.ceil((stop - start) / step - 1e-9)
    last = start + (count - 1) * step
    if isinstance(last, float):
        last = round(last, 12)  # 0.1 + 2 * 0.1 is 0.30000000000000004
    if all(isinstance(x, int) for x in (start, stop, step)):
        return IntDistribution(int(start), int(last), step=int(step))
    return FloatDistribution(float(start), float(last), step=float(step))


def _choice(name: str, sweep: ChoiceSweep, space: SearchSpace) -> BaseDistribution:
    choices = list(sweep.list)
    if all(isinstance(choice, PRIMITIVES) for choice in choices):
        return CategoricalDistribution(choices)
    space.verbatim.add(name)
    return CategoricalDistribution([override_value(choice) for choice in choices])


def _add(space: SearchSpace, override: Override) -> None:
    name = _param_name(override)
    space.distributions.pop(name, None)
    space.keys.pop(name, None)
    space.verbatim.discard(name)
    space.fixed = [line for line in space.fixed if _fixed_name(line) != name]
    if not override.is_sweep_override():
        space.fixed.append(override.input_line)
        return
    sweep = override.value()
    if isinstance(sweep, IntervalSweep):
        distribution = _interval(name, sweep)
    elif isinstance(sweep, RangeSweep):
        distribution = _range(name, sweep)
    elif isinstance(sweep, ChoiceSweep):
        distribution = _choice(name, sweep, space)
    else:
        raise ValueError(
            f"hydra.sweeper.params.{name}: {override.input_line!r} is not a supported search "
            f"space; valid: {VALID_EXPRESSIONS}"
        )
    space.distributions[name] = distribution
    space.keys[name] = override.get_key_element()


def _fixed_name(line: str) -> str:
    return _param_name(OverridesParser.create().parse_override(line))


def parse_search_space(params: Mapping[str, Any], arguments: Sequence[str]) -> SearchSpace:
    """The search space of ``hydra.sweeper.params`` updated by command-line ``arguments``.

    A command-line sweep replaces the configured one for the same key; a plain command-line
    value fixes that key for every trial.
    """
    lines = [
        f"{key}={value if isinstance(value, str) else override_value(value)}"
        for key, value in params.items()
    ]
    parser = OverridesParser.create()
    space = SearchSpace()
    for override in parser.parse_overrides([*lines, *arguments]):
        _add(space, override)
    return space
