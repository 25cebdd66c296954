"""AdEx: steps by hand, spike-triggered and sub-threshold adaptation."""

from __future__ import annotations

import math

import pytest
import torch

from spikeexp.functional.neurons.lif_adex import (
    LIFAdExParameters,
    LIFAdExState,
    lif_adex_initial_state,
    lif_adex_step,
    validate_lif_adex,
)

DT = 1e-3


def _state(v: float, i: float, a: float) -> LIFAdExState:
    return LIFAdExState(*(torch.tensor([value], dtype=torch.float64) for value in (v, i, a)))


def test_first_step_by_hand() -> None:
    z, state = lif_adex_step(torch.tensor([1.0], dtype=torch.float64), _state(0.5, 0.2, 0.1))
    i = 1.2
    exponential = 0.5 * math.exp((0.5 - 1.0) / 0.5)
    assert float(z) == 0.0
    assert float(state.v) == pytest.approx(0.5 + 0.1 * (-0.5 + exponential + i - 0.1))
    assert float(state.a) == pytest.approx(0.1 + DT * 2.0 * (4.0 * 0.5 - 0.1))
    assert float(state.i) == pytest.approx(i * 0.8)


def test_spike_resets_and_jumps_adaptation() -> None:
    z, state = lif_adex_step(torch.zeros(1).double(), _state(0.99, 3.0, 0.0))
    assert float(z) == 1.0
    assert float(state.v) == 0.0
    assert float(state.a) == pytest.approx(DT * 2.0 * 4.0 * 0.99 + 1.02)


def test_exponential_term_pulls_towards_threshold() -> None:
    # Near v_th the exponential adds drive: AdEx rises faster than with a tiny slope factor.
    near = _state(0.9, 0.0, 0.0)
    _, adex = lif_adex_step(torch.zeros(1).double(), near, LIFAdExParameters())
    _, flat = lif_adex_step(torch.zeros(1).double(), near, LIFAdExParameters(delta_T=1e-3))
    assert float(adex.v - flat.v) == pytest.approx(0.1 * 0.5 * math.exp(-0.2), rel=1e-6)


def test_adaptation_lowers_the_firing_rate() -> None:
    x = torch.full((1,), 2.0, dtype=torch.float64)
    counts = []
    for p in (LIFAdExParameters(), LIFAdExParameters(adaptation_current=0.0, adaptation_spike=0.0)):
        state, count = lif_adex_initial_state(p, x), 0.0
        for _ in range(300):
            z, state = lif_adex_step(x, state, p, DT)
            count += float(z)
        counts.append(count)
    assert 0 < counts[0] < 0.5 * counts[1]


@pytest.mark.parametrize(
    ("p", "message"),
    [
        (LIFAdExParameters(delta_T=0.0), r"delta_T must be > 0 \(got 0\)"),
        (LIFAdExParameters(tau_ada_inv=-2.0), r"tau_ada_inv must be > 0"),
        (LIFAdExParameters(tau_mem_inv=1e4), r"dt \* tau_mem_inv must be < 1"),
        (LIFAdExParameters(v_reset=2.0), "v_th must be > v_reset"),
    ],
)
def test_invalid_parameters(p: LIFAdExParameters, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_lif_adex(p, DT)
