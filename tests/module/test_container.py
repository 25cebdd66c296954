"""Lift and SequentialState: stateless layers over time, states threaded through a stack."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import spikeexp as snn
from spikeexp.engine.topology import Scale
from spikeexp.module.container import is_time_invariant


def test_lift_applies_the_layer_at_every_step() -> None:
    linear = nn.Linear(3, 2)
    x = torch.randn(5, 4, 3)
    out = snn.Lift(linear)(x)
    assert out.shape == (5, 4, 2)
    torch.testing.assert_close(out, torch.stack([linear(x_t) for x_t in x]))


def test_lift_handles_conv_feature_maps() -> None:
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x = torch.randn(4, 2, 2, 6, 6)
    out = snn.Lift(conv)(x)
    assert out.shape == (4, 2, 3, 6, 6)
    torch.testing.assert_close(out[2], conv(x[2]))


def test_lift_runs_a_time_invariant_layer_once_for_a_constant_input() -> None:
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), Scale(10.0), nn.MaxPool2d(2))
    calls = []
    conv.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape))
    image = torch.randn(3, 1, 8, 8)
    constant = image.unsqueeze(0).expand(5, -1, -1, -1, -1)  # what constant-current encoders give
    out = snn.Lift(conv)(constant)
    assert calls == [(3, 1, 8, 8)]  # one batch of images, not 5 x 3
    assert out.shape == (5, 3, 4, 3, 3) and out.stride(0) == 0
    expected = snn.Lift(conv)(constant.contiguous())
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    # The weight gradient: autograd sums the output gradient over time before the layer.
    weights = torch.linspace(-1.0, 1.0, expected.numel()).reshape(expected.shape)
    grad = torch.autograd.grad((out * weights).sum(), conv[0].weight)[0]
    expected_grad = torch.autograd.grad((expected * weights).sum(), conv[0].weight)[0]
    # Summed in another order: equal up to float32 rounding of a sum over 5 x 3 x 36 terms.
    torch.testing.assert_close(
        grad, expected_grad, rtol=1e-5, atol=1e-5 * expected_grad.abs().max()
    )


def test_lift_runs_layers_with_randomness_at_every_step() -> None:
    dropout = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.5))
    assert is_time_invariant(nn.Linear(6, 6)) and not is_time_invariant(dropout)
    constant = torch.ones(2, 6).unsqueeze(0).expand(4, -1, -1)
    out = snn.Lift(dropout.train())(constant)
    assert out.stride(0) != 0 and not torch.equal(out[0], out[1])  # a fresh mask at every step


def test_lift_rejects_inputs_without_time() -> None:
    with pytest.raises(ValueError, match=r"time-first input \[T, batch, \.\.\.\]"):
        snn.Lift(nn.Identity())(torch.ones(3))


def _network() -> snn.SequentialState:
    return snn.SequentialState(
        snn.Lift(nn.Linear(4, 8)),
        snn.LIF(),
        snn.LSNNRecurrent(8, 6),
        snn.Lift(nn.Linear(6, 3)),
        snn.LI(),
    )


def test_states_are_threaded_per_layer() -> None:
    torch.manual_seed(0)
    net = _network()
    x = torch.rand(12, 2, 4) * 3
    out, states = net(x)
    assert out.shape == (12, 2, 3)
    assert len(states) == 5
    assert states[0] is None and states[3] is None
    assert isinstance(states[1], snn.LIFState)
    assert isinstance(states[2], snn.RecurrentState)
    assert isinstance(states[4], snn.LIState)
    # by hand: the same layers called one after another
    h = net[0](x)
    h, lif_state = net[1](h)
    h, lsnn_state = net[2](h)
    expected, li_state = net[4](net[3](h))
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(states[1].v, lif_state.v)
    torch.testing.assert_close(states[2].z, lsnn_state.z)
    torch.testing.assert_close(states[4].v, li_state.v)


def test_continuation_equals_one_call() -> None:
    torch.manual_seed(0)
    net = _network()
    x = torch.rand(12, 2, 4) * 3
    whole, whole_states = net(x)
    first, states = net(x[:6])
    second, states = net(x[6:], states)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(states[1].v, whole_states[1].v)
    torch.testing.assert_close(states[2].neuron.b, whole_states[2].neuron.b)


def test_wrong_state_list_length() -> None:
    with pytest.raises(ValueError, match="state list of length 5 \\(got 2\\)"):
        _network()(torch.rand(3, 1, 4), [None, None])
