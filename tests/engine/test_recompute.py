"""Checkpointed (recomputed) forward passes give the plain forward's outputs and gradients."""

from __future__ import annotations

import pytest
import torch

from spikeexp.engine import network_from_config
from spikeexp.engine.recompute import recomputed_forward

STEPS, BATCH, INPUTS = 30, 4, 6


def _network() -> torch.nn.Module:
    neuron = {
        "model": "lsnn",
        "adaptation": "bellec",
        "v_th": 0.1,
        "beta": [0.0, 0.0, 0.0, 18.0, 18.0, 18.0],
    }
    return network_from_config(
        {"type": "recurrent", "hidden": [6]}, neuron, {"model": "li"}, (INPUTS,), num_outputs=2
    )


def _tensors(state: object) -> list[torch.Tensor]:
    """Every tensor of a nested state (lists and tuples of tensors, ``None`` for stateless
    layers), in order."""
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    return [tensor for item in state for tensor in _tensors(item)]


def _loss(network: torch.nn.Module, readout: torch.Tensor) -> torch.Tensor:
    return readout.pow(2).sum() + network.records["hidden1"].sum()


@pytest.mark.parametrize("chunk_steps", [1, 7, 30, 100])
def test_same_outputs_records_and_gradients(chunk_steps: int) -> None:
    network = _network()
    x = (torch.rand(STEPS, BATCH, INPUTS) < 0.3).float()
    readout, state = network(x)
    assert network.records["hidden1"].sum() > 0  # the comparison covers spiking dynamics
    _loss(network, readout).backward()
    expected = {name: p.grad.clone() for name, p in network.named_parameters()}
    expected_records = network.records["hidden1"].detach().clone()
    network.zero_grad()

    chunked, chunked_state = recomputed_forward(network, x, chunk_steps)
    assert torch.allclose(chunked, readout, atol=1e-6)
    assert torch.equal(network.records["hidden1"].detach(), expected_records)
    for got, want in zip(_tensors(chunked_state), _tensors(state), strict=True):
        assert torch.allclose(got, want, atol=1e-6)
    _loss(network, chunked).backward()
    for name, p in network.named_parameters():
        assert torch.allclose(p.grad, expected[name], atol=1e-5, rtol=1e-4), name
    # The recomputation during backward leaves the whole sequence's records in place.
    assert network.records["hidden1"].shape[0] == STEPS


def test_without_gradients_runs_plainly() -> None:
    network = _network()
    x = (torch.rand(STEPS, BATCH, INPUTS) < 0.3).float()
    with torch.no_grad():
        chunked, _ = recomputed_forward(network, x, 8)
        plain, _ = network(x)
    assert torch.allclose(chunked, plain, atol=1e-6)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_chunk_length_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match="recompute_steps must be an integer >= 1"):
        recomputed_forward(_network(), torch.zeros(4, 1, INPUTS), bad)
