"""LIF equations against hand-computed values and the closed-form sub-threshold response."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.li import LIParameters
from spikeexp.functional.neurons.lif import (
    LIFParameters,
    LIFState,
    lif_initial_state,
    lif_step,
    validate_lif,
)

from .test_li import closed_form_voltage


def _run(x: float, steps: int, p: LIFParameters = LIFParameters()) -> list[tuple[float, float]]:
    state = LIFState(v=torch.zeros(1, dtype=torch.float64), i=torch.zeros(1, dtype=torch.float64))
    trace = []
    for _ in range(steps):
        z, state = lif_step(torch.ones(1, dtype=torch.float64) * x, state, p, 1e-3)
        trace.append((float(state.v), float(z)))
    return trace


def test_golden_sequence_constant_input() -> None:
    trace = _run(1.0, 9)
    voltages = [v for v, _ in trace]
    spikes = [z for _, z in trace]
    expected = [0.1, 0.27, 0.487, 0.7335, 0.99631, 0.0, 0.39505, 0.77169, 0.0]
    assert voltages == pytest.approx(expected, abs=1e-4)
    assert spikes == [0, 0, 0, 0, 0, 1, 0, 0, 1]


def test_first_step_by_hand() -> None:
    p = LIFParameters(tau_syn_inv=100.0, tau_mem_inv=50.0, v_leak=0.2)
    state = LIFState(v=torch.tensor([0.5]), i=torch.tensor([0.3]))
    z, new = lif_step(torch.tensor([2.0]), state, p, 1e-3)
    i = 0.3 + 2.0
    v = 0.5 + 1e-3 * 50.0 * ((0.2 - 0.5) + i)
    assert float(new.v) == pytest.approx(v)
    assert float(new.i) == pytest.approx(i * (1 - 1e-3 * 100.0))
    assert float(z) == 0.0


def test_threshold_is_strict() -> None:
    p = LIFParameters(tau_mem_inv=100.0)
    # v lands exactly on v_th = 1 after one step: 0 + 0.1 * (0 + 10) = 1.0 -> no spike.
    state = LIFState(v=torch.zeros(1, dtype=torch.float64), i=torch.zeros(1, dtype=torch.float64))
    z, new = lif_step(torch.full((1,), 10.0, dtype=torch.float64), state, p, 1e-3)
    assert float(new.v) == pytest.approx(1.0)
    assert float(z) == 0.0


def test_sub_threshold_free_response_matches_closed_form() -> None:
    p = LIFParameters(v_leak=0.1)
    state = LIFState(
        v=torch.tensor([0.6], dtype=torch.float64), i=torch.tensor([0.5], dtype=torch.float64)
    )
    zero = torch.zeros(1, dtype=torch.float64)
    li = LIParameters(p.tau_syn_inv, p.tau_mem_inv, p.v_leak)
    for n in range(1, 81):
        z, state = lif_step(zero, state, p, 1e-3)
        assert float(z) == 0.0
        assert float(state.v) == pytest.approx(closed_form_voltage(n, 0.6, 0.5, li), abs=1e-12)


def test_spike_resets_to_v_reset() -> None:
    p = LIFParameters(v_reset=-0.5)
    state = LIFState(v=torch.tensor([0.99]), i=torch.tensor([2.0]))
    z, new = lif_step(torch.zeros(1), state, p, 1e-3)
    # v = 0.99 + 0.1 * (-0.99 + 2.0) = 1.091 > 1 -> spike, v -> v_reset; i decays as usual
    assert float(z) == 1.0
    assert float(new.v) == pytest.approx(-0.5)
    assert float(new.i) == pytest.approx(2.0 * 0.8)


def test_detach_reset_cuts_the_reset_gradient() -> None:
    # i = 3, v = 0.95 + 0.1 * (3 - 0.95) = 1.155 -> spike; v_new = (1 - z) v + z * 0.
    state = LIFState(
        v=torch.tensor([0.95], dtype=torch.float64), i=torch.zeros(1, dtype=torch.float64)
    )
    grads = {}
    for detach in (False, True):
        x = torch.tensor([3.0], dtype=torch.float64, requires_grad=True)
        lif_step(x, state, LIFParameters(), 1e-3, detach_reset=detach)[1].v.sum().backward()
        grads[detach] = float(x.grad)
    # detached: dv_new/dx = (1 - z) dv/dx = 0; attached: adds -v * surrogate'(v - 1) * dv/dx
    assert grads[True] == 0.0
    assert grads[False] == pytest.approx(-1.155 / (100 * 0.155 + 1) ** 2 * 0.1)


def test_initial_state_shape_dtype() -> None:
    state = lif_initial_state(LIFParameters(v_leak=0.1), torch.ones(4, 2, dtype=torch.float64))
    assert state.v.shape == state.i.shape == (4, 2)
    assert state.v.dtype == torch.float64
    assert torch.all(state.v == 0.1) and torch.all(state.i == 0)


@pytest.mark.parametrize(
    ("p", "dt", "message"),
    [
        (LIFParameters(tau_mem_inv=-1.0), 1e-3, r"tau_mem_inv must be > 0 \(got -1\)"),
        (LIFParameters(tau_syn_inv=0.0), 1e-3, r"tau_syn_inv must be > 0"),
        (LIFParameters(tau_mem_inv=1000.0), 1e-3, r"dt \* tau_mem_inv must be < 1"),
        (LIFParameters(), -1e-3, r"dt must be > 0"),
        (LIFParameters(v_th=0.0, v_reset=0.0), 1e-3, "v_th must be > v_reset"),
        (LIFParameters(method="bogus"), 1e-3, "method must be one of super, sigmoid"),
        (LIFParameters(tau_mem_inv=torch.tensor([50.0, -2.0])), 1e-3, "tau_mem_inv must be > 0"),
    ],
)
def test_invalid_parameters(p: LIFParameters, dt: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_lif(p, dt)
