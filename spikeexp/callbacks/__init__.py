"""Lightning callbacks that show what a spiking network does (configured in ``conf/callbacks/``).

* :class:`SpikeActivityMonitor`: per-epoch scalars (spikes per step, saturated neurons, spikes
  per sample, learning rate, gradient norm).
* :class:`SpikePlots`: rasters, voltage and readout traces, rate and weight histograms.
* :class:`HParamsLogger`: hyper-parameters and metric tags for TensorBoard's HPARAMS tab.
* :class:`EfficiencyReport`: NeuroBench's efficiency metrics at the end of every test stage.
* :class:`PlasticityMonitor`: receptive fields, weight histograms and update rates of plastic
  connections.
"""

from spikeexp.callbacks.activity import SpikeActivityMonitor
from spikeexp.callbacks.efficiency import EfficiencyReport
from spikeexp.callbacks.hparams import HParamsLogger, flatten_config, group_choices
from spikeexp.callbacks.plasticity import PlasticityMonitor
from spikeexp.callbacks.plots import SpikePlots

__all__ = [
    "EfficiencyReport",
    "HParamsLogger",
    "PlasticityMonitor",
    "SpikeActivityMonitor",
    "SpikePlots",
    "flatten_config",
    "group_choices",
]
