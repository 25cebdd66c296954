"""Tsodyks-Markram short-term plasticity against the analytic steady state of a regular spike
train and a hand-computed second spike."""

from __future__ import annotations

import math

import pytest
import torch

from spikeexp.functional.plasticity import RULES
from spikeexp.functional.plasticity.stp import (
    TsodyksMarkramParameters,
    TsodyksMarkramState,
    steady_state,
    stp_step,
)

DEPRESSING = TsodyksMarkramParameters(U=0.45, tau_f_inv=1 / 0.05, tau_d_inv=1 / 0.75)
FACILITATING = TsodyksMarkramParameters(U=0.15, tau_f_inv=1 / 0.75, tau_d_inv=1 / 0.05)


def _regular_train(
    p: TsodyksMarkramParameters, interval_steps: int, spikes: int, dt: float
) -> list[tuple[float, float, float]]:
    """``(u after, x before, released)`` at every spike of a regular train."""
    state = TsodyksMarkramState(
        torch.zeros(1, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    )
    records = []
    for _ in range(spikes):
        for _ in range(interval_steps - 1):
            _, state = stp_step(torch.zeros(1, dtype=torch.float64), state, p, dt)
        released, after = stp_step(torch.ones(1, dtype=torch.float64), state, p, dt)
        u = float(after.u)
        records.append((u, float(released) / u, float(released)))
        state = after
    return records


@pytest.mark.parametrize("p", [DEPRESSING, FACILITATING], ids=["depressing", "facilitating"])
@pytest.mark.parametrize("interval", [0.02, 0.05])
@pytest.mark.parametrize("dt", [1e-3, 2.5e-4])
def test_regular_train_reaches_the_analytic_steady_state(
    p: TsodyksMarkramParameters, interval: float, dt: float
) -> None:
    records = _regular_train(p, round(interval / dt), 120, dt)
    u, x = steady_state(p.U, 1 / p.tau_f_inv, 1 / p.tau_d_inv, interval)
    assert records[-1][0] == pytest.approx(u, rel=1e-9)
    assert records[-1][1] == pytest.approx(x, rel=1e-9)
    assert records[-1][2] == pytest.approx(u * x, rel=1e-9)


def test_depression_and_facilitation_change_the_efficacy_in_opposite_directions() -> None:
    depressing = _regular_train(DEPRESSING, 20, 10, 1e-3)
    facilitating = _regular_train(FACILITATING, 20, 10, 1e-3)
    assert depressing[0][2] == pytest.approx(0.45)  # a rested synapse transmits U
    assert facilitating[0][2] == pytest.approx(0.15)
    assert depressing[-1][2] < 0.6 * depressing[0][2]
    assert facilitating[-1][2] > 1.5 * facilitating[0][2]


def test_second_spike_by_hand() -> None:
    records = _regular_train(DEPRESSING, 30, 2, 1e-3)
    lag = 0.030
    u_before = 0.45 * math.exp(-lag / 0.05)
    u_after = u_before + 0.45 * (1 - u_before)
    x_before = 1 - 0.45 * math.exp(-lag / 0.75)
    assert records[1][2] == pytest.approx(u_after * x_before, rel=1e-12)


def test_validation() -> None:
    rule = RULES["stp"]
    assert rule.kind == "transmission"
    with pytest.raises(ValueError, match=r"^U must be > 0 \(got 0\)$"):
        rule.prepare(TsodyksMarkramParameters(U=0.0), 1e-3)
    with pytest.raises(ValueError, match=r"^U must be in \[0, 1\] \(got 1.5\)$"):
        rule.prepare(TsodyksMarkramParameters(U=1.5), 1e-3)
    with pytest.raises(ValueError, match=r"^tau_d_inv must be > 0 \(got -2\)$"):
        rule.prepare(TsodyksMarkramParameters(tau_d_inv=-2.0), 1e-3)
