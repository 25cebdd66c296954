"""Plots of spiking activity usable outside training (headless matplotlib figures).

::

    from spikeexp import viz
    figure = viz.spike_raster(spikes, dt=1e-3)      # spikes [T, N] or [T, batch, N]
    figure.savefig("raster.png")
"""

from spikeexp.viz.fields import field_grid, field_images, receptive_field_figure
from spikeexp.viz.figures import (
    figure_to_array,
    firing_rate_histogram,
    mask_intervals,
    neuron_rates_hz,
    readout_traces,
    select_sample,
    spike_raster,
    time_axis,
    to_numpy,
    value_heatmap,
    voltage_traces,
    weight_histograms,
)
from spikeexp.viz.record import (
    LayerRecording,
    Recording,
    parameter_label,
    record_activity,
    recording_figures,
    threshold_of,
)

__all__ = [
    "LayerRecording",
    "Recording",
    "field_grid",
    "field_images",
    "figure_to_array",
    "firing_rate_histogram",
    "mask_intervals",
    "neuron_rates_hz",
    "parameter_label",
    "readout_traces",
    "receptive_field_figure",
    "record_activity",
    "recording_figures",
    "select_sample",
    "spike_raster",
    "threshold_of",
    "time_axis",
    "to_numpy",
    "value_heatmap",
    "voltage_traces",
    "weight_histograms",
]
