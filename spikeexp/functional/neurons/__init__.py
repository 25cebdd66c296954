"""Neuron models, one file each; every file defines a :class:`NeuronModel` named ``MODEL``.

Models are discovered from this package, so adding a model is adding one file here (plus its
config in ``conf/neuron/`` and tests). :data:`MODELS` maps config names to models.
"""

from __future__ import annotations

import importlib
import pkgutil

from spikeexp.functional.neurons.base import NeuronModel


def _discover() -> dict[str, NeuronModel]:
    models: dict[str, NeuronModel] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        model = getattr(module, "MODEL", None)
        if isinstance(model, NeuronModel):
            models[model.name] = model
    return models


MODELS: dict[str, NeuronModel] = _discover()

__all__ = ["MODELS", "NeuronModel"]
