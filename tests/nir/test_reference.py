"""The exported graph means what NIR says: a small forward-Euler simulator written here from NIR's
node equations (independent of spikeexp's code) runs the exported continuous-time parameters
and reproduces spikeexp's spikes and voltages.

The simulator (:mod:`tests.nir.simulator`) follows the conventions of the graph's metadata.
"""

from __future__ import annotations

import pytest
import torch

import spikeexp as se
from spikeexp.nir import to_nir
from tests.nir.networks import (
    SIZES,
    SPIKING_MODELS,
    assert_active,
    convolutional,
    drive,
    feed_forward,
    recurrent,
    trajectories,
)
from tests.nir.simulator import EulerSimulator


def _simulate(network: se.SpikingNetwork, x: torch.Tensor, **options) -> None:
    """Simulate the exported graph and compare it with the network, both in float64: the same
    spikes, and the same voltages of every neuron layer (in units of tau_mem / dt for
    ``resistance="tau_over_dt"``)."""
    network = network.double()  # exported from float64: PLIF's sigmoid rates as simulated here
    graph = to_nir(network, **options)
    simulator = EulerSimulator(graph, float(graph.metadata["dt"]))
    outputs = simulator.run(x.double())
    spikes, voltages = trajectories(network, x.double())
    assert_active({name: spikes[name] for name in network.spiking_layers})
    for name in network.spiking_layers:
        assert torch.equal(outputs[name], spikes[name]), f"spikes of {name} differ"
    for name, v in voltages.items():
        simulated = torch.stack(simulator.voltages[name])
        p = network.layers.get_submodule(name).p
        if options.get("resistance") == "tau_over_dt" and "tau_mem_inv" in p._fields:
            simulated = simulated * graph.metadata["dt"] * torch.as_tensor(p.tau_mem_inv)
        torch.testing.assert_close(simulated, v, atol=1e-9, rtol=0)


@pytest.mark.parametrize("model", SPIKING_MODELS)
@pytest.mark.parametrize("resistance", ["unit", "tau_over_dt"])
def test_feed_forward_graph_reproduces_spikes(model: str, resistance: str) -> None:
    readout = "li" if resistance == "unit" else "li_box"
    _simulate(feed_forward(model, readout), drive((SIZES[0],)), resistance=resistance)


@pytest.mark.parametrize("model", SPIKING_MODELS)
def test_recurrent_graph_reproduces_spikes(model: str) -> None:
    _simulate(recurrent(model, autapses=True), drive((SIZES[0],)))


@pytest.mark.parametrize("readout", ["cuba_li", "li_li"])
def test_readout_forms_give_the_readout_voltage(readout: str) -> None:
    _simulate(feed_forward("lif", "li"), drive((SIZES[0],)), readout=readout)


@pytest.mark.parametrize("pool", ["max", "max_padded", "avg", "sum"])
def test_convolutional_graph_reproduces_spikes(pool: str) -> None:
    network = convolutional(pool, batch_norm=False)
    _simulate(network, drive((1, 12, 12)), input_shape=(1, 12, 12))


def test_lif_graph_by_hand() -> None:
    """One LIF neuron, constant input 1 from rest (the trajectory of the LIF model's docstring):
    the exported CubaLIF has tau_syn = 5 ms, tau_mem = 10 ms, w_in = tau_syn / dt = 5, R = 1,
    and its Euler steps give 0.1, 0.27, 0.487, 0.7335, 0.99631, spike (reset to 0), 0.3951,
    0.7717."""
    network = se.SpikingNetwork({"lif": se.LIF()}, ["lif"])
    graph = to_nir(network, input_shape=(1,))
    node = graph.nodes["lif"]
    assert node.tau_syn == pytest.approx([5e-3]) and node.tau_mem == pytest.approx([1e-2])
    assert node.w_in == pytest.approx([5.0]) and node.r == pytest.approx([1.0])
    assert graph.metadata["dt"] == 1e-3
    simulator = EulerSimulator(graph, 1e-3)
    spikes = simulator.run(torch.ones(8, 1, 1, dtype=torch.float64))["lif"].flatten()
    voltages = torch.stack(simulator.voltages["lif"]).flatten().tolist()
    assert spikes.tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    expected = [0.1, 0.27, 0.487, 0.7335, 0.99631, 0.0, 0.3951424, 0.77174208]
    assert voltages == pytest.approx(expected, abs=1e-12)
