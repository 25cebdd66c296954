"""Run a trained encoder + network on a few samples and keep everything worth plotting.

:func:`record_activity` switches every neuron layer of a
:class:`~spikeexp.module.network.SpikingNetwork` to ``record_states=True`` for one forward pass (no
gradients), then restores it, and returns a :class:`Recording`: the encoded input, per spiking
layer its spikes, membrane voltages and firing threshold, and the readout sequence.
:func:`recording_figures` turns a recording into the named figures that ``SpikePlots`` logs to
TensorBoard and ``spikeexp-plot`` writes as PNG files.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import nn

from spikeexp.viz.figures import (
    firing_rate_histogram,
    readout_traces,
    spike_raster,
    to_numpy,
    value_heatmap,
    voltage_traces,
    weight_histograms,
)

VOLTAGE_NEURONS = 5


@dataclass
class LayerRecording:
    """One spiking layer over time, ``[T, batch, ...]`` tensors on the CPU.

    Attributes:
        spikes: the layer's output spikes (0/1).
        voltage: membrane voltage, or ``None`` if the neuron state has no field ``v``.
        threshold: firing threshold: a number, a tensor shaped like ``voltage`` (adaptive
            thresholds such as LSNN's), or ``None`` if the model has none.
    """

    spikes: torch.Tensor
    voltage: torch.Tensor | None = None
    threshold: float | torch.Tensor | None = None


@dataclass
class Recording:
    """Everything one forward pass did; tensors are time-first and on the CPU.

    Attributes:
        encoded: the encoder's output ``[T, batch, ...]`` (input spikes or currents).
        layers: spiking layers by name, in network order.
        readout: the network's output sequence ``[T, batch, outputs]``.
        dt: step length (s).
    """

    encoded: torch.Tensor
    readout: torch.Tensor
    dt: float
    layers: dict[str, LayerRecording] = field(default_factory=dict)


def _neuron_state(state: Any) -> Any:
    """The neuron state inside a recorded state (recurrent layers wrap it with their spikes)."""
    return state.neuron if hasattr(state, "neuron") else state


def threshold_of(module: nn.Module, state: Any) -> float | torch.Tensor | None:
    """The firing threshold of ``module``'s neurons along a recorded state trajectory.

    ``v_th`` for LIF-like models (a float, or the per-neuron tensor broadcast over time),
    ``v_peak`` for Izhikevich neurons, and the adaptive threshold of LSNN neurons (``b`` in
    Norse's convention, ``v_th + beta * b`` in Bellec's); a module with a method
    ``firing_threshold(state)`` (e.g. adaptive thresholds kept outside the state) gives its own.
    """
    custom = getattr(module, "firing_threshold", None)
    if custom is not None:
        return custom(state)
    p = module.p
    neuron = _neuron_state(state)
    if hasattr(neuron, "b") and hasattr(p, "beta"):
        if getattr(p, "adaptation", "norse") == "norse":
            return neuron.b.detach().cpu()
        return (p.v_th + p.beta * neuron.b).detach().cpu()
    for name in ("v_th", "v_peak"):
        if hasattr(p, name):
            value = torch.as_tensor(getattr(p, name)).detach().cpu()
            if value.numel() == 1:
                return float(value)
            return torch.broadcast_to(value, neuron.v.shape).clone()
    return None


@torch.no_grad()
def record_activity(encoder: nn.Module, network: nn.Module, inputs: torch.Tensor) -> Recording:
    """Run ``encoder`` then ``network`` on ``inputs`` ``[batch, ...]`` with states recorded.

    The modules' ``record_states`` flags and an encoder's random generator are restored
    afterwards, so a call during training changes neither the training run nor its random stream.
    """
    generator = getattr(encoder, "generator", None)
    generator_state = generator.get_state() if isinstance(generator, torch.Generator) else None
    layers = {name: network.layers.get_submodule(name) for name in network.spiking_layers}
    flags = {name: module.record_states for name, module in layers.items()}
    states: dict[str, Any] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _args, output, name=name: states.__setitem__(name, output[1])
        )
        for name, module in layers.items()
    ]
    try:
        for module in layers.values():
            module.record_states = True
        encoded = encoder(inputs)
        readout, _ = network(encoded)
        records = dict(network.records)
    finally:
        for hook in hooks:
            hook.remove()
        for name, module in layers.items():
            module.record_states = flags[name]
        if generator_state is not None:
            generator.set_state(generator_state)
    recording = Recording(
        encoded=encoded.detach().cpu(), readout=readout.detach().cpu(), dt=float(network_dt(layers))
    )
    for name, module in layers.items():
        neuron = _neuron_state(states[name])
        voltage = getattr(neuron, "v", None)
        recording.layers[name] = LayerRecording(
            spikes=records[name].detach().cpu(),
            voltage=None if voltage is None else voltage.detach().cpu(),
            threshold=threshold_of(module, states[name]),
        )
    return recording


def network_dt(layers: Mapping[str, nn.Module]) -> float:
    """The step length (s) shared by the neuron layers (1 ms if there are none)."""
    steps = {float(module.dt) for module in layers.values()}
    if len(steps) > 1:
        raise ValueError(f"neuron layers use different dt values {sorted(steps)}; expected one")
    return steps.pop() if steps else 1e-3


def parameter_label(name: str) -> str:
    """A parameter's name without wrapper levels, for weight plots and histogram tags:
    ``network.layers.fc1.module.weight`` (Lightning module) or ``layers.fc1.module.weight``
    (network) -> ``fc1.weight``."""
    return name.removeprefix("network.").removeprefix("layers.").replace(".module.", ".")


def _most_active(spikes: torch.Tensor, sample: int, count: int) -> list[int]:
    """Indices of the ``count`` neurons with most spikes in ``sample`` (ascending index)."""
    per_neuron = spikes[:, sample].reshape(spikes.shape[0], -1).sum(dim=0)
    count = min(count, per_neuron.numel())
    return sorted(torch.argsort(per_neuron, descending=True, stable=True)[:count].tolist())


def _is_binary(values: torch.Tensor) -> bool:
    return bool(((values == 0) | (values == 1)).all())


def recording_figures(
    recording: Recording,
    sample: int = 0,
    periods: Mapping[str, Any] | None = None,
    weights: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Figure]:
    """Named figures of one recorded sample.

    Names (also the TensorBoard image tags under ``activity/``): ``input`` (raster of input spikes,
    or a heatmap of analog input currents), ``raster/<layer>``, ``voltage/<layer>`` (the most
    active neurons, threshold dashed), ``rates/<layer>`` (per-neuron rate histogram over the
    recorded batch), ``readout`` (with ``periods`` shaded), and ``weights`` if given.
    """
    dt = recording.dt
    figures: dict[str, Figure] = {}
    encoded = recording.encoded
    if _is_binary(encoded):
        figures["input"] = spike_raster(encoded, dt=dt, sample=sample, title="encoded input")
    else:
        figures["input"] = value_heatmap(encoded, dt=dt, sample=sample, title="encoded input")
    for name, layer in recording.layers.items():
        figures[f"raster/{name}"] = spike_raster(layer.spikes, dt=dt, sample=sample, title=name)
        if layer.voltage is not None:
            figures[f"voltage/{name}"] = voltage_traces(
                layer.voltage,
                threshold=layer.threshold,
                dt=dt,
                neurons=_most_active(layer.spikes, sample, VOLTAGE_NEURONS),
                sample=sample,
                spikes=layer.spikes,
                title=f"{name}: membrane voltage (dashed: threshold)",
            )
        figures[f"rates/{name}"] = firing_rate_histogram(
            layer.spikes, dt, title=f"{name}: firing rates"
        )
    figures["readout"] = readout_traces(recording.readout, dt=dt, sample=sample, periods=periods)
    if weights:
        figures["weights"] = weight_histograms(
            {name: to_numpy(tensor) for name, tensor in weights.items()}
        )
    return figures
