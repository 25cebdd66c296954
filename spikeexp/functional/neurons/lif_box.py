r"""Leaky integrate-and-fire without synaptic current ("box" synapse), forward Euler.

The input :math:`x` drives the membrane directly (no current state):

.. math::
    v &\leftarrow v + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v) + x\big) \\
    z &= H(v - v_{th}) \quad (\text{strictly greater})

then the reset, chosen by ``reset``:

* ``"value"``: :math:`v \leftarrow (1 - z)\, v + z\, v_{reset}` (as LIF);
* ``"subtract"``: :math:`v \leftarrow v - z\, (v_{th} - v_{reset})`, which keeps the overshoot
  above threshold (with :math:`v_{reset} = 0` this subtracts :math:`v_{th}`).

Defaults as LIF: :math:`\Delta t = 1` ms, :math:`\tau_{mem}^{-1} = 100` 1/s, :math:`v_{leak} =
v_{reset} = 0`, :math:`v_{th} = 1`, SuperSpike with :math:`\alpha = 100`, reset by value. With
constant input 1 the voltage relaxes toward :math:`v_{leak} + x = 1` and never crosses
:math:`v_{th} = 1`; the closed form without spikes is
:math:`v_n = v_\infty + (v_0 - v_\infty)(1 - \Delta t\, \tau_{mem}^{-1})^n`,
:math:`v_\infty = v_{leak} + x`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.surrogate import check_surrogate, spike_and_reset_factor
from spikeexp.functional.validation import (
    check_choice,
    check_dt,
    check_finite,
    check_rate_constant,
    check_threshold,
)

Param = float | torch.Tensor

RESETS = ("value", "subtract")


class LIFBoxParameters(NamedTuple):
    """LIFBox parameters; numeric fields may be floats or per-neuron tensors.

    Attributes:
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
        v_th: firing threshold.
        v_reset: potential after a spike (``value``) or threshold minus the amount subtracted
            (``subtract``).
        reset: ``"value"`` or ``"subtract"``.
        method: surrogate gradient name (see :mod:`spikeexp.functional.surrogate`).
        alpha: surrogate sharpness.
    """

    tau_mem_inv: Param = 100.0
    v_leak: Param = 0.0
    v_th: Param = 1.0
    v_reset: Param = 0.0
    reset: str = "value"
    method: str = "super"
    alpha: float = 100.0


class LIFBoxState(NamedTuple):
    """LIFBox state: membrane voltage ``v``."""

    v: torch.Tensor


def lif_box_step(
    x: torch.Tensor,
    state: LIFBoxState,
    p: LIFBoxParameters = LIFBoxParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, LIFBoxState]:
    """One Euler step (module docstring); returns ``(spikes, state)``."""
    v = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + x)
    z, z_reset = spike_and_reset_factor(v - p.v_th, p.method, p.alpha, detach_reset)
    if p.reset == "value":
        v = (1 - z_reset) * v + z_reset * p.v_reset
    else:
        v = v - z_reset * (p.v_th - p.v_reset)
    return z, LIFBoxState(v)


def lif_box_initial_state(p: LIFBoxParameters, like: torch.Tensor) -> LIFBoxState:
    """Rest: ``v = v_leak``, shaped like ``like``."""
    return LIFBoxState(v=torch.zeros_like(like) + p.v_leak)


def validate_lif_box(p: LIFBoxParameters, dt: float) -> None:
    """Positive time constant, stable Euler step, ``v_th > v_reset``, known reset/surrogate."""
    check_dt(dt)
    check_rate_constant("tau_mem_inv", p.tau_mem_inv, dt)
    check_finite("v_leak", p.v_leak)
    check_threshold(p.v_th, p.v_reset)
    check_choice("reset", p.reset, RESETS)
    check_surrogate(p.method, p.alpha)


MODEL = NeuronModel(
    name="lif_box",
    prefix="LIFBox",
    parameters=LIFBoxParameters,
    state=LIFBoxState,
    step=lif_box_step,
    initial_state=lif_box_initial_state,
    validate=validate_lif_box,
    rate_constants=("tau_mem_inv",),
)
