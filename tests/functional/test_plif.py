"""PLIF: Fang et al.'s update, and the sigmoid-parametrised learnable time constant."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.neurons.plif import PLIFParameters, PLIFState, plif_step, validate_plif
from spikeexp.module import PLIF, PLIFCell

DT = 1e-3


def test_step_is_fangs_update() -> None:
    # k = dt * tau_mem_inv = 0.5; v + k (x - (v - v_reset)) = 0.5 + 0.5 * (0.4 - 0.5) = 0.45
    z, state = plif_step(
        torch.tensor([0.4], dtype=torch.float64),
        PLIFState(torch.tensor([0.5], dtype=torch.float64)),
    )
    assert float(z) == 0.0 and float(state.v) == pytest.approx(0.45)
    # 0.5 + 0.5 * (2 - 0.5) = 1.25 -> spike, reset to v_reset
    z, state = plif_step(
        torch.tensor([2.0], dtype=torch.float64),
        PLIFState(torch.tensor([0.5], dtype=torch.float64)),
    )
    assert float(z) == 1.0 and float(state.v) == 0.0


def test_learnable_time_constant_is_a_logit() -> None:
    cell = PLIFCell(learnable=("tau_mem_inv",))
    assert [name for name, _ in cell.named_parameters()] == ["tau_mem_inv_logit"]
    assert cell.tau_mem_inv_logit.item() == pytest.approx(0.0)  # logit(dt * 500) = logit(0.5)
    assert cell.p.tau_mem_inv.item() == pytest.approx(500.0)


@pytest.mark.parametrize("logit", [-60.0, 60.0])
def test_learnable_rate_stays_inside_the_stable_range(logit: float) -> None:
    cell = PLIFCell(learnable=("tau_mem_inv",))
    with torch.no_grad():
        cell.tau_mem_inv_logit.fill_(logit)
    rate = cell.p.tau_mem_inv.item()
    assert 0.0 <= rate <= 1.0 / DT
    assert torch.isfinite(cell(torch.ones(3))[1].v).all()


def test_per_neuron_time_constants_learn() -> None:
    layer = PLIF(tau_mem_inv=torch.full((4,), 200.0), learnable=("tau_mem_inv",))
    assert layer.tau_mem_inv_logit.shape == (4,)
    x = torch.linspace(0.5, 3.0, 4).expand(20, 2, 4)
    spikes, _ = layer(x)
    spikes.sum().backward()
    grad = layer.tau_mem_inv_logit.grad
    assert grad is not None and grad.shape == (4,) and bool((grad != 0).any())


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match=r"dt \* tau_mem_inv must be < 1"):
        validate_plif(PLIFParameters(tau_mem_inv=1000.0), DT)
    with pytest.raises(ValueError, match="tau_mem_inv must be > 0"):
        validate_plif(PLIFParameters(tau_mem_inv=0.0), DT)
    with pytest.raises(ValueError, match="v_th must be > v_reset"):
        validate_plif(PLIFParameters(v_reset=1.5), DT)
