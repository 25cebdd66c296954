"""LI equations: first step by hand and the closed-form response without input."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.li import (
    LIParameters,
    LIState,
    li_initial_state,
    li_step,
    validate_li,
)

DT = 1e-3


def closed_form_voltage(n: int, v0: float, i0: float, p: LIParameters, dt: float = DT) -> float:
    r"""Euler recursion without input, solved: with :math:`a = dt/\tau_{syn}`, :math:`b =
    dt/\tau_{mem}`, :math:`i_k = i_0 (1-a)^k` and
    :math:`v_n - v_{leak} = (1-b)^n (v_0 - v_{leak}) + b\, i_0 ((1-a)^n - (1-b)^n) / (b - a)`."""
    a = dt * p.tau_syn_inv
    b = dt * p.tau_mem_inv
    decay_syn, decay_mem = (1 - a) ** n, (1 - b) ** n
    return p.v_leak + decay_mem * (v0 - p.v_leak) + b * i0 * (decay_syn - decay_mem) / (b - a)


@pytest.mark.parametrize("v_leak", [0.0, 0.3])
def test_free_response_matches_closed_form(v_leak: float) -> None:
    p = LIParameters(v_leak=v_leak)
    state = LIState(
        v=torch.tensor([0.5], dtype=torch.float64), i=torch.tensor([0.8], dtype=torch.float64)
    )
    zero = torch.zeros(1, dtype=torch.float64)
    for n in range(1, 61):
        v, state = li_step(zero, state, p, DT)
        assert float(v) == pytest.approx(closed_form_voltage(n, 0.5, 0.8, p), abs=1e-12)
        assert float(state.i) == pytest.approx(0.8 * (1 - DT * 200.0) ** n, abs=1e-12)


def test_first_step_by_hand() -> None:
    p = LIParameters(tau_syn_inv=100.0, tau_mem_inv=50.0, v_leak=-0.1)
    v, state = li_step(torch.tensor([1.5]), LIState(torch.tensor([0.2]), torch.tensor([0.4])), p)
    i = 0.4 + 1.5
    assert float(v) == pytest.approx(0.2 + 1e-3 * 50.0 * (-0.1 - 0.2 + i))
    assert float(state.v) == float(v)
    assert float(state.i) == pytest.approx(i * (1 - 1e-3 * 100.0))


def test_initial_state_rests_at_leak() -> None:
    state = li_initial_state(LIParameters(v_leak=0.25), torch.ones(2, 3, dtype=torch.float64))
    assert state.v.shape == (2, 3) and state.v.dtype == torch.float64
    assert torch.all(state.v == 0.25) and torch.all(state.i == 0)


@pytest.mark.parametrize(
    ("p", "dt", "message"),
    [
        (LIParameters(tau_mem_inv=-1.0), DT, r"tau_mem_inv must be > 0 \(got -1\)"),
        (LIParameters(tau_syn_inv=1000.0), DT, "dt \\* tau_syn_inv must be < 1"),
        (LIParameters(), 0.0, r"dt must be > 0 \(got 0\)"),
        (LIParameters(v_leak=float("nan")), DT, "v_leak must be finite"),
    ],
)
def test_invalid_parameters(p: LIParameters, dt: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_li(p, dt)
