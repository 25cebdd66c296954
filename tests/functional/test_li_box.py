"""LIBox: the synapse-free leaky integrator against its closed form and by hand."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.li_box import (
    LIBoxParameters,
    LIBoxState,
    li_box_initial_state,
    li_box_step,
    validate_li_box,
)
from spikeexp.module import LIBox

DT = 1e-3


def test_free_response_matches_closed_form() -> None:
    p = LIBoxParameters(tau_mem_inv=80.0, v_leak=0.2)
    state = LIBoxState(torch.tensor([0.9], dtype=torch.float64))
    zero = torch.zeros(1, dtype=torch.float64)
    for n in range(1, 51):
        v, state = li_box_step(zero, state, p, DT)
        assert float(v) == pytest.approx(0.2 + 0.7 * (1 - DT * 80.0) ** n, abs=1e-12)


def test_first_step_by_hand_and_output_is_the_voltage() -> None:
    p = LIBoxParameters(tau_mem_inv=50.0, v_leak=-0.1)
    v, state = li_box_step(torch.tensor([1.5]), LIBoxState(torch.tensor([0.2])), p, DT)
    assert float(v) == pytest.approx(0.2 + 1e-3 * 50.0 * (-0.1 - 0.2 + 1.5))
    assert float(state.v) == float(v)


def test_sequence_module_rests_at_leak_and_integrates() -> None:
    module = LIBox(v_leak=0.25)
    assert torch.all(li_box_initial_state(module.p, torch.ones(2)).v == 0.25)
    v, state = module(torch.ones(100, 3, 2))
    assert v.shape == (100, 3, 2) and torch.all(v[1:] >= v[:-1])
    assert float(v[-1, 0, 0]) == pytest.approx(1.25 - 1.0 * 0.9**100, abs=1e-6)
    assert torch.equal(state.v, v[-1])


@pytest.mark.parametrize(
    ("p", "dt", "message"),
    [
        (LIBoxParameters(tau_mem_inv=-1.0), DT, r"tau_mem_inv must be > 0 \(got -1\)"),
        (LIBoxParameters(tau_mem_inv=1000.0), DT, r"dt \* tau_mem_inv must be < 1"),
        (LIBoxParameters(v_leak=float("inf")), DT, "v_leak must be finite"),
    ],
)
def test_invalid_parameters(p: LIBoxParameters, dt: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_li_box(p, dt)
