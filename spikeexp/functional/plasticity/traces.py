r"""Spike traces: the one convention every rule here uses, and how it relates to others.

A trace :math:`x` of a spike train :math:`z_t \in \{0, 1\}` (one value per step of length
:math:`\Delta t` seconds) with time constant :math:`\tau = 1/\tau^{-1}` (``tau_inv`` in 1/s):

.. math::
    x_t = e^{-\Delta t/\tau}\, x_{t-1} + z_t \qquad \text{(all-to-all, unit jump)}

    x_t = z_t + (1 - z_t)\, e^{-\Delta t/\tau}\, x_{t-1} \qquad \text{(nearest spike: reset to 1)}

* **Unit jump per spike**: a spike adds 1, so a trace is dimensionless and a single spike
  :math:`k` steps ago contributes exactly :math:`e^{-k \Delta t/\tau}`; the pair-STDP window is
  then :math:`A\, e^{-|\Delta t_{spike}|/\tau}` with :math:`A` in weight units.
* **Exact decay**: :math:`e^{-\Delta t/\tau}` is the exact solution of
  :math:`\tau\, dx/dt = -x` over one step, so the window does not depend on ``dt`` at the spike
  times and any ``dt > 0`` is valid.
* **Order within a step**: traces decay, this step's spikes are added, then the weight change
  is computed from the updated traces. Coincident pre and post spikes (:math:`\Delta t = 0`)
  therefore count as both causal and anti-causal pairs (:math:`A_+ - A_-`).

Other conventions, and the exact conversions (:mod:`spikeexp.functional.plasticity.interop`):

* **Jump of dt/tau with Euler decay** (Norse): :math:`x_t = x_{t-1} + \Delta t\,\tau_N^{-1}
  (-x_{t-1} + a z_t)`: the trace is a low-pass filter, a spike adds :math:`a\,\Delta t/\tau_N`.
  With :math:`\tau_N^{-1} =` :func:`euler_rate_for_decay` (same decay per step) and
  :math:`a = 1/(\Delta t\, \tau_N^{-1})` it is the unit-jump trace.
* **Unit jump, decay 1 - 1/tau with tau in steps** (SpikingJelly's ``STDPLearner``):
  :math:`x_t = x_{t-1}(1 - 1/\tau_s) + z_t`; with :math:`\tau_s =` :func:`steps_for_decay` it is
  the unit-jump trace.
"""

from __future__ import annotations

import math

import torch

from spikeexp.functional.validation import check_choice

Param = float | torch.Tensor

INTERACTIONS = ("all_to_all", "nearest")
"""How spikes of one train combine in a trace: every earlier spike counts (``all_to_all``) or
only the latest one (``nearest``, the trace is reset to 1 by a spike)."""


def decay_factor(tau_inv: Param, dt: float) -> Param:
    """:math:`e^{-\\Delta t \\tau^{-1}}`: what is left of a trace after one step."""
    if isinstance(tau_inv, torch.Tensor):
        return torch.exp(-dt * tau_inv)
    return math.exp(-dt * tau_inv)


def trace_step(
    trace: torch.Tensor, z: torch.Tensor, decay: Param, interaction: str
) -> torch.Tensor:
    """One step of a trace: decay, then add (``all_to_all``) or reset to (``nearest``) spikes."""
    if interaction == "nearest":
        return z + (1 - z) * decay * trace
    return decay * trace + z


def trace_sequence(
    z: torch.Tensor, trace: torch.Tensor, decay: Param, interaction: str
) -> torch.Tensor:
    """The traces ``[T, ...]`` after each step of the spikes ``z`` ``[T, ...]``, from ``trace``."""
    traces = []
    for z_t in z:
        trace = trace_step(trace, z_t, decay, interaction)
        traces.append(trace)
    return torch.stack(traces)


def check_interaction(interaction: str) -> None:
    """``interaction`` is ``all_to_all`` or ``nearest``."""
    check_choice("interaction", interaction, INTERACTIONS)


def euler_rate_for_decay(tau_inv: float, dt: float) -> float:
    """The inverse time constant (1/s) whose Euler step ``1 - dt * rate`` decays a trace by
    :math:`e^{-\\Delta t \\tau^{-1}}`, the unit-jump trace's factor: :math:`(1 - e^{-\\Delta t
    \\tau^{-1}})/\\Delta t` (slightly below ``tau_inv``)."""
    return -math.expm1(-dt * tau_inv) / dt


def steps_for_decay(tau_inv: float, dt: float) -> float:
    """The time constant in steps whose decay ``1 - 1/tau`` per step equals
    :math:`e^{-\\Delta t \\tau^{-1}}`: :math:`1/(1 - e^{-\\Delta t \\tau^{-1}})` (``>= 1``)."""
    return -1.0 / math.expm1(-dt * tau_inv)
