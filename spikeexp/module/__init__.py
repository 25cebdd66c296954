"""PyTorch modules: generic neuron wrappers (four per spiking model), containers, encoders."""

from spikeexp.module.container import Lift, SequentialState
from spikeexp.module.neuron import (
    BACKENDS,
    NEURON_MODULES,
    NeuronCell,
    NeuronModule,
    NeuronRecurrent,
    NeuronRecurrentCell,
    NeuronSequence,
    build_modules,
)
from spikeexp.module.unroll import RecurrentState

globals().update(NEURON_MODULES)

__all__ = [
    "BACKENDS",
    "NEURON_MODULES",
    "Lift",
    "NeuronCell",
    "NeuronModule",
    "NeuronRecurrent",
    "NeuronRecurrentCell",
    "NeuronSequence",
    "RecurrentState",
    "SequentialState",
    "build_modules",
    *NEURON_MODULES,
]
