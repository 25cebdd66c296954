"""Triplet STDP against a hand-computed pre-post-post-pre pattern, its reduction to pair STDP,
and the Pfister & Gerstner presets."""

from __future__ import annotations

import math

import pytest
import torch

from spikeexp.functional.plasticity import RULES
from spikeexp.functional.plasticity.stdp import STDPParameters, STDPState, stdp_step
from spikeexp.functional.plasticity.triplet import (
    PRESETS,
    TripletParameters,
    TripletState,
    resolve_triplet,
    triplet_step,
)

from .helpers import poisson

CUSTOM = TripletParameters(
    preset="custom",
    a2_plus=0.01,
    a3_plus=0.02,
    a2_minus=0.005,
    a3_minus=0.003,
    tau_plus_inv=1 / 0.020,
    tau_x_inv=1 / 0.100,
    tau_minus_inv=1 / 0.040,
    tau_y_inv=1 / 0.150,
    interaction="all_to_all",
    hard_bounds=False,
)


def _run(pre_steps: list[int], post_steps: list[int], steps: int, p: TripletParameters) -> float:
    zero = torch.zeros(1, 1, dtype=torch.float64)
    state = TripletState(zero, zero, zero, zero)
    w = torch.full((1, 1), 0.5, dtype=torch.float64)
    total = 0.0
    for t in range(steps):
        z_pre = torch.full_like(zero, float(t in pre_steps))
        z_post = torch.full_like(zero, float(t in post_steps))
        dw, state = triplet_step(z_pre, z_post, w, state, p, 1e-3)
        total += float(dw)
    return total


def test_pre_post_post_pre_by_hand() -> None:
    """pre at 0 ms, post at 10 and 30 ms, pre at 45 ms (dt = 1 ms)."""
    first_post = math.exp(-10 / 20) * 0.01  # no earlier post spike: o2 = 0
    second_post = math.exp(-30 / 20) * (0.01 + 0.02 * math.exp(-20 / 150))
    last_pre = (math.exp(-35 / 40) + math.exp(-15 / 40)) * (0.005 + 0.003 * math.exp(-45 / 100))
    expected = first_post + second_post - last_pre
    assert _run([0, 45], [10, 30], 60, CUSTOM) == pytest.approx(expected, rel=1e-12)


def test_triplet_terms_need_earlier_spikes_of_the_same_neuron() -> None:
    """One pre and one post spike: only the pair terms act."""
    assert _run([0], [10], 20, CUSTOM) == pytest.approx(0.01 * math.exp(-0.5), rel=1e-12)
    assert _run([10], [0], 20, CUSTOM) == pytest.approx(-0.005 * math.exp(-10 / 40), rel=1e-12)


def test_without_triplet_terms_it_is_pair_stdp() -> None:
    p = CUSTOM._replace(a3_plus=0.0, a3_minus=0.0, weight_dependence="multiplicative")
    pair = STDPParameters(
        a_plus=0.01,
        a_minus=0.005,
        tau_pre_inv=p.tau_plus_inv,
        tau_post_inv=p.tau_minus_inv,
        weight_dependence="multiplicative",
        hard_bounds=False,
    )
    pre = poisson((40, 3, 5), 0.2, seed=3)
    post = poisson((40, 3, 4), 0.2, seed=4)
    w = torch.rand(4, 5, dtype=torch.float64)
    triplet_state = TripletState(
        torch.zeros(3, 5, dtype=torch.float64),
        torch.zeros(3, 5, dtype=torch.float64),
        torch.zeros(3, 4, dtype=torch.float64),
        torch.zeros(3, 4, dtype=torch.float64),
    )
    pair_state = STDPState(triplet_state.r1, triplet_state.o1)
    for t in range(40):
        dw_triplet, triplet_state = triplet_step(pre[t], post[t], w, triplet_state, p, 1e-3)
        dw_pair, pair_state = stdp_step(pre[t], post[t], w, pair_state, pair, 1e-3)
        torch.testing.assert_close(dw_triplet, dw_pair, rtol=1e-12, atol=1e-15)


def test_presets_are_pfister_gerstner_table_4() -> None:
    p = resolve_triplet(TripletParameters())
    assert p.preset == "visual_cortex_all_to_all"
    assert (p.a2_plus, p.a3_plus, p.a2_minus, p.a3_minus) == (5e-10, 6.2e-3, 7e-3, 2.3e-4)
    assert 1 / p.tau_plus_inv == pytest.approx(16.8e-3)
    assert 1 / p.tau_minus_inv == pytest.approx(33.7e-3)
    assert 1 / p.tau_x_inv == pytest.approx(101e-3)
    assert 1 / p.tau_y_inv == pytest.approx(125e-3)
    nearest = PRESETS["visual_cortex_nearest"]
    assert nearest.interaction == "nearest"
    assert 1 / nearest.tau_x_inv == pytest.approx(714e-3)
    overridden = resolve_triplet(TripletParameters(a3_plus=0.01))
    assert overridden.a3_plus == 0.01 and overridden.a2_minus == 7e-3


def test_custom_preset_needs_every_field() -> None:
    with pytest.raises(ValueError, match=r"^a2_plus must be set when preset is 'custom'"):
        RULES["triplet"].prepare(TripletParameters(preset="custom"), 1e-3)
    with pytest.raises(ValueError, match=r"^preset must be one of visual_cortex_all_to_all"):
        RULES["triplet"].prepare(TripletParameters(preset="hippocampus"), 1e-3)
    with pytest.raises(ValueError, match=r"^tau_y_inv must be > 0 \(got -1\)$"):
        RULES["triplet"].prepare(TripletParameters(tau_y_inv=-1.0), 1e-3)
