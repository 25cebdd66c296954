"""Graphs spikeexp did not write: every supported node with arbitrary field values (per-neuron
w_in, r, leak and reset voltages) is imported so that the network reproduces the graph's own
Euler simulation; unknown nodes and unsupported values are one-line errors naming the node."""

from __future__ import annotations

import itertools
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

import spikeexp as se
from spikeexp.nir import NIRImportError, from_nir
from tests.nir.networks import drive, trajectories
from tests.nir.simulator import EulerSimulator

DT = 1e-3
RNG = np.random.default_rng(0)


def _uniform(low: float, high: float, *shape: int) -> np.ndarray:
    return RNG.uniform(low, high, size=shape)


def _graph(
    nodes: dict[str, nir.NIRNode],
    edges: list[tuple[str, str]] | None = None,
    type_check: bool = True,
) -> nir.NIRGraph:
    """A chain ``input -> nodes... -> output`` unless ``edges`` are given; ``dt`` in the
    metadata."""
    first = next(iter(nodes.values()))
    shape = first.input_type["input"]
    last = list(nodes.values())[-1]
    every = {"input": nir.Input(input_type={"input": np.array(shape)}), **nodes}
    every["output"] = nir.Output(output_type={"output": np.array(last.output_type["output"])})
    if edges is None:
        names = list(every)
        edges = list(itertools.pairwise(names))
    return nir.NIRGraph(nodes=every, edges=edges, metadata={"dt": DT}, type_check=type_check)


def _cuba_lif(n: int, **fields) -> nir.CubaLIF:
    values = {
        "tau_syn": _uniform(4e-3, 8e-3, n),
        "tau_mem": _uniform(8e-3, 2e-2, n),
        "r": _uniform(0.5, 2.0, n),
        "v_leak": _uniform(-0.1, 0.1, n),
        "v_threshold": _uniform(0.8, 1.2, n),
        "v_reset": _uniform(-0.2, 0.0, n),
        "w_in": _uniform(2.0, 8.0, n),
    }
    return nir.CubaLIF(**{**values, **fields})


def _affine(inputs: int, outputs: int, gain: float = 2.0) -> nir.Affine:
    return nir.Affine(
        weight=(gain * RNG.standard_normal((outputs, inputs))).astype(np.float32),
        bias=RNG.uniform(0.0, 0.5, outputs).astype(np.float32),
    )


def assert_reproduces(
    graph: nir.NIRGraph, x: torch.Tensor, spiking: list[str]
) -> se.SpikingNetwork:
    """The imported network (float64) gives the graph's simulated spikes and output voltages."""
    network = from_nir(graph).double()
    outputs = EulerSimulator(graph, DT).run(x.double())
    spikes, _ = trajectories(network, x.double())
    for name in spiking:
        rate = float(outputs[name].mean())
        assert 0.01 < rate < 0.95, f"{name} fires at rate {rate}"
        assert torch.equal(spikes[name.replace(".", "_")], outputs[name]), name
    (last,) = [a for a, b in graph.edges if b == "output"]
    out, _ = network(x.double())
    torch.testing.assert_close(out, outputs[last].to(out.dtype), atol=1e-9, rtol=0)
    return network


def test_foreign_feed_forward_graph_with_per_neuron_fields() -> None:
    graph = _graph(
        {
            "dense1": _affine(5, 8),
            "cuba": _cuba_lif(8),
            "dense2": nir.Linear(weight=(3 * RNG.standard_normal((6, 8))).astype(np.float32)),
            "lif": nir.LIF(
                tau=_uniform(5e-3, 2e-2, 6),
                r=_uniform(1.0, 3.0, 6),
                v_leak=_uniform(0.0, 0.2, 6),
                v_threshold=_uniform(0.3, 0.6, 6),
                v_reset=np.zeros(6),
            ),
            "dense3": _affine(6, 4),
            "if": nir.IF(r=_uniform(500.0, 1500.0, 4), v_threshold=np.ones(4), v_reset=np.zeros(4)),
            "scale": nir.Scale(scale=np.array([0.5, 1.0, 2.0, 4.0])),
            "dense4": _affine(4, 3),
            "readout": nir.CubaLI(
                tau_syn=np.full(3, 5e-3),
                tau_mem=np.full(3, 1e-2),
                r=np.full(3, 2.0),
                v_leak=np.full(3, 0.1),
                w_in=np.full(3, 3.0),
            ),
        }
    )
    network = assert_reproduces(graph, drive((5,), steps=60), ["cuba", "lif", "if"])
    kinds = [type(getattr(m, "module", m)).__name__ for _, m in network.layers.named_children()]
    assert kinds == [
        "Linear", "Scale", "LIF", "Linear", "Scale", "LIFBox", "Linear", "Scale", "IAF",
        "Scale", "Linear", "Scale", "LI",
    ]  # fmt: skip
    assert network.spiking_layers == ["cuba", "lif", "if"]
    assert list(dict(network.layers.named_children()))[1] == "scale_cuba"


def test_leaky_integrators_single_and_in_a_row() -> None:
    """``LI`` alone is LIBox; ``LI`` -> ``LI`` with no leak in the first is one LI (synapse)."""
    single = _graph(
        {
            "dense": _affine(4, 3),
            "li": nir.LI(tau=np.full(3, 2e-2), r=np.full(3, 1.5), v_leak=np.full(3, 0.2)),
        }
    )
    network = assert_reproduces(single, drive((4,)), [])
    assert isinstance(network.layers.li, se.LIBox)
    chain = _graph(
        {
            "dense": _affine(4, 3),
            "synapse": nir.LI(tau=np.full(3, 5e-3), r=np.full(3, 5.0), v_leak=np.zeros(3)),
            "membrane": nir.LI(tau=np.full(3, 1e-2), r=np.full(3, 1.0), v_leak=np.full(3, 0.1)),
        }
    )
    network = assert_reproduces(chain, drive((4,)), [])
    assert list(dict(network.layers.named_children())) == ["dense", "membrane"]
    assert isinstance(network.layers.membrane, se.LI)


def test_recurrent_graph_with_affine_back_edge() -> None:
    """snnTorch writes recurrent weights as Affine with a bias: the bias joins the input's."""
    n = 6
    nodes = {
        "dense": _affine(4, n),
        "rnn": _cuba_lif(n),
        "rnn_rec": _affine(n, n, gain=1.0),
        "out": _affine(n, 3),
        "readout": nir.LI(tau=np.full(3, 1e-2), r=np.ones(3), v_leak=np.zeros(3)),
    }
    edges = [
        ("input", "dense"),
        ("dense", "rnn"),
        ("rnn", "rnn_rec"),
        ("rnn_rec", "rnn"),
        ("rnn", "out"),
        ("out", "readout"),
        ("readout", "output"),
    ]
    network = assert_reproduces(_graph(nodes, edges), drive((4,), steps=60), ["rnn"])
    layer = network.layers.rnn
    assert isinstance(layer, se.LIFRecurrent) and layer.autapses
    assert torch.equal(
        layer.input_weights,
        torch.eye(n, dtype=layer.input_weights.dtype) * layer.input_weights.diagonal(),
    )


def test_recurrent_graph_absorbs_a_bias_free_input_linear() -> None:
    n = 5
    nodes = {
        "w_in": nir.Linear(weight=(2 * RNG.standard_normal((n, 4))).astype(np.float32)),
        "rnn": nir.LIF(
            tau=np.full(n, 1e-2), r=np.ones(n), v_leak=np.zeros(n), v_threshold=np.full(n, 0.3)
        ),
        "w_rec": nir.Linear(
            weight=(RNG.standard_normal((n, n)) * (1 - np.eye(n))).astype(np.float32)
        ),
    }
    edges = [
        ("input", "w_in"),
        ("w_in", "rnn"),
        ("rnn", "w_rec"),
        ("w_rec", "rnn"),
        ("rnn", "output"),
    ]
    network = assert_reproduces(_graph(nodes, edges), drive((4,), steps=60), ["rnn"])
    assert list(dict(network.layers.named_children())) == ["rnn"]
    layer = network.layers.rnn
    assert isinstance(layer, se.LIFBoxRecurrent) and not layer.autapses
    assert torch.equal(layer.input_weights.float(), torch.as_tensor(nodes["w_in"].weight))


def test_nested_graph_is_inlined() -> None:
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "dense": _affine(4, 6),
            "lif": _cuba_lif(6),
            "output": nir.Output(output_type={"output": np.array([6])}),
        },
        edges=[("input", "dense"), ("dense", "lif"), ("lif", "output")],
    )
    graph = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([4])}),
            "block": inner,
            "output": nir.Output(output_type={"output": np.array([6])}),
        },
        edges=[("input", "block"), ("block", "output")],
        metadata={"dt": DT},
    )
    network = from_nir(graph)
    assert network.spiking_layers == ["block_lif"]
    flat = _graph({"dense": inner.nodes["dense"], "lif": inner.nodes["lif"]})
    x = drive((4,))
    assert torch.equal(network(x)[0], from_nir(flat)(x)[0])


def test_dt_comes_from_the_metadata_or_the_argument(tmp_path: Path) -> None:
    graph = _graph({"dense": _affine(4, 3), "lif": _cuba_lif(3)})
    assert from_nir(graph).layers.lif.dt == DT
    assert from_nir(graph, dt=5e-4).layers.lif.dt == 5e-4
    graph.metadata = {}
    with pytest.raises(
        NIRImportError, match="give dt=<seconds>: the graph's metadata records no dt"
    ):
        from_nir(graph)


ERRORS = {
    "unknown node": (
        lambda: _graph({"dense": _affine(4, 3), "delay": nir.Delay(delay=np.ones(3))}),
        "node 'delay' (Delay): Delay is not supported (supported: Input, Output, Affine",
    ),
    "integrator": (
        lambda: _graph({"dense": _affine(4, 3), "integrator": nir.I(r=np.ones(3))}),
        "node 'integrator' (I): I is not supported",
    ),
    "non-positive time constant": (
        lambda: _graph(
            {"dense": _affine(4, 3), "lif": _cuba_lif(3, tau_mem=np.array([1e-2, 0.0, 1e-2]))}
        ),
        "node 'lif' (CubaLIF): tau_mem must be > 0 seconds (got min 0)",
    ),
    "unstable step": (
        lambda: _graph({"dense": _affine(4, 3), "lif": _cuba_lif(3, tau_mem=np.full(3, 5e-4))}),
        "node 'lif' (CubaLIF): dt * tau_mem_inv must be < 1",
    ),
    "threshold without pooling": (
        lambda: _graph({"dense": _affine(4, 3), "threshold": nir.Threshold(threshold=np.ones(3))}),
        "node 'threshold' (Threshold): a Threshold is read only right after a SumPool2d of spikes",
    ),
    "three-dimensional weight": (
        lambda: _graph({"dense": nir.Linear(weight=np.ones((2, 3, 4)))}, type_check=False),
        "node 'dense' (Linear): weight of shape (2, 3, 4) (spikeexp reads 2-D weights)",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_unsupported_nodes_and_values_are_one_line_errors(case: str) -> None:
    make, message = ERRORS[case]
    with pytest.raises(NIRImportError) as error:
        from_nir(make())
    assert str(error.value).startswith(message), str(error.value)
    assert "\n" not in str(error.value)


def test_graphs_that_are_not_chains_are_refused() -> None:
    dense, lif = _affine(4, 4), _cuba_lif(4)
    base = {"dense": dense, "lif": lif}
    branching = _graph(
        base, [("input", "dense"), ("dense", "lif"), ("lif", "output"), ("input", "lif")]
    )
    with pytest.raises(NIRImportError, match="node 'input' has 2 outgoing edges"):
        from_nir(branching)
    looped = _graph(base, [("input", "dense"), ("dense", "lif"), ("lif", "lif"), ("lif", "output")])
    with pytest.raises(NIRImportError, match="node 'lif' connects to itself"):
        from_nir(looped)
    stray = _graph(
        {**base, "extra": _affine(4, 4)},
        [("input", "dense"), ("dense", "lif"), ("lif", "output")],
        type_check=False,
    )
    with pytest.raises(
        NIRImportError, match="node 'extra' is not on the path from input to output"
    ):
        from_nir(stray)


def test_unreadable_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(NIRImportError, match=r"NIR file .*missing\.nir does not exist"):
        from_nir(tmp_path / "missing.nir")
    garbage = tmp_path / "garbage.nir"
    garbage.write_bytes(b"not hdf5")
    with pytest.raises(NIRImportError, match=r"garbage\.nir is not a readable NIR graph"):
        from_nir(garbage)
