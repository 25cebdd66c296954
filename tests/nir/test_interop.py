"""Exported NIR files read by Norse 1.1 and snnTorch 1.0 (the ``nir-interop`` extra): 100 steps
of spike trains compared with spikeexp's.

Identical: Norse on feed-forward and recurrent graphs of ``CubaLIF``, ``LIF``, ``IF`` and
``SumPool2d`` at any dt (leak and reset voltages 0, no input scale on ``LIF``/``IF``);
snnTorch on feed-forward graphs of ``CubaLIF`` and ``LIF`` at its fixed dt = 0.1 ms with
``resistance="tau_over_dt"`` and one value per layer, with ``AvgPool2d`` or ``SumPool2d``.
Where an importer is wrong, a test pins down what it does (docs/guide/nir.md, "Other
simulators"), so that a fixed peer shows up here.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nir
import pytest
import torch

import spikeexp as se
from spikeexp.nir import export_nir, to_nir
from tests.nir.networks import (
    SIZES,
    assert_active,
    convolutional,
    drive,
    feed_forward,
    recurrent,
    spiking_layer,
    trajectories,
)

norse = pytest.importorskip("norse.torch", reason="needs Norse (pip install spikeexp[nir-interop])")
snntorch_import = pytest.importorskip(
    "snntorch.import_nir", reason="needs snnTorch (pip install spikeexp[nir-interop])"
)

pytestmark = pytest.mark.nir_interop
STEPS = 100
SNNTORCH_DT = 1e-4  # hard-coded in snnTorch's importer


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    """The peers print and log a warning per node; keep the test output readable."""
    logging.disable(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    logging.disable(logging.NOTSET)


def _run(module: torch.nn.Module, x: torch.Tensor, output: Callable[[Any], torch.Tensor]):
    """Step a peer's module through ``x`` (``[T, ...]``), passing its state along."""
    state, outputs = None, []
    for step in x:
        result = module(step) if state is None else module(step, state)
        state = result[1] if isinstance(result, tuple) else None
        outputs.append(output(result))
    return torch.stack(outputs)


def _spikes(network: se.SpikingNetwork, x: torch.Tensor) -> torch.Tensor:
    spikes, _ = trajectories(network, x)
    assert_active({name: spikes[name] for name in network.spiking_layers})
    return spikes[network.spiking_layers[-1]]


def _norse(path: Path, x: torch.Tensor) -> torch.Tensor:
    module = norse.from_nir(nir.read(path), dt=float(nir.read(path).metadata["dt"]))
    with torch.no_grad():
        return _run(module, x, lambda result: result[0])


def _snntorch(path: Path, x: torch.Tensor) -> torch.Tensor:
    with contextlib.redirect_stdout(io.StringIO()):
        module = snntorch_import.import_from_nir(nir.read(path))
        with torch.no_grad():
            return _run(module, x, lambda result: result[0])


@pytest.mark.parametrize("model", ["lif", "lif_box", "plif", "iaf"])
def test_norse_reads_feed_forward_graphs_exactly(model: str, tmp_path: Path) -> None:
    network = feed_forward(model, readout=None, scale=None, rest_at_zero=True)
    x = drive((SIZES[0],), steps=STEPS)
    export_nir(network, tmp_path / "model.nir")
    assert torch.equal(_norse(tmp_path / "model.nir", x), _spikes(network, x))


@pytest.mark.parametrize("model", ["lif", "lif_box", "plif", "iaf"])
def test_norse_reads_recurrent_graphs_exactly(model: str, tmp_path: Path) -> None:
    network = recurrent(model, readout=False, rest_at_zero=True)
    x = drive((SIZES[0],), steps=STEPS)
    export_nir(network, tmp_path / "model.nir")
    assert torch.equal(_norse(tmp_path / "model.nir", x), _spikes(network, x))


def test_norse_reads_sum_pooling_convnets_exactly(tmp_path: Path) -> None:
    """One sample at a time, unbatched: Norse maps NIR's Flatten (start_dim 0, counted without
    the batch) to torch's Flatten(0), which would fold a batch dimension into the features."""
    network = convolutional("sum", readout=False)
    x = drive((1, 12, 12), steps=STEPS, batch=1)
    export_nir(network, tmp_path / "model.nir", input_shape=(1, 12, 12))
    assert torch.equal(_norse(tmp_path / "model.nir", x[:, 0]), _spikes(network, x)[:, 0])


@pytest.mark.parametrize("model", ["lif", "lif_box", "plif"])
def test_snntorch_reads_feed_forward_graphs_exactly_at_its_dt(model: str, tmp_path: Path) -> None:
    network = feed_forward(model, readout=None, dt=SNNTORCH_DT, rest_at_zero=True, layer_wide=True)
    x = drive((SIZES[0],), steps=STEPS)
    export_nir(network, tmp_path / "model.nir", resistance="tau_over_dt")
    assert torch.equal(_snntorch(tmp_path / "model.nir", x), _spikes(network, x))


@pytest.mark.parametrize("pool", ["avg", "sum"])
def test_snntorch_reads_convnets_exactly_at_its_dt(pool: str, tmp_path: Path) -> None:
    network = convolutional(pool, readout=False, dt=SNNTORCH_DT)
    x = drive((1, 12, 12), steps=STEPS, batch=1)
    path = tmp_path / "model.nir"
    export_nir(network, path, input_shape=(1, 12, 12), resistance="tau_over_dt")
    assert torch.equal(_snntorch(path, x[:, 0]), _spikes(network, x)[:, 0])


def test_snntorch_steps_with_its_own_dt(tmp_path: Path) -> None:
    """At dt = 1 ms the graph's time constants are read with snnTorch's fixed 0.1 ms."""
    network = feed_forward("lif_box", readout=None, rest_at_zero=True, layer_wide=True)
    x = drive((SIZES[0],), steps=STEPS)
    export_nir(network, tmp_path / "model.nir")
    assert not torch.equal(_snntorch(tmp_path / "model.nir", x), _spikes(network, x))


def test_snntorch_refuses_cuba_lif_with_unit_resistance(tmp_path: Path) -> None:
    network = feed_forward("lif", None, dt=SNNTORCH_DT, rest_at_zero=True, layer_wide=True)
    export_nir(network, tmp_path / "model.nir")
    with pytest.raises(AssertionError, match="r not supported in CubaLIF"):
        _snntorch(tmp_path / "model.nir", drive((SIZES[0],), steps=2))


def test_snntorch_refuses_integrate_and_fire(tmp_path: Path) -> None:
    """IF's R = 1/dt is refused; with R = 1 snnTorch would build a leaky neuron (beta 0.9)."""
    network = feed_forward("iaf", None, dt=SNNTORCH_DT, rest_at_zero=True, layer_wide=True)
    export_nir(network, tmp_path / "model.nir")
    with pytest.raises(AssertionError, match="r != 1 not supported"):
        _snntorch(tmp_path / "model.nir", drive((SIZES[0],), steps=2))


def _one_recurrent_layer() -> se.SpikingNetwork:
    torch.manual_seed(4)
    layer = spiking_layer("lif_box", 10, SIZES[0], SNNTORCH_DT, rest_at_zero=True, layer_wide=True)
    with torch.no_grad():
        layer.input_weights.mul_(2.0)
        layer.recurrent_weights.mul_(0.6)
    return se.SpikingNetwork({"hidden1": layer}, ["hidden1"]).eval()


def test_snntorch_miswires_recurrent_graphs() -> None:
    """snnTorch wraps each neuron/back-edge pair in a subgraph whose input feeds the recurrent
    weights instead of the neuron: the layer receives W_rec (W_in x + z_prev)."""
    network = _one_recurrent_layer()
    x = drive((SIZES[0],), steps=STEPS)
    graph = to_nir(network, resistance="tau_over_dt")  # in memory: nodes in signal order
    with contextlib.redirect_stdout(io.StringIO()):
        module = snntorch_import.import_from_nir(graph)
        with torch.no_grad():
            spikes = _run(module, x, lambda result: result[0])
    assert not torch.equal(spikes, _spikes(network, x))
    subgraph = graph.nodes["hidden1"]  # rewritten in place by the import
    assert ("hidden1.input", "hidden1.recurrent_weights") in subgraph.edges
    assert ("hidden1.input", "hidden1") not in subgraph.edges


def test_snntorch_cannot_build_recurrent_graphs_read_from_files(tmp_path: Path) -> None:
    """Read from a file, nodes come in name order: nirtorch then meets the wrapped subgraph
    before its input, defers it, and converts it a second time, which fails."""
    export_nir(_one_recurrent_layer(), tmp_path / "model.nir", resistance="tau_over_dt")
    with pytest.raises(AttributeError, match="'GraphModule' object has no attribute 'items'"):
        _snntorch(tmp_path / "model.nir", drive((SIZES[0],), steps=2))


@pytest.mark.parametrize("model", ["lif", "lif_box", "iaf"])
def test_norse_resets_to_zero_whatever_v_reset(model: str, tmp_path: Path) -> None:
    """Norse's importer drops v_reset (and uses CubaLIF's v_leak as the synaptic current's
    rest): with the leak and reset voltages of these layers, the spikes differ."""
    network = feed_forward(model, readout=None, scale=None)
    x = drive((SIZES[0],), steps=STEPS)
    export_nir(network, tmp_path / "model.nir")
    assert not torch.equal(_norse(tmp_path / "model.nir", x), _spikes(network, x))


@pytest.mark.parametrize("model", ["lif_box", "iaf"])
def test_norse_ignores_the_resistance_of_lif_and_if(model: str, tmp_path: Path) -> None:
    """An input scale in front of a LIF or IF layer is in the node's R, which Norse drops."""
    network = feed_forward(model, readout=None, scale=1.5, rest_at_zero=True)
    x = drive((SIZES[0],), steps=STEPS)
    export_nir(network, tmp_path / "model.nir")
    assert not torch.equal(_norse(tmp_path / "model.nir", x), _spikes(network, x))


def test_norse_drops_the_nodes_it_cannot_read(tmp_path: Path) -> None:
    """Norse 1.1 has no CubaLI, LI, Scale, Threshold or AvgPool2d: such a node maps to nothing,
    is skipped, and the graph returns the output of the node before it (here the readout's input
    currents instead of its voltages)."""
    network = feed_forward("lif", rest_at_zero=True)
    x = drive((SIZES[0],), steps=STEPS)
    export_nir(network, tmp_path / "model.nir")
    out = _norse(tmp_path / "model.nir", x)
    _, voltages = trajectories(network, x)
    currents = network.layers.fc_out(network.records["hidden2"])
    torch.testing.assert_close(out, currents, atol=1e-6, rtol=0)
    assert not torch.allclose(out, voltages["readout"], atol=1e-3)


def test_norse_own_lif_export_writes_time_constants_dt_times_too_small(tmp_path: Path) -> None:
    """Norse's to_nir writes tau = dt / tau_inv (seconds squared) and w_in = 1 for its LIFCell;
    reading that file back it runs dt / tau = 100 and 200 per step and the spikes change."""
    torch.manual_seed(0)
    model = norse.SequentialState(torch.nn.Linear(4, 6), norse.LIFCell())
    with torch.no_grad():
        model[0].weight.mul_(3.0)
        model[0].bias.fill_(1.0)
    x = 10 * torch.rand(STEPS, 2, 4)
    with torch.no_grad():
        reference, _ = model(x)
    graph = norse.to_nir(model, torch.zeros(1, 4))
    cuba = next(node for node in graph.nodes.values() if isinstance(node, nir.CubaLIF))
    assert cuba.tau_mem.flatten()[0] == pytest.approx(1e-3 / 100.0)  # should be 1 / 100 s
    assert cuba.tau_syn.flatten()[0] == pytest.approx(1e-3 / 200.0)  # should be 1 / 200 s
    assert cuba.w_in.flatten()[0] == 1.0  # should be tau_syn / dt = 5
    back = _run(norse.from_nir(graph), x, lambda result: result[0])
    assert reference.sum() > 0 and not torch.equal(back, reference)
