"""Small active networks of every exportable layer kind, and how to compare two of them.

The weights are scaled so that every spiking layer fires on some steps and stays silent on
others (:func:`assert_active`): a comparison of silent layers would prove nothing.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch
from torch import nn

import spikeexp as se
from spikeexp.module.neuron import NeuronModule, NeuronRecurrent, NeuronSequence

DT = 1e-3
SIZES = (6, 10, 7, 3)
SPIKING_MODELS = ("lif", "lif_box", "plif", "iaf")
READOUT_MODELS = ("li", "li_box", "li_linear")


def spiking_layer(
    model: str,
    size: int,
    recurrent_input: int | None = None,
    dt: float = DT,
    rest_at_zero: bool = False,
    layer_wide: bool = False,
) -> NeuronModule:
    """A spiking layer with non-default parameters, some of them one value per neuron; rate
    constants scaled by ``DT / dt`` (the same discrete-time dynamics at any ``dt``). With
    ``rest_at_zero`` the leak and reset voltages keep their default 0 (what Norse and snnTorch
    read), with ``layer_wide`` every parameter has one value per layer (what snnTorch reads)."""
    factor = DT / dt
    per_neuron = torch.linspace(80.0, 160.0, size) * factor
    if layer_wide:
        per_neuron = float(per_neuron.mean())
    options: dict[str, Any] = {
        "lif": {
            "tau_syn_inv": 150.0 * factor,
            "tau_mem_inv": per_neuron,
            "v_leak": 0.05,
            "v_th": 0.9,
            "v_reset": -0.05,
        },
        "lif_box": {"tau_mem_inv": per_neuron, "v_leak": 0.1, "v_th": 0.8, "v_reset": 0.02},
        "plif": {"tau_mem_inv": per_neuron * 2, "learnable": ("tau_mem_inv",), "v_th": 0.7},
        "iaf": {"v_th": 1.0 if layer_wide else torch.linspace(0.8, 1.2, size), "v_reset": 0.05},
    }[model]
    if rest_at_zero:
        options = {k: v for k, v in options.items() if k not in ("v_leak", "v_reset")}
    prefix = se.functional.MODELS[model].prefix
    if recurrent_input is None:
        return se.NEURON_MODULES[prefix](dt=dt, **options)
    cls = se.NEURON_MODULES[f"{prefix}Recurrent"]
    return cls(recurrent_input, size, dt=dt, **options)


def readout_layer(model: str, inputs: int, size: int) -> dict[str, nn.Module]:
    """The output layer(s): ``fc_out`` and an LI/LIBox ``readout``, or one LILinear."""
    if model == "li_linear":
        layer = se.LILinear(inputs, size, dt=DT, tau_syn_inv=180.0, v_leak=0.05)
        with torch.no_grad():
            layer.linear.weight.mul_(3.0)
        return {"readout": layer}
    linear = nn.Linear(inputs, size)
    options = {"tau_syn_inv": 180.0, "v_leak": 0.05} if model == "li" else {"v_leak": 0.05}
    readout = se.LI(dt=DT, **options) if model == "li" else se.LIBox(dt=DT, **options)
    return {"fc_out": se.Lift(linear), "readout": readout}


def _linear(inputs: int, outputs: int, gain: float = 3.0, bias: float = 0.3) -> nn.Linear:
    layer = nn.Linear(inputs, outputs)
    with torch.no_grad():
        layer.weight.mul_(gain)
        layer.bias.add_(bias)
    return layer


def feed_forward(
    model: str,
    readout: str | None = "li",
    scale: float | None = 1.5,
    batch_norm: bool = False,
    dt: float = DT,
    rest_at_zero: bool = False,
    layer_wide: bool = False,
) -> se.SpikingNetwork:
    """fc1 [bn1] [scale] hidden1, dropout (eval), fc2, hidden2[, readout]; the last three
    arguments as :func:`spiking_layer`'s."""
    torch.manual_seed(1)
    inputs, first, second, outputs = SIZES
    layers: OrderedDict[str, nn.Module] = OrderedDict(fc1=se.Lift(_linear(inputs, first)))
    if batch_norm:
        norm = nn.BatchNorm1d(first)
        with torch.no_grad():
            norm.running_mean.uniform_(-0.5, 0.5)
            norm.running_var.uniform_(0.5, 2.0)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.2, 0.4)
        layers["bn1"] = se.Lift(norm)
    if scale is not None:
        layers["scale_hidden1"] = se.Lift(se.Scale(scale))
    options = {"dt": dt, "rest_at_zero": rest_at_zero, "layer_wide": layer_wide}
    layers["hidden1"] = spiking_layer(model, first, **options)
    layers["dropout1"] = se.Lift(nn.Dropout(0.3))
    boxed = model in ("lif_box", "plif")  # no synaptic current: needs a stronger drive
    layers["fc2"] = se.Lift(_linear(first, second, gain=4.0 if boxed else 2.0, bias=1.0 * boxed))
    layers["hidden2"] = spiking_layer(model, second, **options)
    if readout is not None:
        layers.update(readout_layer(readout, second, outputs))
    return se.SpikingNetwork(layers, ["hidden1", "hidden2"]).eval()


def recurrent(
    model: str,
    autapses: bool = False,
    scale: float | None = 2.0,
    readout: bool = True,
    dt: float = DT,
    rest_at_zero: bool = False,
    layer_wide: bool = False,
) -> se.SpikingNetwork:
    """[scale] hidden1 (recurrent, input weights), fc2, hidden2 (recurrent)[, LI readout]."""
    torch.manual_seed(2)
    inputs, first, second, outputs = SIZES
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    if scale is not None:
        layers["scale_hidden1"] = se.Lift(se.Scale(scale))
    hidden1 = spiking_layer(model, first, inputs, dt, rest_at_zero, layer_wide)
    hidden2 = spiking_layer(model, second, second, dt, rest_at_zero, layer_wide)
    for layer in (hidden1, hidden2):
        layer.autapses = autapses
        with torch.no_grad():
            layer.input_weights.mul_(2.0)
            layer.recurrent_weights.mul_(0.6)
    layers["hidden1"] = hidden1
    layers["fc2"] = se.Lift(_linear(first, second, gain=2.0))
    layers["hidden2"] = hidden2
    if readout:
        layers.update(readout_layer("li", second, outputs))
    return se.SpikingNetwork(layers, ["hidden1", "hidden2"]).eval()


def convolutional(
    pool: str, batch_norm: bool = True, readout: bool = True, dt: float = DT
) -> se.SpikingNetwork:
    """conv1 [bn] spike_conv1 pool1 conv2 scale spike_conv2 flatten fc1 hidden1[ readout], on
    1x12x12 input, all LIF."""
    torch.manual_seed(3)
    pools = {
        "max": lambda: se.FusedMaxPool2d(2),
        "max_padded": lambda: nn.MaxPool2d(3, stride=2, padding=1),
        "avg": lambda: nn.AvgPool2d(2),
        "sum": lambda: se.SumPool2d(2),
    }
    conv1, conv2 = nn.Conv2d(1, 4, 3), nn.Conv2d(4, 6, 3, padding=1, bias=False)
    with torch.no_grad():
        conv1.weight.mul_(6.0)
        conv1.bias.fill_(1.5)
        conv2.weight.mul_(3.0)
    layers: OrderedDict[str, nn.Module] = OrderedDict(conv1=se.Lift(conv1))
    if batch_norm:
        norm = nn.BatchNorm2d(4)
        with torch.no_grad():
            norm.running_mean.uniform_(-0.2, 0.2)
            norm.running_var.uniform_(0.5, 1.5)
            norm.weight.uniform_(0.8, 1.2)
        layers["bn_conv1"] = se.Lift(norm)
    rates = {"tau_syn_inv": 200.0 * DT / dt, "tau_mem_inv": 100.0 * DT / dt, "dt": dt}
    layers["spike_conv1"] = se.LIF(**rates)
    layers["pool1"] = se.Lift(pools[pool]())
    layers["conv2"] = se.Lift(conv2)
    layers["scale_spike_conv2"] = se.Lift(se.Scale(4.0 if pool == "avg" else 2.0))
    layers["spike_conv2"] = se.LIF(v_th=0.8, **rates)
    layers["flatten"] = se.Lift(nn.Flatten())
    features = 6 * 5 * 5
    layers["fc1"] = se.Lift(_linear(features, 8, gain=2.0))
    layers["hidden1"] = se.LIF(**rates)
    if readout:
        layers.update(readout_layer("li", 8, 3))
    return se.SpikingNetwork(layers, ["spike_conv1", "spike_conv2", "hidden1"]).eval()


def drive(shape: tuple[int, ...], steps: int = 40, batch: int = 3, seed: int = 0) -> torch.Tensor:
    """A random input sequence ``[steps, batch, *shape]`` in [0, 2)."""
    generator = torch.Generator().manual_seed(seed)
    return 2.0 * torch.rand(steps, batch, *shape, generator=generator)


def neuron_layers(network: se.SpikingNetwork) -> dict[str, NeuronModule]:
    return {
        name: module
        for name, module in network.layers.named_children()
        if isinstance(module, (NeuronSequence, NeuronRecurrent))
    }


def trajectories(
    network: se.SpikingNetwork, x: torch.Tensor
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Outputs (spikes, or voltages of readouts) and voltages ``[T, batch, ...]`` of every
    neuron layer, by layer name."""
    layers = neuron_layers(network)
    for module in layers.values():
        module.record_states = True
    try:
        with torch.no_grad():
            _, states = network(x)
    finally:
        for module in layers.values():
            module.record_states = False
    names = [name for name, _ in network.layers.named_children()]
    voltages, outputs = {}, {}
    for name in layers:
        state = states[names.index(name)]
        neuron = state.neuron if isinstance(state, se.RecurrentState) else state
        voltages[name] = neuron.v
        outputs[name] = state.z if isinstance(state, se.RecurrentState) else None
    for name in network.spiking_layers:
        outputs[name] = network.records[name].detach()
    return {k: v for k, v in outputs.items() if v is not None}, voltages


def assert_active(spikes: dict[str, torch.Tensor]) -> None:
    """Every spiking layer fires on between 1 % and 95 % of its neuron-steps."""
    for name, train in spikes.items():
        rate = float(train.float().mean())
        assert 0.01 < rate < 0.95, f"layer {name} fires at rate {rate:.3f}: make it active"
