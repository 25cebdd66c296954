"""The engine: a config (plain mapping or OmegaConf) -> the objects of a Lightning run. No Hydra.

* :mod:`~spikeexp.engine.validate`: the one validation pass (:func:`validate_config`).
* :mod:`~spikeexp.engine.schema`: typed checks with one-line :class:`ConfigError` messages.
* :mod:`~spikeexp.engine.topology`: the network builders (``topology.type``).
* :mod:`~spikeexp.engine.spiking_module`: :class:`SpikingModule`, the LightningModule.
* :mod:`~spikeexp.engine.recompute`: full BPTT in less memory.
* :mod:`~spikeexp.engine.experiment`: :func:`build_experiment`, :func:`build_trainer`.
"""

from spikeexp.engine.experiment import (
    Experiment,
    build_experiment,
    build_test_trainer,
    build_trainer,
    network_from_config,
    plain,
)
from spikeexp.engine.schema import ConfigError
from spikeexp.engine.spiking_module import Regularization, SpikingModule
from spikeexp.engine.validate import RunSpec, validate_config

__all__ = [
    "ConfigError",
    "Experiment",
    "Regularization",
    "RunSpec",
    "SpikingModule",
    "build_experiment",
    "build_test_trainer",
    "build_trainer",
    "network_from_config",
    "plain",
    "validate_config",
]
