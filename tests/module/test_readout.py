"""Linear LI readouts: LILinearCell and LILinear against Linear + LI by hand."""

from __future__ import annotations

import pytest
import torch

import spikeexp as snn
from spikeexp.functional.neurons.li import LIParameters, li_step


def test_cell_is_linear_then_li() -> None:
    cell = snn.LILinearCell(3, 2, p=LIParameters(tau_mem_inv=50.0))
    x = torch.randn(4, 3)
    v, state = cell(x)
    rest = snn.LICell().initial_state(torch.zeros(4, 2))
    expected, expected_state = li_step(x @ cell.linear.weight.t(), rest, cell.p, 1e-3)
    torch.testing.assert_close(v, expected)
    torch.testing.assert_close(state.i, expected_state.i)
    assert cell.linear.bias is None


def test_sequence_equals_cell_loop() -> None:
    layer = snn.LILinear(3, 2, tau_syn_inv=100.0)
    cell = snn.LILinearCell(3, 2, tau_syn_inv=100.0)
    cell.load_state_dict(layer.state_dict())
    x = torch.randn(9, 4, 3)
    outputs, state = [], None
    for x_t in x:
        v, state = cell(x_t, state)
        outputs.append(v)
    sequence, final = layer(x)
    torch.testing.assert_close(sequence, torch.stack(outputs))
    torch.testing.assert_close(final.v, state.v)
    _, trajectory = snn.LILinear(3, 2, record_states=True)(x)
    assert trajectory.v.shape == (9, 4, 2)


def test_state_continues() -> None:
    layer = snn.LILinear(3, 2)
    x = torch.randn(8, 1, 3)
    whole, _ = layer(x)
    first, state = layer(x[:4])
    second, _ = layer(x[4:], state)
    torch.testing.assert_close(torch.cat([first, second]), whole)


def test_wrong_shapes_and_sizes() -> None:
    with pytest.raises(ValueError, match=r"LILinearCell expects input \[batch, input_size\]"):
        snn.LILinearCell(3, 2)(torch.ones(4, 5))
    with pytest.raises(ValueError, match=r"LILinear expects input \[T, batch, input_size\]"):
        snn.LILinear(3, 2)(torch.ones(4, 3))
    with pytest.raises(ValueError, match=r"hidden_size must be a positive integer \(got 0\)"):
        snn.LILinear(3, 0)
    with pytest.raises(ValueError, match=r"tau_mem_inv must be > 0"):
        snn.LILinearCell(3, 2, tau_mem_inv=-1.0)
