"""spikeexp.viz: headless figures with the right data, and recording a network's activity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from spikeexp import viz
from spikeexp.engine import network_from_config
from spikeexp.module import ConstantCurrentEncoder, PoissonEncoder


def _spikes_at(
    coordinates: list[tuple[int, int]], steps: int = 10, neurons: int = 6
) -> torch.Tensor:
    spikes = torch.zeros(steps, neurons)
    for step, neuron in coordinates:
        spikes[step, neuron] = 1.0
    return spikes


def test_raster_dots_sit_at_the_spike_times_in_ms_and_neuron_indices() -> None:
    coordinates = [(0, 1), (3, 4), (3, 0), (9, 5)]
    figure = viz.spike_raster(_spikes_at(coordinates), dt=2e-3)
    ax = figure.axes[0]
    dots = np.array(sorted(map(tuple, ax.collections[0].get_offsets().tolist())))
    expected = sorted((step * 2.0, float(neuron)) for step, neuron in coordinates)
    np.testing.assert_allclose(dots, expected)
    assert ax.get_xlabel() == "time (ms)"
    assert ax.get_ylabel() == "neuron"
    assert "4 spikes" in ax.get_title()
    assert ax.get_ylim() == (-0.5, 5.5)


def test_raster_of_a_batch_shows_the_chosen_sample_and_steps_without_dt() -> None:
    batch = torch.zeros(5, 3, 2, 2)  # [T, batch, C, W]: features are flattened to 4 neurons
    batch[2, 1, 1, 0] = 1.0
    batch[4, 0, 0, 0] = 1.0
    figure = viz.spike_raster(batch, sample=1)
    ax = figure.axes[0]
    assert ax.collections[0].get_offsets().tolist() == [[2.0, 2.0]]
    assert ax.get_xlabel() == "time step"
    with pytest.raises(ValueError, match=r"sample must be in \[0, 2\]"):
        viz.spike_raster(batch, sample=3)


def test_voltage_traces_draw_chosen_neurons_threshold_and_spike_marks() -> None:
    voltages = torch.linspace(0, 1, 20).reshape(20, 1).repeat(1, 4)
    spikes = torch.zeros(20, 4)
    spikes[[5, 9], 2] = 1.0
    figure = viz.voltage_traces(voltages, threshold=0.8, dt=1e-3, neurons=[0, 2], spikes=spikes)
    ax = figure.axes[0]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels.count("neuron 0") == 1 and labels.count("neuron 2") == 1
    threshold = [line for line in ax.get_lines() if line.get_label() == "threshold"]
    assert len(threshold) == 1 and set(threshold[0].get_ydata()) == {0.8}
    marks = [line for line in ax.get_lines() if line.get_marker() == "o" and len(line.get_xdata())]
    assert len(marks) == 1
    np.testing.assert_allclose(marks[0].get_xdata(), [5.0, 9.0])
    np.testing.assert_allclose(marks[0].get_ydata(), [0.8, 0.8])
    with pytest.raises(ValueError, match=r"neurons must be indices in \[0, 3\] \(got 7\)"):
        viz.voltage_traces(voltages, neurons=[7])


def test_voltage_traces_draw_an_adaptive_threshold_per_neuron() -> None:
    voltages = torch.zeros(8, 3)
    threshold = torch.arange(8.0).reshape(8, 1).repeat(1, 3)
    figure = viz.voltage_traces(voltages, threshold=threshold, neurons=[1])
    dashed = [line for line in figure.axes[0].get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 1
    assert list(dashed[0].get_ydata()) == list(range(8))
    with pytest.raises(ValueError, match="threshold must be a number or shaped like voltages"):
        viz.voltage_traces(voltages, threshold=torch.zeros(8, 2))


def test_mask_intervals_and_readout_shading() -> None:
    mask = torch.tensor([0, 1, 1, 0, 0, 1, 0, 1], dtype=torch.bool)
    assert viz.mask_intervals(mask) == [(1, 3), (5, 6), (7, 8)]
    recall = torch.zeros(8, dtype=torch.bool)
    recall[6] = True
    readout = torch.randn(8, 2, 3)
    figure = viz.readout_traces(
        readout,
        dt=1e-3,
        sample=1,
        periods={"store": mask, "recall": recall},
        labels=["a", "b", "c"],
    )
    ax = figure.axes[0]
    assert len(ax.patches) == 4  # three store runs, one recall run
    np.testing.assert_allclose(ax.get_lines()[1].get_ydata(), readout[:, 1, 1].numpy(), rtol=1e-6)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == ["store", "recall", "a", "b", "c"]
    with pytest.raises(ValueError, match="periods\\['store'\\] must have 8 steps"):
        viz.readout_traces(readout, periods={"store": mask[:5]})


def test_firing_rates_in_hz_and_their_histogram() -> None:
    spikes = torch.zeros(10, 2, 3)
    spikes[:, :, 0] = 1.0  # every step: 1 / dt
    spikes[:5, 0, 1] = 1.0  # 5 of 20 steps
    rates = viz.neuron_rates_hz(spikes, dt=1e-3)
    np.testing.assert_allclose(rates, [1000.0, 250.0, 0.0])
    figure = viz.firing_rate_histogram(spikes, dt=1e-3, bins=10)
    ax = figure.axes[0]
    assert sum(patch.get_height() for patch in ax.patches) == 3
    assert "1/3 silent" in ax.get_title()
    assert ax.get_xlabel() == "firing rate (Hz)"


def test_weight_histograms_one_panel_per_tensor() -> None:
    figure = viz.weight_histograms({"fc1.weight": torch.randn(4, 5), "fc2.weight": torch.ones(3)})
    assert len(figure.axes) == 2
    assert figure.axes[1].get_title().startswith("fc2.weight\nmean 1")
    with pytest.raises(ValueError, match="at least one"):
        viz.weight_histograms({})


def test_figure_to_array_renders_rgb_pixels_headless() -> None:
    figure = viz.spike_raster(_spikes_at([(2, 2)]), dt=1e-3)
    assert isinstance(figure, Figure)
    image = viz.figure_to_array(figure)
    assert image.shape == (360, 640, 3) and image.dtype == np.uint8
    assert image.min() < 50 and image.max() == 255  # black ink on white


@pytest.mark.parametrize(
    ("neuron", "threshold_type"),
    [({"model": "lif", "v_th": 0.7}, float), ({"model": "lsnn"}, torch.Tensor)],
)
def test_record_activity_matches_a_plain_forward_and_restores_the_modules(
    neuron: dict, threshold_type: type
) -> None:
    network = network_from_config(
        {"type": "mlp", "hidden": [12, 6]}, neuron, {"model": "li"}, (9,), 3
    )
    encoder = PoissonEncoder(seq_length=15, f_max=300.0, seed=4)
    inputs = torch.rand(4, 9)
    generator_state = encoder.generator.get_state()
    recording = viz.record_activity(encoder, network, inputs)
    assert torch.equal(encoder.generator.get_state(), generator_state)
    assert not network.layers.hidden1.record_states
    readout, _ = network(encoder(inputs))  # the same random draw as the recorded pass
    torch.testing.assert_close(recording.readout, readout)
    assert list(recording.layers) == ["hidden1", "hidden2"]
    for name, layer in recording.layers.items():
        assert torch.equal(layer.spikes, network.records[name])
        assert layer.voltage.shape == layer.spikes.shape
        assert isinstance(layer.threshold, threshold_type)
    if threshold_type is float:
        assert recording.layers["hidden1"].threshold == pytest.approx(0.7)
        assert recording.layers["hidden1"].voltage.max() <= 0.7 + 1e-6  # reset after a spike
    assert recording.dt == 1e-3


def test_recording_figures_names_for_recurrent_layers_and_analog_input() -> None:
    network = network_from_config(
        {"type": "recurrent", "hidden": [5]}, {"model": "lif"}, {"model": "li"}, (4,), 2
    )
    recording = viz.record_activity(ConstantCurrentEncoder(seq_length=6), network, torch.rand(3, 4))
    weights = {viz.parameter_label(n): p for n, p in network.named_parameters() if p.dim() >= 2}
    figures = viz.recording_figures(recording, sample=2, weights=weights)
    assert list(figures) == [
        "input",
        "raster/hidden1",
        "voltage/hidden1",
        "rates/hidden1",
        "readout",
        "weights",
    ]
    assert figures["input"].axes[0].images  # analog input -> heatmap
    assert list(weights) == [
        "hidden1.input_weights",
        "hidden1.recurrent_weights",
        "fc_out.weight",
    ]
