"""Every weight rule's whole-sequence fast path equals the reference loop of its step function
(weights fixed, bounds applied once), dense and conv2d, from a non-empty state."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from spikeexp.functional.plasticity import RULES, Conv2d, Dense
from spikeexp.functional.plasticity.mstdp import MSTDPParameters
from spikeexp.functional.plasticity.sequence import reference_weight_sequence
from spikeexp.functional.plasticity.stdp import STDPParameters
from spikeexp.functional.plasticity.triplet import TripletParameters

from .helpers import poisson

PARAMETERS = {
    "stdp": STDPParameters(a_plus=0.02, a_minus=0.021),
    "triplet": TripletParameters(a2_plus=0.01, a3_plus=0.02, a3_minus=0.01),
    "mstdp": MSTDPParameters(tau_e_inv=20.0),
}
WEIGHT_RULES = [name for name, rule in RULES.items() if rule.kind == "weight"]


def test_every_weight_rule_is_covered() -> None:
    assert sorted(WEIGHT_RULES) == sorted(PARAMETERS)
    assert all(RULES[name].sequence is not None for name in WEIGHT_RULES)


def _geometry(connection: str) -> tuple[Any, tuple, tuple, tuple]:
    if connection == "dense":
        return Dense(), (3, 6), (3, 5), (5, 6)
    return Conv2d(stride=2, padding=1), (3, 2, 6, 6), (3, 4, 3, 3), (4, 2, 3, 3)


@pytest.mark.parametrize("name", WEIGHT_RULES)
@pytest.mark.parametrize("connection", ["dense", "conv2d"])
@pytest.mark.parametrize("dependence", ["additive", "multiplicative"])
@pytest.mark.parametrize("interaction", ["all_to_all", "nearest"])
def test_fast_path_equals_reference_loop(
    name: str, connection: str, dependence: str, interaction: str
) -> None:
    rule = RULES[name]
    geometry, pre_shape, post_shape, w_shape = _geometry(connection)
    p = rule.prepare(
        PARAMETERS[name]._replace(weight_dependence=dependence, interaction=interaction), 1e-3
    )
    steps = 25
    pre = poisson((steps, *pre_shape), 0.3, seed=5)
    post = poisson((steps, *post_shape), 0.25, seed=6)
    # Weights at and near both bounds, so that the hard bounds cut some changes.
    w = torch.rand(w_shape, dtype=torch.float64)
    w.view(-1)[:4] = torch.tensor([0.0, 1.0, 0.999, 0.001], dtype=torch.float64)
    reward = torch.randn(steps, pre_shape[0], dtype=torch.float64)
    # A non-empty starting state: the state after a warm-up sequence.
    state = rule.initial_state(p, pre[0], post[0], w)
    _, state = reference_weight_sequence(
        rule, pre[:10], post[:10], w, state, p, 1e-3, geometry, reward[:10]
    )
    extra = {"reward": reward} if rule.modulated else {}
    fast_dw, fast_state = rule.sequence(pre, post, w, state, p, 1e-3, geometry, **extra)
    ref_dw, ref_state = reference_weight_sequence(
        rule, pre, post, w, state, p, 1e-3, geometry, reward
    )
    assert ref_dw.abs().max() > 1e-3
    assert float((w + ref_dw).min()) >= 0.0 and float((w + ref_dw).max()) <= 1.0
    torch.testing.assert_close(fast_dw, ref_dw, rtol=1e-10, atol=1e-12)
    for fast, ref in zip(fast_state, ref_state, strict=True):
        torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-12)
