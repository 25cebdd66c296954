r"""Leaky integrator without synaptic current ("box" synapse): a non-spiking readout, Euler.

The input :math:`x` drives the membrane directly:

.. math::
    v \leftarrow v + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v) + x\big)

The output is :math:`v`. This is the NIR ``LI`` node (:math:`\tau \dot v = (v_{leak} - v) + R I`
with :math:`R = 1`) and Norse's ``LIBoxCell``; :mod:`spikeexp.functional.neurons.li` adds a
synaptic current in front of it. Defaults: :math:`\tau_{mem}^{-1} = 100` 1/s,
:math:`v_{leak} = 0`. Without input the voltage relaxes as
:math:`v_n = v_{leak} + (v_0 - v_{leak})(1 - \Delta t\, \tau_{mem}^{-1})^n`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.validation import check_dt, check_finite, check_rate_constant

Param = float | torch.Tensor


class LIBoxParameters(NamedTuple):
    """LIBox parameters (float or per-neuron tensor).

    Attributes:
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
    """

    tau_mem_inv: Param = 100.0
    v_leak: Param = 0.0


class LIBoxState(NamedTuple):
    """LIBox state: membrane voltage ``v``."""

    v: torch.Tensor


def li_box_step(
    x: torch.Tensor,
    state: LIBoxState,
    p: LIBoxParameters = LIBoxParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, LIBoxState]:
    """One Euler step (module docstring); returns ``(v, state)``. ``detach_reset`` is unused."""
    v = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + x)
    return v, LIBoxState(v)


def li_box_initial_state(p: LIBoxParameters, like: torch.Tensor) -> LIBoxState:
    """Rest: ``v = v_leak``, shaped like ``like``."""
    return LIBoxState(v=torch.zeros_like(like) + p.v_leak)


def validate_li_box(p: LIBoxParameters, dt: float) -> None:
    """Positive time constant and a stable Euler step."""
    check_dt(dt)
    check_rate_constant("tau_mem_inv", p.tau_mem_inv, dt)
    check_finite("v_leak", p.v_leak)


MODEL = NeuronModel(
    name="li_box",
    prefix="LIBox",
    parameters=LIBoxParameters,
    state=LIBoxState,
    step=li_box_step,
    initial_state=li_box_initial_state,
    validate=validate_li_box,
    spiking=False,
    rate_constants=("tau_mem_inv",),
)
