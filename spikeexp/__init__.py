"""spikeexp: spiking neural network experiments on PyTorch, Lightning and Hydra.

Modules and parameter tuples are re-exported here::

    import spikeexp as snn
    cell = snn.LIFCell()
    spikes, state = cell(torch.ones(1))
"""

from spikeexp import functional, module
from spikeexp.functional import *  # noqa: F403
from spikeexp.module import *  # noqa: F403

__version__ = "0.1.0"
__all__ = ["__version__", "functional", "module", *functional.__all__, *module.__all__]
