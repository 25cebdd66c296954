"""LIFBox: closed-form relaxation, reset by value and by subtraction."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.lif_box import (
    LIFBoxParameters,
    LIFBoxState,
    lif_box_step,
    validate_lif_box,
)

DT = 1e-3


def test_constant_input_relaxes_in_closed_form() -> None:
    p = LIFBoxParameters(v_leak=0.1)
    x = torch.full((1,), 0.6, dtype=torch.float64)
    state = LIFBoxState(torch.tensor([-0.3], dtype=torch.float64))
    v_inf = 0.1 + 0.6
    for n in range(1, 101):
        z, state = lif_box_step(x, state, p, DT)
        assert float(z) == 0.0
        expected = v_inf + (-0.3 - v_inf) * (1 - DT * 100.0) ** n
        assert float(state.v) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("reset", "v_reset", "expected"),
    [("value", 0.0, 0.0), ("value", 0.2, 0.2), ("subtract", 0.0, 0.055), ("subtract", 0.2, 0.255)],
)
def test_reset_modes(reset: str, v_reset: float, expected: float) -> None:
    # v = 0.95 + 0.1 * (-0.95 + 2) = 1.055 -> spike
    p = LIFBoxParameters(reset=reset, v_reset=v_reset)
    state = LIFBoxState(torch.tensor([0.95], dtype=torch.float64))
    z, new = lif_box_step(torch.tensor([2.0], dtype=torch.float64), state, p, DT)
    assert float(z) == 1.0
    assert float(new.v) == pytest.approx(expected)


def test_subtract_reset_fires_more_at_high_drive() -> None:
    x = torch.full((1,), 8.0, dtype=torch.float64)
    counts = {}
    for reset in ("value", "subtract"):
        state, count = LIFBoxState(torch.zeros(1, dtype=torch.float64)), 0.0
        for _ in range(200):
            z, state = lif_box_step(x, state, LIFBoxParameters(reset=reset), DT)
            count += float(z)
        counts[reset] = count
    assert counts["subtract"] > counts["value"] > 0


@pytest.mark.parametrize(
    ("p", "message"),
    [
        (LIFBoxParameters(reset="zero"), r"reset must be one of value, subtract \(got 'zero'\)"),
        (LIFBoxParameters(tau_mem_inv=2000.0), r"dt \* tau_mem_inv must be < 1"),
        (LIFBoxParameters(v_reset=1.0), "v_th must be > v_reset"),
    ],
)
def test_invalid_parameters(p: LIFBoxParameters, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_lif_box(p, DT)
