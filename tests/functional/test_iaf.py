"""IAF: pure integration, strict threshold, reset."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.iaf import IAFParameters, IAFState, iaf_step, validate_iaf


def test_integrates_without_leak_and_resets() -> None:
    state = IAFState(torch.zeros(1, dtype=torch.float64))
    x = torch.full((1,), 0.3, dtype=torch.float64)
    trace = []
    for _ in range(8):
        z, state = iaf_step(x, state, IAFParameters(v_reset=-0.2))
        trace.append((float(state.v), float(z)))
    # 0.3, 0.6, 0.9, 1.2 > 1 -> spike, reset to -0.2, then -0.2 + 0.3 k ...
    expected = [(0.3, 0), (0.6, 0), (0.9, 0), (-0.2, 1), (0.1, 0), (0.4, 0), (0.7, 0), (1.0, 0)]
    assert [v for v, _ in trace] == pytest.approx([v for v, _ in expected])
    assert [z for _, z in trace] == [z for _, z in expected]


def test_voltage_holds_without_input() -> None:
    state = IAFState(torch.tensor([0.7]))
    for _ in range(50):
        z, state = iaf_step(torch.zeros(1), state)
    assert float(state.v) == pytest.approx(0.7)
    assert float(z) == 0.0


def test_threshold_is_strict_and_dt_does_not_enter() -> None:
    state = IAFState(torch.tensor([0.5], dtype=torch.float64))
    x = torch.tensor([0.5], dtype=torch.float64)
    for dt in (1e-3, 1e-4):
        z, new = iaf_step(x, state, IAFParameters(), dt)
        assert float(z) == 0.0 and float(new.v) == 1.0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="v_th must be > v_reset"):
        validate_iaf(IAFParameters(v_th=0.0, v_reset=0.5), 1e-3)
    with pytest.raises(ValueError, match="dt must be > 0"):
        validate_iaf(IAFParameters(), 0.0)
    with pytest.raises(ValueError, match="method must be one of"):
        validate_iaf(IAFParameters(method="heaviside"), 1e-3)
