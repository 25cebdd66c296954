"""After conversion, Norse's ``stdp_step_linear`` / ``stdp_step_conv2d`` and SpikingJelly's
``STDPLearner`` give the changes of our STDP for the same spike trains (skipped when those
libraries are not installed; the ``bench`` extra installs them)."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from spikeexp.functional.plasticity import Conv2d
from spikeexp.functional.plasticity.interop import (
    norse_stdp_parameters,
    spikingjelly_stdp_arguments,
)
from spikeexp.functional.plasticity.sequence import reference_weight_sequence
from spikeexp.functional.plasticity.stdp import RULE, STDPParameters, STDPState, stdp_step
from spikeexp.functional.plasticity.traces import euler_rate_for_decay, steps_for_decay

from .helpers import poisson

DT = 1e-3
P = STDPParameters(a_plus=0.02, a_minus=0.018, tau_pre_inv=1 / 0.017, tau_post_inv=1 / 0.034)


def test_conversions_keep_the_decay_per_step() -> None:
    rate = euler_rate_for_decay(50.0, DT)
    steps = steps_for_decay(50.0, DT)
    decay = torch.exp(torch.tensor(-DT * 50.0, dtype=torch.float64)).item()
    assert 1 - DT * rate == pytest.approx(decay, rel=1e-15)
    assert 1 - 1 / steps == pytest.approx(decay, rel=1e-15)


def test_nearest_traces_cannot_be_converted() -> None:
    with pytest.raises(ValueError, match="interaction must be 'all_to_all' to convert"):
        norse_stdp_parameters(P._replace(interaction="nearest"), DT)


def _online(pre: torch.Tensor, post: torch.Tensor, w: torch.Tensor, p: STDPParameters, conv=None):
    """Our rule applied every step (weights change within the sequence), like Norse."""
    state = STDPState(torch.zeros_like(pre[0]), torch.zeros_like(post[0]))
    for t in range(pre.shape[0]):
        extra = () if conv is None else (conv,)
        dw, state = stdp_step(pre[t], post[t], w, state, p, DT, *extra)
        w = w + dw
    return w


@pytest.mark.parametrize("dependence", ["additive", "multiplicative"])
def test_norse_stdp_step_linear_after_conversion(dependence: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norse_stdp = pytest.importorskip("norse.torch.functional.stdp")
    p = P._replace(weight_dependence=dependence)
    pre = poisson((80, 4, 12), 0.1, seed=1)
    post = poisson((80, 4, 7), 0.08, seed=2)
    w0 = torch.rand(7, 12, dtype=torch.float64)
    ours = _online(pre, post, w0, p)
    parameters = norse_stdp.STDPParameters(**norse_stdp_parameters(p, DT))
    state = norse_stdp.STDPState(torch.zeros_like(pre[0]), torch.zeros_like(post[0]))
    theirs = w0
    for t in range(pre.shape[0]):
        theirs, state = norse_stdp.stdp_step_linear(pre[t], post[t], theirs, state, parameters, DT)
    assert (ours - w0).abs().max() > 0.05
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-11)


def test_norse_stdp_step_conv2d_after_conversion() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norse_stdp = pytest.importorskip("norse.torch.functional.stdp")
    pre = poisson((25, 2, 2, 6, 6), 0.2, seed=3)
    post = poisson((25, 2, 3, 4, 4), 0.15, seed=4)
    w0 = torch.rand(3, 2, 3, 3, dtype=torch.float64)
    ours = _online(pre, post, w0, P, Conv2d())
    parameters = norse_stdp.STDPParameters(**norse_stdp_parameters(P, DT), convolutional=True)
    state = norse_stdp.STDPState(torch.zeros_like(pre[0]), torch.zeros_like(post[0]))
    theirs = w0
    for t in range(pre.shape[0]):
        theirs, state = norse_stdp.stdp_step_conv2d(pre[t], post[t], theirs, state, parameters, DT)
    assert (ours - w0).abs().max() > 0.05
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-11)


class _Replay(nn.Module):
    """Stands for a neuron layer: returns the given postsynaptic spikes whatever its input."""

    def __init__(self, spikes: torch.Tensor) -> None:
        super().__init__()
        self.spikes = spikes

    def forward(self, _: torch.Tensor) -> torch.Tensor:
        return self.spikes


def _spikingjelly_change(synapse: nn.Module, pre: torch.Tensor, post: torch.Tensor, p):
    learning = pytest.importorskip("spikingjelly.activation_based.learning")
    neuron = _Replay(post)
    learner = learning.STDPLearner("m", synapse, neuron, **spikingjelly_stdp_arguments(p, DT))
    with torch.no_grad():
        neuron(synapse(pre))
    return learner.step(on_grad=False)


@pytest.mark.parametrize("dependence", ["additive", "multiplicative"])
def test_spikingjelly_stdp_learner_linear_after_conversion(dependence: str) -> None:
    p = P._replace(weight_dependence=dependence, hard_bounds=False)
    pre = poisson((60, 3, 10), 0.1, seed=5)
    post = poisson((60, 3, 6), 0.1, seed=6)
    synapse = nn.Linear(10, 6, bias=False).double()
    with torch.no_grad():
        synapse.weight.uniform_(0, 1)
    w = synapse.weight.detach().clone()
    theirs = _spikingjelly_change(synapse, pre, post, p)
    state = RULE.initial_state(p, pre[0], post[0], w)
    ours, _ = reference_weight_sequence(RULE, pre, post, w, state, p, DT)
    assert ours.abs().max() > 0.01
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)


def test_spikingjelly_stdp_learner_conv2d_after_conversion() -> None:
    layer = pytest.importorskip("spikingjelly.activation_based.layer")
    p = P._replace(hard_bounds=False)
    pre = poisson((30, 2, 2, 7, 7), 0.15, seed=7)
    post = poisson((30, 2, 3, 4, 4), 0.1, seed=8)
    synapse = layer.Conv2d(2, 3, 3, stride=2, padding=1, bias=False, step_mode="m").double()
    with torch.no_grad():
        synapse.weight.uniform_(0, 1)
    w = synapse.weight.detach().clone()
    theirs = _spikingjelly_change(synapse, pre, post, p)
    state = RULE.initial_state(p, pre[0], post[0], w)
    ours, _ = RULE.sequence(pre, post, w, state, p, DT, Conv2d(stride=2, padding=1))
    assert ours.abs().max() > 0.01
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-12)
