"""spikeexp -> NIR file -> spikeexp: the same spikes, voltages within 1e-6, for every exportable
layer kind, feed-forward and recurrent, in both voltage scales and both readout forms."""

from __future__ import annotations

from pathlib import Path

import nir
import numpy as np
import pytest
import torch

import spikeexp as se
from spikeexp.nir import export_nir, from_nir, to_nir
from tests.nir.networks import (
    DT,
    READOUT_MODELS,
    SIZES,
    SPIKING_MODELS,
    assert_active,
    convolutional,
    drive,
    feed_forward,
    neuron_layers,
    recurrent,
    trajectories,
)

VOLTAGE_TOLERANCE = 1e-6


def voltage_atol(v: torch.Tensor, relative: bool = False) -> float:
    """Absolute tolerance on a layer's voltages ``v``: 1e-6, or with ``relative`` 1e-6 times the
    layer's largest voltage (at least 1). Relative where the round trip changes the float32
    arithmetic: batch norm folded into the weights (rounded to float32 once; measured 7.6e-6 on
    voltages up to 34, two float32 steps there) and voltages in units of tau_mem / dt."""
    return VOLTAGE_TOLERANCE * (max(1.0, float(v.abs().max())) if relative else 1.0)


def round_trip(
    network: se.SpikingNetwork,
    tmp_path: Path,
    x: torch.Tensor,
    folded: bool = False,
    **options,
) -> se.SpikingNetwork:
    """Export to a file, import it, and check spikes and voltages against the original."""
    path = tmp_path / "model.nir"
    export_nir(network, path, **options)
    imported = from_nir(path)
    spikes, voltages = trajectories(network, x)
    assert_active({name: spikes[name] for name in network.spiking_layers})
    spikes_back, voltages_back = trajectories(imported, x)
    for name, train in spikes.items():
        assert torch.equal(spikes_back[name], train), f"spikes of {name} differ"
    for name, v in voltages.items():
        if options.get("resistance") == "tau_over_dt":
            # Voltages in units of tau_mem / dt: other float32 arithmetic, relative agreement.
            scale = DT * torch.as_tensor(neuron_layers(network)[name].p.tau_mem_inv)
            atol = voltage_atol(v, relative=True)
            torch.testing.assert_close(voltages_back[name] * scale, v, atol=atol, rtol=0)
        else:
            atol = voltage_atol(v, relative=folded)
            torch.testing.assert_close(voltages_back[name], v, atol=atol, rtol=0)
    return imported


@pytest.mark.parametrize("model", SPIKING_MODELS)
@pytest.mark.parametrize("readout", READOUT_MODELS)
def test_feed_forward_round_trip(model: str, readout: str, tmp_path: Path) -> None:
    network = feed_forward(model, readout)
    imported = round_trip(network, tmp_path, drive((SIZES[0],)))
    expected = []
    for _, module in network.layers.named_children():
        kind = type(getattr(module, "module", module)).__name__
        if kind == "LILinear":
            expected += ["Linear", "LI"]  # the readout's own Linear becomes a layer
        elif kind != "Dropout":
            expected.append(kind)
    kinds = [type(getattr(m, "module", m)).__name__ for _, m in imported.layers.named_children()]
    assert kinds == expected
    assert imported.spiking_layers == ["hidden1", "hidden2"]


@pytest.mark.parametrize("model", SPIKING_MODELS)
@pytest.mark.parametrize("autapses", [False, True])
def test_recurrent_round_trip(model: str, autapses: bool, tmp_path: Path) -> None:
    network = recurrent(model, autapses=autapses)
    imported = round_trip(network, tmp_path, drive((SIZES[0],)))
    for name in ("hidden1", "hidden2"):
        layer = imported.layers.get_submodule(name)
        assert isinstance(layer, se.NeuronRecurrent) and layer.model.name == model
        assert layer.autapses == autapses
        original = network.layers.get_submodule(name)
        assert torch.equal(
            layer.effective_recurrent_weights(), original.effective_recurrent_weights()
        )


@pytest.mark.parametrize("resistance", ["unit", "tau_over_dt"])
@pytest.mark.parametrize("readout", ["cuba_li", "li_li"])
def test_voltage_scale_and_readout_form(resistance: str, readout: str, tmp_path: Path) -> None:
    network = feed_forward("lif", "li")
    round_trip(network, tmp_path, drive((SIZES[0],)), resistance=resistance, readout=readout)
    graph = nir.read(tmp_path / "model.nir")
    kinds = {name: type(node).__name__ for name, node in graph.nodes.items()}
    expected_readout = {"cuba_li": ["CubaLI"], "li_li": ["LI", "LI"]}[readout]
    assert [kinds[n] for n in kinds if n.startswith("readout")] == expected_readout
    assert graph.metadata["resistance"] == resistance


@pytest.mark.parametrize("pool", ["max", "max_padded", "avg", "sum"])
def test_convolutional_round_trip(pool: str, tmp_path: Path) -> None:
    network = convolutional(pool, batch_norm=False)
    imported = round_trip(network, tmp_path, drive((1, 12, 12)), input_shape=(1, 12, 12))
    kind = type(imported.layers.pool1.module)
    expected = {"max": se.FusedMaxPool2d, "max_padded": torch.nn.MaxPool2d}
    assert kind is expected.get(pool, type(network.layers.pool1.module))


def test_batch_norm_folds_into_the_convolution(tmp_path: Path) -> None:
    network = convolutional("max", batch_norm=True)
    x = drive((1, 12, 12))
    imported = round_trip(network, tmp_path, x, folded=True, input_shape=(1, 12, 12))
    assert "bn_conv1" not in dict(imported.layers.named_children())


def test_batch_norm_folds_into_the_linear_layer(tmp_path: Path) -> None:
    network = feed_forward("lif", batch_norm=True)
    round_trip(network, tmp_path, drive((SIZES[0],)), folded=True)
    graph = to_nir(network)
    assert "bn1" not in graph.nodes and isinstance(graph.nodes["fc1"], nir.Affine)


def test_every_parameter_has_the_layer_shape() -> None:
    """NIR infers node types from parameter shapes: no parameter may stay a scalar."""
    graph = to_nir(convolutional("max"), input_shape=(1, 12, 12))
    fields = ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in", "tau")
    shapes = {"spike_conv1": (4, 10, 10), "spike_conv2": (6, 5, 5), "hidden1": (8,)}
    for name, shape in shapes.items():
        node = graph.nodes[name]
        for field in fields:
            if hasattr(node, field):
                assert np.shape(getattr(node, field)) == shape, (name, field)
    assert np.shape(graph.nodes["pool1.threshold"].threshold) == (4, 5, 5)


def test_learnable_surrogate_and_model_survive_through_metadata(tmp_path: Path) -> None:
    network = feed_forward("plif")
    imported = round_trip(network, tmp_path, drive((SIZES[0],)))
    layer = imported.layers.hidden1
    assert isinstance(layer, se.PLIF) and layer.learnable == ("tau_mem_inv",)
    assert "tau_mem_inv_logit" in dict(layer.named_parameters())
    imported.train()
    out, _ = imported(drive((SIZES[0],)))
    out.sum().backward()
    assert layer.tau_mem_inv_logit.grad is not None


def test_network_runs_in_the_exported_dtype_and_backends(tmp_path: Path) -> None:
    """The imported network is an ordinary spikeexp network: any backend, float64, training."""
    network = feed_forward("lif")
    x = drive((SIZES[0],))
    path = tmp_path / "model.nir"
    export_nir(network, path)
    reference = from_nir(path, backend="reference")
    fused = from_nir(path, backend="auto")
    out_reference, _ = reference(x)
    out_fused, _ = fused(x)
    assert torch.equal(out_reference, out_fused)
    assert from_nir(path).double()(x.double())[0].dtype == torch.float64
