"""spikeexp: spiking neural network experiments on PyTorch, Lightning and Hydra.

The neuron library is re-exported here (everything in :mod:`spikeexp.functional` and
:mod:`spikeexp.module`)::

    import spikeexp as snn
    cell = snn.LIFCell()
    spikes, state = cell(torch.ones(1))

The other packages: :mod:`spikeexp.engine` (config -> LightningModule), :mod:`spikeexp.callbacks`
(Lightning callbacks), :mod:`spikeexp.runtime` (checkpoint files, processes),
:mod:`spikeexp.viz` (figures), :mod:`spikeexp.cli` (the commands, the only Hydra layer).
"""

from spikeexp import functional, module
from spikeexp.functional import *  # noqa: F403
from spikeexp.module import *  # noqa: F403

__version__ = "0.1.0"
__all__ = ["__version__", "functional", "module", *functional.__all__, *module.__all__]
