"""LSNN equations, both adaptation conventions, against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.lif import LIFParameters, LIFState, lif_step
from spikeexp.functional.neurons.lsnn import (
    LSNNParameters,
    LSNNState,
    lsnn_initial_state,
    lsnn_step,
    validate_lsnn,
)

DT = 1e-3


def _state(v: float, i: float, b: float) -> LSNNState:
    return LSNNState(*(torch.tensor([value], dtype=torch.float64) for value in (v, i, b)))


def test_default_adaptation_time_constant_is_1_2_seconds() -> None:
    assert 1.0 / LSNNParameters().tau_adapt_inv == pytest.approx(1.2)


def test_initial_state_per_convention() -> None:
    like = torch.ones(3, 2, dtype=torch.float64)
    norse = lsnn_initial_state(LSNNParameters(v_th=0.8, v_leak=0.1), like)
    bellec = lsnn_initial_state(LSNNParameters(v_th=0.8, adaptation="bellec"), like)
    assert torch.all(norse.b == 0.8) and torch.all(norse.v == 0.1) and torch.all(norse.i == 0)
    assert torch.all(bellec.b == 0.0)
    assert norse.b.shape == (3, 2) and norse.b.dtype == torch.float64


def test_norse_spike_raises_threshold_by_beta() -> None:
    # i = 1 + 1 = 2, v = 0.95 + 0.1 * (2 - 0.95) = 1.055 > b = 1 -> spike, b -> 1 + 1.8.
    z, state = lsnn_step(torch.ones(1, dtype=torch.float64), _state(0.95, 1.0, 1.0))
    assert float(z) == 1.0
    assert float(state.v) == 0.0
    assert float(state.i) == pytest.approx(2.0 * 0.8)
    assert float(state.b) == pytest.approx(1.0 + 1.8)


def test_norse_threshold_blocks_a_spike_lif_would_fire() -> None:
    # Same voltage 1.055 but the threshold b = 2.8 decays only to 2.8 - dt/1.2 * 1.8.
    z, state = lsnn_step(torch.ones(1, dtype=torch.float64), _state(0.95, 1.0, 2.8))
    assert float(z) == 0.0
    assert float(state.v) == pytest.approx(1.055)
    assert float(state.b) == pytest.approx(2.8 + DT / 1.2 * (1.0 - 2.8))


def test_norse_threshold_relaxes_to_v_th_in_closed_form() -> None:
    p = LSNNParameters(tau_adapt_inv=5.0)
    state = _state(0.0, 0.0, 2.5)
    zero = torch.zeros(1, dtype=torch.float64)
    for n in range(1, 201):
        _, state = lsnn_step(zero, state, p, DT)
        assert float(state.b) == pytest.approx(1.0 + 1.5 * (1 - DT * 5.0) ** n, abs=1e-12)


def test_bellec_threshold_is_v_th_plus_beta_b() -> None:
    p = LSNNParameters(adaptation="bellec", beta=1.8)
    # v = 1.055; threshold 1 + 1.8 * 0.1 = 1.18 -> no spike; b decays by dt/1.2 of itself.
    z, state = lsnn_step(torch.ones(1, dtype=torch.float64), _state(0.95, 1.0, 0.1), p)
    assert float(z) == 0.0
    assert float(state.b) == pytest.approx(0.1 * (1 - DT / 1.2))
    # with b = 0 the threshold is v_th: spike, and b jumps by dt * tau_adapt_inv.
    z, state = lsnn_step(torch.ones(1, dtype=torch.float64), _state(0.95, 1.0, 0.0), p)
    assert float(z) == 1.0
    assert float(state.v) == 0.0
    assert float(state.b) == pytest.approx(DT / 1.2)


def test_bellec_trace_decays_in_closed_form() -> None:
    p = LSNNParameters(adaptation="bellec", tau_adapt_inv=3.0)
    state = _state(0.0, 0.0, 0.4)
    zero = torch.zeros(1, dtype=torch.float64)
    for n in range(1, 201):
        _, state = lsnn_step(zero, state, p, DT)
        assert float(state.b) == pytest.approx(0.4 * (1 - DT * 3.0) ** n, abs=1e-12)


@pytest.mark.parametrize("adaptation", ["norse", "bellec"])
def test_without_adaptation_it_is_lif(adaptation: str) -> None:
    p = LSNNParameters(beta=0.0, adaptation=adaptation)
    x = torch.rand(100, 5, dtype=torch.float64) * 3
    state = lsnn_initial_state(p, x[0])
    lif_state = LIFState(state.v, state.i)
    spikes = 0.0
    for x_t in x:
        z, state = lsnn_step(x_t, state, p, DT)
        z_lif, lif_state = lif_step(x_t, lif_state, LIFParameters(), DT)
        assert torch.equal(z, z_lif)
        assert torch.equal(state.v, lif_state.v)
        spikes += float(z.sum())
    assert spikes > 20


@pytest.mark.parametrize(
    ("p", "lif_fraction"),
    [(LSNNParameters(), 0.5), (LSNNParameters(adaptation="bellec", beta=180.0), 0.8)],
)
def test_adaptation_lowers_the_firing_rate(p: LSNNParameters, lif_fraction: float) -> None:
    x = torch.full((300, 1), 3.0, dtype=torch.float64)
    state = lsnn_initial_state(p, x[0])
    lif_state = LIFState(state.v, state.i)
    spikes = lif_spikes = 0.0
    for x_t in x:
        z, state = lsnn_step(x_t, state, p, DT)
        z_lif, lif_state = lif_step(x_t, lif_state, LIFParameters(), DT)
        spikes, lif_spikes = spikes + float(z), lif_spikes + float(z_lif)
    assert lif_spikes > 50
    assert 0 < spikes < lif_fraction * lif_spikes


@pytest.mark.parametrize(
    ("p", "message"),
    [
        (LSNNParameters(adaptation="maass"), r"adaptation must be one of norse, bellec \(got "),
        (LSNNParameters(tau_adapt_inv=-1.0), r"tau_adapt_inv must be > 0"),
        (LSNNParameters(tau_adapt_inv=1e3), r"dt \* tau_adapt_inv must be < 1"),
        (LSNNParameters(beta=-0.1), r"beta must be >= 0 \(got -0.1\)"),
        (LSNNParameters(v_th=-1.0), r"v_th must be > v_reset"),
        (LSNNParameters(method="nope"), "method must be one of"),
    ],
)
def test_invalid_parameters(p: LSNNParameters, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_lsnn(p, DT)
