"""Stateless maths: neuron parameters/state tuples and step functions, plasticity rules,
surrogates, encoders.

Nothing here is an ``nn.Module``; everything is a pure function of tensors and NamedTuples. Each
neuron model's parameters, state and step function are re-exported here by name (a test checks
that every model of :data:`MODELS` is).
"""

from spikeexp.functional.competition import (
    CompetitiveParameters,
    CompetitiveState,
    competitive_step,
)
from spikeexp.functional.neurons import MODELS, NeuronModel
from spikeexp.functional.neurons.iaf import IAFParameters, IAFState, iaf_step
from spikeexp.functional.neurons.izhikevich import (
    IzhikevichParameters,
    IzhikevichState,
    izhikevich_preset,
    izhikevich_step,
)
from spikeexp.functional.neurons.li import LIParameters, LIState, li_step
from spikeexp.functional.neurons.li_box import LIBoxParameters, LIBoxState, li_box_step
from spikeexp.functional.neurons.lif import LIFParameters, LIFState, lif_step
from spikeexp.functional.neurons.lif_adex import LIFAdExParameters, LIFAdExState, lif_adex_step
from spikeexp.functional.neurons.lif_box import LIFBoxParameters, LIFBoxState, lif_box_step
from spikeexp.functional.neurons.lsnn import LSNNParameters, LSNNState, lsnn_step
from spikeexp.functional.neurons.plif import PLIFParameters, PLIFState, plif_step
from spikeexp.functional.plasticity import RULES, PlasticityRule
from spikeexp.functional.plasticity.mstdp import MSTDPParameters, MSTDPState, mstdp_step
from spikeexp.functional.plasticity.stdp import STDPParameters, STDPState, stdp_step
from spikeexp.functional.plasticity.stp import (
    TsodyksMarkramParameters,
    TsodyksMarkramState,
    stp_step,
)
from spikeexp.functional.plasticity.triplet import TripletParameters, TripletState, triplet_step
from spikeexp.functional.surrogate import SURROGATES, spike, surrogate_derivative

__all__ = [
    "MODELS",
    "RULES",
    "SURROGATES",
    "CompetitiveParameters",
    "CompetitiveState",
    "IAFParameters",
    "IAFState",
    "IzhikevichParameters",
    "IzhikevichState",
    "LIBoxParameters",
    "LIBoxState",
    "LIFAdExParameters",
    "LIFAdExState",
    "LIFBoxParameters",
    "LIFBoxState",
    "LIFParameters",
    "LIFState",
    "LIParameters",
    "LIState",
    "LSNNParameters",
    "LSNNState",
    "MSTDPParameters",
    "MSTDPState",
    "NeuronModel",
    "PLIFParameters",
    "PLIFState",
    "PlasticityRule",
    "STDPParameters",
    "STDPState",
    "TripletParameters",
    "TripletState",
    "TsodyksMarkramParameters",
    "TsodyksMarkramState",
    "competitive_step",
    "iaf_step",
    "izhikevich_preset",
    "izhikevich_step",
    "li_box_step",
    "li_step",
    "lif_adex_step",
    "lif_box_step",
    "lif_step",
    "lsnn_step",
    "mstdp_step",
    "plif_step",
    "spike",
    "stdp_step",
    "stp_step",
    "surrogate_derivative",
    "triplet_step",
]
