"""Plastic connections: the forward pass, the rule applied after observe/reward (direct) or
written into .grad (any optimiser), mixing with gradient-trained layers, no_grad updates,
normalisation, carried rule state in the state_dict, and short-term plasticity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from spikeexp.functional.plasticity import RULES, Conv2d
from spikeexp.functional.plasticity.sequence import reference_weight_sequence
from spikeexp.functional.plasticity.stp import stp_step
from spikeexp.module import LIF, Lift
from spikeexp.module.plastic import PlasticConv2d, PlasticLinear, ShortTermPlasticity


def _spikes(shape: tuple[int, ...], probability: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator) < probability).float()


def _expected(layer, pre: torch.Tensor, post: torch.Tensor, reward=None) -> torch.Tensor:
    """The rule's change of the sequence for the layer's current weights, by the reference loop."""
    w = layer.weight.detach().clone()
    state = layer.rule.initial_state(layer.p, pre[0], post[0], w)
    rewards = None
    if reward is not None:
        rewards = torch.zeros(pre.shape[:2])
        rewards[-1] = reward
    dw, _ = reference_weight_sequence(
        layer.rule, pre, post, w, state, layer.p, layer.dt, layer.connection, rewards
    )
    return dw


def test_linear_forward_and_direct_update() -> None:
    layer = PlasticLinear(6, 4, "stdp", init_range=[0.2, 0.6], a_plus=0.05, a_minus=0.04)
    x = _spikes((20, 3, 6), 0.3, 1)
    post = _spikes((20, 3, 4), 0.2, 2)
    before = layer.weight.detach().clone()
    out = layer(x)
    torch.testing.assert_close(out, F.linear(x, before))
    expected = _expected(layer, x, post)
    layer.observe(post)
    assert expected.abs().max() > 0.01
    torch.testing.assert_close(layer.weight.detach(), before + expected)
    assert not layer.weight.requires_grad and layer.weight.grad is None


def test_evaluation_mode_and_frozen_layers_do_not_learn() -> None:
    layer = PlasticLinear(6, 4, init_range=[0.2, 0.6]).eval()
    before = layer.weight.detach().clone()
    layer(_spikes((10, 2, 6), 0.5, 3))
    layer.observe(_spikes((10, 2, 4), 0.5, 4))
    assert torch.equal(layer.weight, before)
    layer.train()
    layer.plastic = False
    layer(_spikes((10, 2, 6), 0.5, 3))
    layer.observe(_spikes((10, 2, 4), 0.5, 4))
    assert torch.equal(layer.weight, before)


def test_conv2d_forward_and_update() -> None:
    layer = PlasticConv2d(2, 3, 3, stride=2, padding=1, init_range=[0.1, 0.5], a_plus=0.05)
    x = _spikes((8, 2, 2, 7, 7), 0.3, 5)
    out = layer(x)
    reference = torch.stack([F.conv2d(x_t, layer.weight, stride=2, padding=1) for x_t in x])
    torch.testing.assert_close(out, reference)
    assert out.shape == (8, 2, 3, 4, 4)
    post = _spikes(tuple(out.shape), 0.2, 6)
    before = layer.weight.detach().clone()
    expected = _expected(layer, x, post)
    assert layer.connection == Conv2d(stride=2, padding=1, dilation=1)
    layer.observe(post)
    torch.testing.assert_close(layer.weight.detach(), before + expected)


def test_grad_mode_lets_any_optimiser_apply_the_rule() -> None:
    """SGD with lr=1 applies w + dw exactly; the loss itself gives the weights no gradient."""
    layer = PlasticLinear(6, 4, mode="grad", init_range=[0.2, 0.6], a_plus=0.05)
    optimizer = torch.optim.SGD(layer.parameters(), lr=1.0)
    x = _spikes((15, 3, 6), 0.3, 7)
    post = _spikes((15, 3, 4), 0.3, 8)
    before = layer.weight.detach().clone()
    loss = layer(x.requires_grad_()).sum()
    loss.backward()
    assert layer.weight.grad is None and x.grad is not None
    expected = _expected(layer, x.detach(), post)
    layer.observe(post)
    layer.write_grad()
    torch.testing.assert_close(layer.weight.grad, -expected)
    optimizer.step()
    torch.testing.assert_close(layer.weight.detach(), before + expected)


def test_mixed_with_a_gradient_trained_layer() -> None:
    """STDP input layer (direct) -> LIF -> Linear trained by Adam: each learns by its own rule."""
    torch.manual_seed(0)
    plastic = PlasticLinear(8, 16, init_range=[0.0, 0.5], a_plus=0.02, a_minus=0.02)
    hidden = LIF(tau_mem_inv=200.0)
    readout = Lift(nn.Linear(16, 3))
    optimizer = torch.optim.Adam([p for p in readout.parameters()], lr=0.01)
    x = _spikes((25, 4, 8), 0.5, 9) * 3.0
    w_plastic, w_readout = plastic.weight.detach().clone(), readout.module.weight.detach().clone()
    current = plastic(x)
    spikes, _ = hidden(current)
    loss = readout(spikes).mean(0).pow(2).sum()
    loss.backward()
    expected = _expected(plastic, x, spikes.detach())
    plastic.observe(spikes)
    optimizer.step()
    assert spikes.sum() > 0 and expected.abs().max() > 0
    torch.testing.assert_close(plastic.weight.detach(), w_plastic + expected)
    assert readout.module.weight.grad is not None
    assert not torch.equal(readout.module.weight.detach(), w_readout)


def test_updates_run_without_autograd() -> None:
    layer = PlasticLinear(5, 3, mode="grad", init_range=[0.2, 0.6])
    with torch.enable_grad():
        layer(_spikes((10, 2, 5), 0.5, 10))
        layer.observe(_spikes((10, 2, 3), 0.5, 11))
    assert layer._pending is not None and layer._pending.grad_fn is None
    assert layer.weight.is_leaf


def test_normalize_keeps_each_neurons_incoming_sum() -> None:
    layer = PlasticLinear(10, 4, init_range=[0.0, 0.3], normalize=2.5, a_plus=0.1)
    torch.testing.assert_close(layer.weight.sum(1), torch.full((4,), 2.5))
    layer(_spikes((20, 2, 10), 0.4, 12))
    layer.observe(_spikes((20, 2, 4), 0.3, 13))
    torch.testing.assert_close(layer.weight.sum(1), torch.full((4,), 2.5))
    conv = PlasticConv2d(2, 3, 3, init_range=[0.0, 0.3], normalize=1.5)
    torch.testing.assert_close(conv.weight.sum((1, 2, 3)), torch.full((3,), 1.5))


def test_reward_modulated_connection_waits_for_its_reward() -> None:
    layer = PlasticLinear(5, 3, "mstdp", init_range=[0.3, 0.7], a_plus=0.05, a_minus=0.05)
    x = _spikes((12, 2, 5), 0.5, 14)
    post = _spikes((12, 2, 3), 0.5, 15)
    before = layer.weight.detach().clone()
    reward = torch.tensor([1.0, -0.5])
    expected = _expected(layer, x, post, reward)
    layer(x)
    layer.observe(post)
    assert torch.equal(layer.weight, before)
    layer(x)
    with pytest.raises(RuntimeError, match="got no reward for its previous sequence"):
        layer.observe(post)
    layer.reward(reward)
    torch.testing.assert_close(layer.weight.detach(), before + expected)
    with pytest.raises(RuntimeError, match="needs an observed training sequence"):
        layer.reward(1.0)
    with pytest.raises(RuntimeError, match="the stdp rule takes no reward"):
        PlasticLinear(5, 3).reward(1.0)


def test_carried_state_continues_across_sequences_and_checkpoints() -> None:
    """Two halves observed with carry_state give the change of the whole sequence (grad mode:
    the weights stay fixed); the carried state survives a state_dict round trip."""
    kwargs = {"mode": "grad", "init_range": [0.2, 0.6], "carry_state": True, "hard_bounds": False}
    layer = PlasticLinear(6, 4, **kwargs)
    x = _spikes((30, 2, 6), 0.3, 16)
    post = _spikes((30, 2, 4), 0.3, 17)
    whole = _expected(layer, x, post)
    layer(x[:13])
    layer.observe(post[:13])
    first = layer._pending.clone()
    copy = PlasticLinear(6, 4, **kwargs)
    copy.load_state_dict(layer.state_dict())
    assert torch.equal(copy._state.x, layer._state.x)
    for module in (layer, copy):
        module(x[13:])
        module.observe(post[13:])
    torch.testing.assert_close(layer._pending, whole)
    torch.testing.assert_close(copy._pending, whole - first)
    assert not PlasticLinear(6, 4).get_extra_state()


def test_short_term_plasticity_layer() -> None:
    layer = ShortTermPlasticity(U=0.3, tau_f_inv=10.0, tau_d_inv=5.0)
    z = _spikes((40, 3, 5), 0.2, 18)
    released, _ = layer(z)
    state = RULES["stp"].initial_state(layer.p, z[0])
    for t in range(40):
        expected, state = stp_step(z[t], state, layer.p, 1e-3)
        torch.testing.assert_close(released[t], expected)
    first = z.argmax(0)  # first spike of each input that spikes
    spiking = z.sum(0) > 0
    firsts = released.gather(0, first.unsqueeze(0))[0]
    torch.testing.assert_close(firsts[spiking], torch.full_like(firsts[spiking], 0.3))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: PlasticLinear(4, 2, "stp"),
            "rule must be one of mstdp, stdp, triplet (got 'stp')",
        ),
        (lambda: PlasticLinear(4, 2, a_pluss=1.0), "unknown stdp parameter 'a_pluss'; valid: "),
        (lambda: PlasticLinear(4, 2, mode="sgd"), "mode must be one of direct, grad (got 'sgd')"),
        (lambda: PlasticLinear(4, 2, normalize=-1.0), "normalize must be null or a number > 0"),
        (lambda: PlasticLinear(4, 2, tau_pre_inv=0.0), "tau_pre_inv must be > 0 (got 0)"),
        (lambda: ShortTermPlasticity("stdp"), "rule must be one of stp (got 'stdp')"),
        (
            lambda: PlasticLinear(4, 2, init_range=[1.0, 0.0]),
            "init_range must be [low, high] with low < high",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(make, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        make()
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def _replica(rank: int, init_file: str, results: str) -> None:
    """One of two data-parallel processes: the same initial weights, its own half of the batch."""
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=2
    )
    try:
        torch.manual_seed(0)
        layer = PlasticLinear(6, 4, init_range=[0.2, 0.6], a_plus=0.05)
        x, post = _spikes((20, 4, 6), 0.3, 30), _spikes((20, 4, 4), 0.3, 31)
        half = slice(2 * rank, 2 * rank + 2)
        layer(x[:, half])
        layer.observe(post[:, half])
        torch.save(layer.weight.detach(), f"{results}.{rank}")
    finally:
        torch.distributed.destroy_process_group()


def test_data_parallel_replicas_apply_the_change_of_the_global_batch(tmp_path) -> None:
    """Two gloo processes with half a batch each end with the weights one process gets from the
    whole batch."""
    results = str(tmp_path / "weights")
    torch.multiprocessing.spawn(_replica, args=(str(tmp_path / "init"), results), nprocs=2)
    torch.manual_seed(0)
    layer = PlasticLinear(6, 4, init_range=[0.2, 0.6], a_plus=0.05)
    x, post = _spikes((20, 4, 6), 0.3, 30), _spikes((20, 4, 4), 0.3, 31)
    layer(x)
    layer.observe(post)
    for rank in (0, 1):
        torch.testing.assert_close(torch.load(f"{results}.{rank}"), layer.weight.detach())
