"""Named parameter sets (presets) of parameter tuples: shared by neuron models and plasticity
rules whose published parameters come in named sets (Izhikevich classes, triplet-STDP fits)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from spikeexp.functional.validation import check_choice

CUSTOM = "custom"
"""The preset name that takes every field from the tuple itself."""


def fill_from_preset(p: Any, fields: Sequence[str], presets: Mapping[str, Any]) -> Any:
    """``p`` with its ``fields`` left ``None`` taken from the preset named ``p.preset``; fields
    given explicitly win. ``preset="custom"`` needs every field; an unknown preset name or a
    missing field raises a one-line ``ValueError``."""
    missing = [name for name in fields if getattr(p, name) is None]
    if not missing:
        return p
    check_choice("preset", p.preset, (*presets, CUSTOM))
    if p.preset == CUSTOM:
        raise ValueError(
            f"{missing[0]} must be set when preset is 'custom' (got None); "
            f"set {', '.join(fields)} or choose a preset: {', '.join(presets)}"
        )
    preset = presets[p.preset]
    return p._replace(**{name: getattr(preset, name) for name in missing})
