r"""Leaky integrator (LI): the non-spiking readout neuron, forward Euler.

.. math::
    i &\leftarrow i + x \\
    v &\leftarrow v + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v) + i\big) \\
    i &\leftarrow i - \Delta t\, \tau_{syn}^{-1}\, i

The output is :math:`v`. Same update and defaults as :mod:`spikeexp.functional.neurons.lif`
without threshold and reset, so below threshold LI and LIF coincide.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.fused.li import li_fused_sequence
from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.validation import check_dt, check_finite, check_rate_constant

Param = float | torch.Tensor


class LIParameters(NamedTuple):
    """LI parameters (float or per-neuron tensor).

    Attributes:
        tau_syn_inv: inverse synaptic time constant (1/s).
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
    """

    tau_syn_inv: Param = 200.0
    tau_mem_inv: Param = 100.0
    v_leak: Param = 0.0


class LIState(NamedTuple):
    """LI state: membrane voltage ``v`` and synaptic current ``i``."""

    v: torch.Tensor
    i: torch.Tensor


def li_step(
    x: torch.Tensor,
    state: LIState,
    p: LIParameters = LIParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, LIState]:
    """One Euler step (module docstring); returns ``(v, state)``. ``detach_reset`` is unused."""
    i = state.i + x
    v = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + i)
    i = i - dt * p.tau_syn_inv * i
    return v, LIState(v, i)


def li_initial_state(p: LIParameters, like: torch.Tensor) -> LIState:
    """Resting state: ``v = v_leak``, ``i = 0``."""
    zeros = torch.zeros_like(like)
    return LIState(v=zeros + p.v_leak, i=zeros)


def validate_li(p: LIParameters, dt: float) -> None:
    """Positive time constants and a stable Euler step."""
    check_dt(dt)
    check_rate_constant("tau_syn_inv", p.tau_syn_inv, dt)
    check_rate_constant("tau_mem_inv", p.tau_mem_inv, dt)
    check_finite("v_leak", p.v_leak)


MODEL = NeuronModel(
    name="li",
    prefix="LI",
    parameters=LIParameters,
    state=LIState,
    step=li_step,
    initial_state=li_initial_state,
    validate=validate_li,
    spiking=False,
    rate_constants=("tau_syn_inv", "tau_mem_inv"),
    fused_sequence=li_fused_sequence,
)
