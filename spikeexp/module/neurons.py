"""The neuron classes: four per spiking model (two for the non-spiking LI), one line of code each.

Each class is a generic wrapper of :mod:`spikeexp.module.neuron` bound to one model of
:mod:`spikeexp.functional.neurons`; the behaviour lives in the wrappers and the model's step
function, never here. Adding a model adds its four declarations below (a test names any that is
missing).

====================  =============================================
class                 runs
====================  =============================================
``XCell``             one step, any input shape
``X``                 a time-first sequence ``[T, batch, ...]``
``XRecurrentCell``    one recurrent step ``[batch, input_size]``
``XRecurrent``        a recurrent sequence ``[T, batch, input_size]``
====================  =============================================
"""

from __future__ import annotations

from spikeexp.functional.neurons import (
    iaf,
    izhikevich,
    li,
    li_box,
    lif,
    lif_adex,
    lif_box,
    lsnn,
    plif,
)
from spikeexp.module.neuron import (
    NeuronCell,
    NeuronRecurrent,
    NeuronRecurrentCell,
    NeuronSequence,
)


class IAFCell(NeuronCell, model=iaf.MODEL):
    """Integrate-and-fire neurons, one step."""


class IAF(NeuronSequence, model=iaf.MODEL):
    """Integrate-and-fire neurons over a sequence."""


class IAFRecurrentCell(NeuronRecurrentCell, model=iaf.MODEL):
    """A recurrent layer of integrate-and-fire neurons, one step."""


class IAFRecurrent(NeuronRecurrent, model=iaf.MODEL):
    """A recurrent layer of integrate-and-fire neurons over a sequence."""


class IzhikevichCell(NeuronCell, model=izhikevich.MODEL):
    """Izhikevich neurons, one step."""


class Izhikevich(NeuronSequence, model=izhikevich.MODEL):
    """Izhikevich neurons over a sequence."""


class IzhikevichRecurrentCell(NeuronRecurrentCell, model=izhikevich.MODEL):
    """A recurrent layer of Izhikevich neurons, one step."""


class IzhikevichRecurrent(NeuronRecurrent, model=izhikevich.MODEL):
    """A recurrent layer of Izhikevich neurons over a sequence."""


class LICell(NeuronCell, model=li.MODEL):
    """Leaky integrators (non-spiking readout), one step."""


class LI(NeuronSequence, model=li.MODEL):
    """Leaky integrators (non-spiking readout) over a sequence."""


class LIBoxCell(NeuronCell, model=li_box.MODEL):
    """Leaky integrators without synaptic current (non-spiking readout), one step."""


class LIBox(NeuronSequence, model=li_box.MODEL):
    """Leaky integrators without synaptic current (non-spiking readout) over a sequence."""


class LIFCell(NeuronCell, model=lif.MODEL):
    """Current-based leaky integrate-and-fire neurons, one step."""


class LIF(NeuronSequence, model=lif.MODEL):
    """Current-based leaky integrate-and-fire neurons over a sequence."""


class LIFRecurrentCell(NeuronRecurrentCell, model=lif.MODEL):
    """A recurrent layer of current-based LIF neurons, one step."""


class LIFRecurrent(NeuronRecurrent, model=lif.MODEL):
    """A recurrent layer of current-based LIF neurons over a sequence."""


class LIFAdExCell(NeuronCell, model=lif_adex.MODEL):
    """Adaptive exponential integrate-and-fire neurons, one step."""


class LIFAdEx(NeuronSequence, model=lif_adex.MODEL):
    """Adaptive exponential integrate-and-fire neurons over a sequence."""


class LIFAdExRecurrentCell(NeuronRecurrentCell, model=lif_adex.MODEL):
    """A recurrent layer of adaptive exponential LIF neurons, one step."""


class LIFAdExRecurrent(NeuronRecurrent, model=lif_adex.MODEL):
    """A recurrent layer of adaptive exponential LIF neurons over a sequence."""


class LIFBoxCell(NeuronCell, model=lif_box.MODEL):
    """Leaky integrate-and-fire neurons without synaptic current (box synapse), one step."""


class LIFBox(NeuronSequence, model=lif_box.MODEL):
    """Leaky integrate-and-fire neurons without synaptic current over a sequence."""


class LIFBoxRecurrentCell(NeuronRecurrentCell, model=lif_box.MODEL):
    """A recurrent layer of box-synapse LIF neurons, one step."""


class LIFBoxRecurrent(NeuronRecurrent, model=lif_box.MODEL):
    """A recurrent layer of box-synapse LIF neurons over a sequence."""


class LSNNCell(NeuronCell, model=lsnn.MODEL):
    """Adaptive-threshold LIF neurons (LSNN), one step."""


class LSNN(NeuronSequence, model=lsnn.MODEL):
    """Adaptive-threshold LIF neurons (LSNN) over a sequence."""


class LSNNRecurrentCell(NeuronRecurrentCell, model=lsnn.MODEL):
    """A recurrent layer of adaptive-threshold LIF neurons (LSNN), one step."""


class LSNNRecurrent(NeuronRecurrent, model=lsnn.MODEL):
    """A recurrent layer of adaptive-threshold LIF neurons (LSNN) over a sequence."""


class PLIFCell(NeuronCell, model=plif.MODEL):
    """Parametric LIF neurons (learnable membrane time constant), one step."""


class PLIF(NeuronSequence, model=plif.MODEL):
    """Parametric LIF neurons (learnable membrane time constant) over a sequence."""


class PLIFRecurrentCell(NeuronRecurrentCell, model=plif.MODEL):
    """A recurrent layer of parametric LIF neurons, one step."""


class PLIFRecurrent(NeuronRecurrent, model=plif.MODEL):
    """A recurrent layer of parametric LIF neurons over a sequence."""
