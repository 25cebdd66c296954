"""PyTorch modules: generic neuron wrappers (four per spiking model), containers, encoders,
pooling, linear layers for spike input."""

from spikeexp.functional.unroll import RecurrentState
from spikeexp.module.container import Lift, SequentialState
from spikeexp.module.encode import (
    ConstantCurrentEncoder,
    ConstantCurrentLIFEncoder,
    Encoder,
    PoissonEncoder,
    PopulationEncoder,
    SpikeLatencyEncoder,
)
from spikeexp.module.linear import SpikeLinear
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
from spikeexp.module.pool import FusedMaxPool2d
from spikeexp.module.readout import LILinear, LILinearCell

globals().update(NEURON_MODULES)

__all__ = [
    "BACKENDS",
    "NEURON_MODULES",
    "LILinear",
    "LILinearCell",
    "ConstantCurrentEncoder",
    "ConstantCurrentLIFEncoder",
    "Encoder",
    "FusedMaxPool2d",
    "Lift",
    "NeuronCell",
    "NeuronModule",
    "NeuronRecurrent",
    "NeuronRecurrentCell",
    "NeuronSequence",
    "PoissonEncoder",
    "PopulationEncoder",
    "RecurrentState",
    "SequentialState",
    "SpikeLinear",
    "SpikeLatencyEncoder",
    "build_modules",
    *NEURON_MODULES,
]
