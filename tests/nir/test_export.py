"""What NIR cannot express is refused with one line naming the layer and the reason, and no file
is written; the graph's metadata records the conventions; dt and the input shape are checked."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import nir
import pytest
import torch
from torch import nn

import spikeexp as se
from spikeexp.nir import NIRExportError, export_nir, to_nir, write_nir
from tests.nir.networks import DT, SIZES, feed_forward, recurrent


def _network(*layers: tuple[str, nn.Module]) -> se.SpikingNetwork:
    spiking = [name for name, m in layers if getattr(getattr(m, "model", None), "spiking", False)]
    return se.SpikingNetwork(OrderedDict(layers), spiking)


def _lift(module: nn.Module) -> se.Lift:
    return se.Lift(module)


UNEXPRESSIBLE = {
    "lsnn": (
        _network(("fc1", _lift(nn.Linear(4, 5))), ("hidden1", se.LSNN())),
        "layer 'hidden1' (LSNN): NIR has no adaptive threshold",
    ),
    "lsnn recurrent": (
        _network(("hidden1", se.LSNNRecurrent(4, 5))),
        "layer 'hidden1' (LSNNRecurrent): NIR has no adaptive threshold",
    ),
    "izhikevich": (
        _network(("fc1", _lift(nn.Linear(4, 5))), ("hidden1", se.Izhikevich(dt=DT))),
        "layer 'hidden1' (Izhikevich): NIR has no Izhikevich neuron",
    ),
    "adex": (
        _network(("fc1", _lift(nn.Linear(4, 5))), ("hidden1", se.LIFAdEx())),
        "layer 'hidden1' (LIFAdEx): NIR has no AdEx neuron",
    ),
    "subtractive reset": (
        _network(("fc1", _lift(nn.Linear(4, 5))), ("hidden1", se.LIFBox(reset="subtract"))),
        "layer 'hidden1' (LIFBox): subtractive reset (reset='subtract') is not expressible",
    ),
    "max pooling of currents": (
        _network(
            ("conv1", _lift(nn.Conv2d(1, 2, 3))),
            ("pool1", _lift(nn.MaxPool2d(2))),
            ("spike1", se.LIF()),
        ),
        "layer 'pool1' (MaxPool2d): NIR has no max pooling; it is exported only where it pools "
        "spikes",
    ),
    "dropout in training mode": (
        _network(("fc1", _lift(nn.Linear(4, 5))), ("dropout1", _lift(nn.Dropout(0.2).train()))),
        "layer 'dropout1' (Dropout): dropout in training mode is random; call network.eval()",
    ),
    "batch norm in training mode": (
        _network(("fc1", _lift(nn.Linear(4, 5))), ("bn1", _lift(nn.BatchNorm1d(5).train()))),
        "layer 'bn1' (BatchNorm1d): batch norm in training mode normalises with each batch's",
    ),
    "batch norm after a neuron": (
        _network(
            ("fc1", _lift(nn.Linear(4, 5))),
            ("hidden1", se.LIF()),
            ("bn1", _lift(nn.BatchNorm1d(5).eval())),
        ),
        "layer 'bn1' (BatchNorm1d): batch norm is folded into a Linear or Conv2d layer right "
        "before it; there is none here",
    ),
    "relu": (
        _network(("fc1", _lift(nn.Linear(4, 5))), ("act", _lift(nn.ReLU()))),
        "layer 'act' (ReLU): NIR has no node for ReLU",
    ),
    "max pooling with ceil mode": (
        _network(
            ("conv1", _lift(nn.Conv2d(1, 2, 3))),
            ("spike1", se.LIF()),
            ("pool1", _lift(nn.MaxPool2d(2, ceil_mode=True))),
        ),
        "layer 'pool1' (MaxPool2d): max pooling with ceil_mode",
    ),
    "reflect padding": (
        _network(("conv1", _lift(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")))),
        "layer 'conv1' (Conv2d): padding_mode='reflect' is not expressible",
    ),
}


@pytest.mark.parametrize("case", UNEXPRESSIBLE)
def test_unexpressible_layers_fail_with_one_line_and_write_nothing(
    case: str, tmp_path: Path
) -> None:
    network, message = UNEXPRESSIBLE[case]
    path = tmp_path / "model.nir"
    shape = (1, 8, 8) if "conv1" in dict(network.layers.named_children()) else (4,)
    with pytest.raises(NIRExportError) as error:
        export_nir(network, path, dt=DT, input_shape=shape)
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_export_keeps_the_previous_file(tmp_path: Path) -> None:
    path = tmp_path / "model.nir"
    export_nir(feed_forward("lif"), path)
    before = path.read_bytes()
    network, _ = UNEXPRESSIBLE["lsnn"]
    with pytest.raises(NIRExportError):
        export_nir(network, path)
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


def test_a_write_that_fails_halfway_leaves_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = to_nir(feed_forward("lif"))
    original = nir.write

    def crash(filename, graph_, **kwargs):
        original(filename, graph_, **kwargs)
        raise OSError("disk full")

    monkeypatch.setattr(nir, "write", crash)
    with pytest.raises(OSError, match="disk full"):
        write_nir(graph, tmp_path / "model.nir")
    assert list(tmp_path.iterdir()) == []


def test_metadata_records_dt_and_the_conventions(tmp_path: Path) -> None:
    path = tmp_path / "model.nir"
    export_nir(feed_forward("lif"), path, metadata={"encoder": "ConstantCurrentEncoder"})
    metadata = nir.read(path).metadata
    assert metadata["dt"] == DT and metadata["time_unit"] == "s"
    assert metadata["spike"].startswith("a spike is the value 1 during the step")
    assert "then voltage from the new current" in metadata["integration"]
    assert "previous step" in metadata["recurrence"]
    assert metadata["resistance"] == "unit" and metadata["encoder"] == "ConstantCurrentEncoder"
    hidden = nir.read(path).nodes["hidden1"].metadata["spikeexp"]
    assert hidden["model"] == "lif" and hidden["method"] == "super" and hidden["alpha"] == 100.0


def test_recurrent_layer_is_a_cycle_through_a_linear_back_edge() -> None:
    graph = to_nir(recurrent("lif"))
    assert ("hidden1", "hidden1.recurrent_weights") in graph.edges
    assert ("hidden1.recurrent_weights", "hidden1") in graph.edges
    assert isinstance(graph.nodes["hidden1.recurrent_weights"], nir.Linear)
    # The input scale is folded into the input weights, not into the neuron's gain.
    network = recurrent("lif")
    weights = network.layers.hidden1.input_weights.detach() * 2.0
    assert torch.allclose(torch.as_tensor(graph.nodes["hidden1.input_weights"].weight), weights)
    assert graph.nodes["hidden1"].w_in == pytest.approx(1.0 / (DT * 150.0))


def test_input_scale_is_folded_into_the_neuron_gain() -> None:
    graph = to_nir(feed_forward("lif", scale=1.5))
    assert "scale_hidden1" not in graph.nodes
    assert graph.nodes["hidden1"].w_in == pytest.approx(1.5 / (DT * 150.0))
    box = to_nir(feed_forward("lif_box", scale=1.5))
    assert box.nodes["hidden1"].r == pytest.approx(1.5)
    iaf = to_nir(feed_forward("iaf", scale=1.5))
    assert iaf.nodes["hidden1"].r == pytest.approx(1.5 / DT)


def test_a_scale_before_other_layers_is_a_scale_node() -> None:
    network = _network(("scale", _lift(se.Scale(3.0))), ("fc1", _lift(nn.Linear(4, 5))))
    graph = to_nir(network, dt=DT)
    assert isinstance(graph.nodes["scale"], nir.Scale)
    assert graph.nodes["scale"].scale.tolist() == [3.0] * 4


def test_dt_must_match_the_network() -> None:
    with pytest.raises(NIRExportError, match=r"dt=0.002 differs from the step dt=0.001"):
        to_nir(feed_forward("lif"), dt=2e-3)
    mixed = _network(("fc1", _lift(nn.Linear(4, 5))), ("a", se.LIF()), ("b", se.LIF(dt=2e-3)))
    with pytest.raises(NIRExportError, match=r"layer 'b' runs with dt=0\.002 but layer 'a'"):
        to_nir(mixed)
    with pytest.raises(NIRExportError, match="give dt=<seconds>"):
        to_nir(_network(("fc1", _lift(nn.Linear(4, 5)))))


def test_input_shape_is_read_or_required() -> None:
    assert to_nir(feed_forward("lif")).nodes["input"].input_type["input"].tolist() == [SIZES[0]]
    conv = _network(("conv1", _lift(nn.Conv2d(1, 2, 3))), ("spike1", se.LIF()))
    with pytest.raises(NIRExportError, match=r"give input_shape=\(...\).*layer 'conv1'"):
        to_nir(conv)
    with pytest.raises(NIRExportError, match=r"layer 'conv1' \(Conv2d\) does not fit its input"):
        to_nir(conv, input_shape=(3, 8, 8))


def test_bad_options_are_refused() -> None:
    with pytest.raises(NIRExportError, match="resistance must be one of unit, tau_over_dt"):
        to_nir(feed_forward("lif"), resistance="ohm")
    with pytest.raises(NIRExportError, match="readout must be one of cuba_li, li_li"):
        to_nir(feed_forward("lif"), readout="li")
    with pytest.raises(NIRExportError, match="converts a SpikingNetwork or SequentialState"):
        to_nir(nn.Linear(2, 2))


def test_export_does_not_change_the_network() -> None:
    network = feed_forward("plif", batch_norm=True)
    before = {name: value.clone() for name, value in network.state_dict().items()}
    to_nir(network)
    after = network.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert not network.training
