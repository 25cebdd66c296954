"""Pair STDP: the window against A exp(-|dt|/tau), soft and hard bounds, nearest-spike traces,
the conv2d rule against the dense rule on unfolded patches, and parameter validation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from spikeexp.functional.plasticity import RULES, Conv2d
from spikeexp.functional.plasticity.stdp import STDPParameters, STDPState, stdp_step

from .helpers import pair, poisson

P = STDPParameters(a_plus=0.01, a_minus=0.012, tau_pre_inv=1 / 0.017, tau_post_inv=1 / 0.034)


def _total_change(
    pre: torch.Tensor, post: torch.Tensor, w: float, p: STDPParameters, dt: float, online: bool
) -> float:
    """Run ``stdp_step`` over ``[T, 1, 1]`` trains; weights updated each step when ``online``."""
    weight = torch.full((1, 1), w, dtype=torch.float64)
    start = weight.clone()
    state = STDPState(
        torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    )
    total = torch.zeros_like(weight)
    for z_pre, z_post in zip(pre, post, strict=True):
        dw, state = stdp_step(z_pre, z_post, weight, state, p, dt)
        total += dw
        if online:
            weight = weight + dw
    return float(weight - start) if online else float(total)


@pytest.mark.parametrize("lag_ms", [-40, -17, -3, -1, 1, 2, 9, 25, 60])
@pytest.mark.parametrize("dt", [1e-3, 2.5e-4])
def test_window_is_a_exp_minus_lag_over_tau(lag_ms: int, dt: float) -> None:
    steps_per_ms = round(1e-3 / dt)
    start = 100 * steps_per_ms
    pre, post = pair(start, start + lag_ms * steps_per_ms, 300 * steps_per_ms)
    lag = lag_ms * 1e-3
    causal = 0.01 * math.exp(-lag / 0.017)
    anti_causal = -0.012 * math.exp(lag / 0.034)
    expected = causal if lag > 0 else anti_causal
    assert _total_change(pre, post, 0.5, P, dt, online=False) == pytest.approx(expected, rel=1e-9)


def test_coincident_spikes_count_both_ways() -> None:
    pre, post = pair(5, 5, 10)
    assert _total_change(pre, post, 0.5, P, 1e-3, online=False) == pytest.approx(0.01 - 0.012)


def test_all_to_all_adds_pairs_nearest_keeps_the_latest() -> None:
    pre = torch.zeros(30, 1, 1, dtype=torch.float64)
    post = torch.zeros_like(pre)
    pre[0] = pre[10] = 1.0
    post[20] = 1.0
    all_pairs = 0.01 * (math.exp(-0.020 / 0.017) + math.exp(-0.010 / 0.017))
    assert _total_change(pre, post, 0.5, P, 1e-3, online=False) == pytest.approx(all_pairs)
    nearest = P._replace(interaction="nearest")
    latest = 0.01 * math.exp(-0.010 / 0.017)
    assert _total_change(pre, post, 0.5, nearest, 1e-3, online=False) == pytest.approx(latest)


def test_multiplicative_potentiation_approaches_w_max_geometrically() -> None:
    """Each causal pair (lag 5 ms) closes the gap to w_max by the factor 1 - A+ exp(-5/17)."""
    p = P._replace(weight_dependence="multiplicative", hard_bounds=False, a_plus=0.3)
    pre, post = pair(0, 5, 100)
    repeats = 12
    trains_pre = pre.repeat(repeats, 1, 1)
    trains_post = post.repeat(repeats, 1, 1)
    # 100 steps between repetitions: the traces of one pairing are negligible at the next (<3e-3
    # relative), so compare against the isolated-pair closed form with matching tolerance.
    w0 = 0.2
    w = w0 + _total_change(trains_pre, trains_post, w0, p, 1e-3, online=True)
    shrink = 1 - 0.3 * math.exp(-0.005 / 0.017)
    assert w == pytest.approx(1 - (1 - w0) * shrink**repeats, rel=5e-3)
    assert w < 1.0


def test_multiplicative_depression_scales_with_distance_to_w_min() -> None:
    p = P._replace(weight_dependence="multiplicative", w_min=0.1)
    pre, post = pair(8, 0, 20)
    for w in (0.1, 0.4, 0.9):
        expected = -0.012 * (w - 0.1) * math.exp(-0.008 / 0.034)
        assert _total_change(pre, post, w, p, 1e-3, online=False) == pytest.approx(expected)


def test_hard_bounds_cut_the_change_at_the_bounds() -> None:
    strong = P._replace(a_plus=0.5, a_minus=0.5, w_min=-0.2, w_max=0.7)
    ltp_pre, ltp_post = pair(0, 1, 5)
    ltd_pre, ltd_post = pair(1, 0, 5)
    assert 0.6 + _total_change(ltp_pre, ltp_post, 0.6, strong, 1e-3, online=True) == 0.7
    assert -0.1 + _total_change(ltd_pre, ltd_post, -0.1, strong, 1e-3, online=True) == -0.2
    free = strong._replace(hard_bounds=False)
    assert 0.6 + _total_change(ltp_pre, ltp_post, 0.6, free, 1e-3, online=True) > 0.7


def _unfold_steps(spikes: torch.Tensor, kernel: int, conv: Conv2d) -> torch.Tensor:
    """``[T, B, C, H, W]`` -> one dense sample per patch ``[T, B * L, C * k * k]``."""
    steps, batch = spikes.shape[:2]
    patches = F.unfold(
        spikes.flatten(0, 1), kernel, padding=conv.padding, stride=conv.stride, dilation=1
    )
    return patches.transpose(1, 2).reshape(steps, batch * patches.shape[2], -1)


@pytest.mark.parametrize("dependence", ["additive", "multiplicative"])
@pytest.mark.parametrize(("stride", "padding"), [(1, 0), (2, 1)])
def test_conv2d_rule_equals_dense_rule_on_unfolded_patches(
    dependence: str, stride: int, padding: int
) -> None:
    steps, batch, channels, out_channels, kernel, size = 12, 2, 3, 4, 3, 7
    conv = Conv2d(stride=stride, padding=padding)
    pre = poisson((steps, batch, channels, size, size), 0.3, seed=1)
    out_size = (size + 2 * padding - kernel) // stride + 1
    post = poisson((steps, batch, out_channels, out_size, out_size), 0.2, seed=2)
    w = torch.rand(out_channels, channels, kernel, kernel, dtype=torch.float64)
    p = P._replace(weight_dependence=dependence, a_plus=0.05, a_minus=0.04)

    state = STDPState(torch.zeros_like(pre[0]), torch.zeros_like(post[0]))
    conv_total = torch.zeros_like(w)
    for t in range(steps):
        dw, state = stdp_step(pre[t], post[t], w, state, p._replace(hard_bounds=False), 1e-3, conv)
        conv_total += dw

    dense_pre = _unfold_steps(pre, kernel, conv)
    dense_post = post.flatten(3).transpose(2, 3).reshape(steps, -1, out_channels)
    dense_w = w.reshape(out_channels, -1)
    state = STDPState(torch.zeros_like(dense_pre[0]), torch.zeros_like(dense_post[0]))
    dense_total = torch.zeros_like(dense_w)
    for t in range(steps):
        dw, state = stdp_step(
            dense_pre[t], dense_post[t], dense_w, state, p._replace(hard_bounds=False), 1e-3
        )
        dense_total += dw
    assert conv_total.abs().max() > 0.1
    torch.testing.assert_close(conv_total, dense_total.reshape(w.shape), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"a_plus": float("nan")}, "a_plus must be finite (got nan)"),
        ({"tau_pre_inv": -5.0}, "tau_pre_inv must be > 0 (got -5)"),
        ({"tau_post_inv": 0.0}, "tau_post_inv must be > 0 (got 0)"),
        ({"w_min": 1.0, "w_max": 1.0}, "w_max must be > w_min (got w_min=1.0, w_max=1.0)"),
        (
            {"weight_dependence": "power"},
            "weight_dependence must be one of additive, multiplicative (got 'power')",
        ),
        ({"interaction": "first"}, "interaction must be one of all_to_all, nearest (got 'first')"),
        ({"hard_bounds": "yes"}, "hard_bounds must be true or false (got 'yes')"),
    ],
)
def test_validation_names_the_parameter(override: dict, message: str) -> None:
    rule = RULES["stdp"]
    with pytest.raises(ValueError) as caught:
        rule.prepare(STDPParameters()._replace(**override), 1e-3)
    assert str(caught.value) == message
    assert "\n" not in str(caught.value)


def test_a_parameter_tuple_of_another_rule_is_refused() -> None:
    from spikeexp.functional.plasticity.stp import TsodyksMarkramParameters

    with pytest.raises(ValueError, match="the stdp rule needs STDPParameters"):
        RULES["stdp"].prepare(TsodyksMarkramParameters(), 1e-3)
