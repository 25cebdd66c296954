"""Reward-modulated STDP: the eligibility trace decays with tau_e between the spikes and the
reward, rewards scale and sign the change per sample."""

from __future__ import annotations

import math

import pytest
import torch

from spikeexp.functional.plasticity import RULES
from spikeexp.functional.plasticity.mstdp import MSTDPParameters, MSTDPState, mstdp_step

P = MSTDPParameters(a_plus=0.01, a_minus=0.015, tau_e_inv=2.0, hard_bounds=False)


def _run(
    pre_step: int, post_step: int, reward_step: int, reward: list[float], steps: int
) -> torch.Tensor:
    """The same pair in every sample, reward ``reward[n]`` for sample ``n`` at ``reward_step``."""
    batch = len(reward)
    w = torch.full((1, 1), 0.5, dtype=torch.float64)
    state = RULES["mstdp"].initial_state(
        P, torch.zeros(batch, 1, dtype=torch.float64), torch.zeros(batch, 1, dtype=torch.float64), w
    )
    total = torch.zeros_like(w)
    for t in range(steps):
        z_pre = torch.full((batch, 1), float(t == pre_step), dtype=torch.float64)
        z_post = torch.full((batch, 1), float(t == post_step), dtype=torch.float64)
        r = torch.tensor(reward, dtype=torch.float64) if t == reward_step else 0.0
        dw, state = mstdp_step(z_pre, z_post, w, state, P, 1e-3, reward=r)
        total += dw
    return total


@pytest.mark.parametrize("delay_steps", [0, 1, 10, 100, 700])
def test_eligibility_decays_with_tau_e_until_the_reward(delay_steps: int) -> None:
    """A causal pair (lag 5 ms) leaves e = A+ exp(-5/20); a reward r = 2 arriving k steps after
    the post spike gives r e exp(-k dt / tau_e)."""
    change = _run(0, 5, 5 + delay_steps, [2.0], 5 + delay_steps + 3)
    expected = 2.0 * 0.01 * math.exp(-5 / 20) * math.exp(-delay_steps * 1e-3 * 2.0)
    assert float(change) == pytest.approx(expected, rel=1e-12)


def test_anti_causal_pair_with_reward_depresses() -> None:
    change = _run(5, 0, 20, [1.0], 25)
    expected = -0.015 * math.exp(-5 / 20) * math.exp(-15 * 1e-3 * 2.0)
    assert float(change) == pytest.approx(expected, rel=1e-12)


def test_no_reward_no_change_and_rewards_count_per_sample() -> None:
    assert float(_run(0, 5, 100, [0.0], 110)) == 0.0
    assert float(_run(0, 5, 10, [1.0, -1.0], 20)) == pytest.approx(0.0, abs=1e-18)
    one = float(_run(0, 5, 10, [1.0], 20))
    assert float(_run(0, 5, 10, [1.0, 0.5], 20)) == pytest.approx(1.5 * one, rel=1e-12)
    assert float(_run(0, 5, 10, [-1.0], 20)) == pytest.approx(-one, rel=1e-12)


def test_eligibility_is_per_sample() -> None:
    w = torch.zeros(3, 4)
    state = RULES["mstdp"].initial_state(P, torch.zeros(5, 4), torch.zeros(5, 3), w)
    assert isinstance(state, MSTDPState)
    assert state.e.shape == (5, 3, 4)


def test_validation() -> None:
    with pytest.raises(ValueError, match=r"^tau_e_inv must be > 0 \(got 0\)$"):
        RULES["mstdp"].prepare(MSTDPParameters(tau_e_inv=0.0), 1e-3)
    with pytest.raises(ValueError, match=r"^tau_e_inv must be one number"):
        RULES["mstdp"].prepare(MSTDPParameters(tau_e_inv=torch.ones(3)), 1e-3)
