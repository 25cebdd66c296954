"""LIF equations against hand-computed values."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.lif import LIFParameters, LIFState, lif_step


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
