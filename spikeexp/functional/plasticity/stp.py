r"""Tsodyks-Markram short-term plasticity: facilitation and depression of transmission.

Tsodyks, Pawelzik & Markram (1998), "Neural networks with dynamic synapses", Neural Computation
10(4):821-835; Tsodyks & Wu (2013), Scholarpedia 8(10):3153. Each presynaptic neuron has a
utilisation :math:`u` (release probability, facilitation) and a fraction of available resources
:math:`x` (depression):

.. math::
    \frac{du}{dt} = -\frac{u}{\tau_f} + U (1 - u^-)\, \delta(t - t_{sp}), \qquad
    \frac{dx}{dt} = \frac{1 - x}{\tau_d} - u^+ x^-\, \delta(t - t_{sp})

A spike releases :math:`u^+ x^-` (:math:`u^-, x^-` just before it, :math:`u^+ = u^- + U(1 -
u^-)` just after its jump); the connection transmits the released fraction instead of the spike.
Per step of length :math:`\Delta t` (s), with the exact relaxation between spikes:

.. math::
    u &\leftarrow e^{-\Delta t/\tau_f} u, \qquad x \leftarrow 1 - e^{-\Delta t/\tau_d} (1 - x) \\
    u &\leftarrow u + U (1 - u) z, \qquad s = u\, x\, z, \qquad x \leftarrow x - s

and the step returns :math:`s`. At rest :math:`u = 0`, :math:`x = 1`, so an isolated spike
transmits :math:`U`. For a regular train with inter-spike interval :math:`\Delta` the values just
after (:math:`u^+`) and just before (:math:`x^-`) each spike converge to

.. math::
    u^+_\infty = \frac{U}{1 - (1 - U) e^{-\Delta/\tau_f}}, \qquad
    x^-_\infty = \frac{1 - e^{-\Delta/\tau_d}}{1 - (1 - u^+_\infty) e^{-\Delta/\tau_d}}

(:func:`steady_state`), and because the relaxation is exact the discrete model reaches these values
for any ``dt`` dividing :math:`\Delta`. Defaults: the depression-dominated synapse of Tsodyks & Wu
(2013), :math:`U = 0.45`, :math:`\tau_f = 50` ms, :math:`\tau_d = 750` ms; their
facilitation-dominated one is :math:`U = 0.15`, :math:`\tau_f = 750` ms, :math:`\tau_d = 50` ms.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from spikeexp.functional.plasticity.base import PlasticityRule
from spikeexp.functional.plasticity.traces import decay_factor
from spikeexp.functional.validation import check_dt, check_in_range, check_positive

Param = float | torch.Tensor


class TsodyksMarkramParameters(NamedTuple):
    """Tsodyks-Markram parameters.

    Attributes:
        U: utilisation increment per spike, in (0, 1] (release probability of a rested synapse).
        tau_f_inv: inverse facilitation time constant (1/s): how fast :math:`u` returns to 0.
        tau_d_inv: inverse depression (recovery) time constant (1/s): how fast :math:`x`
            returns to 1.
    """

    U: Param = 0.45
    tau_f_inv: Param = 1.0 / 50e-3
    tau_d_inv: Param = 1.0 / 750e-3


class TsodyksMarkramState(NamedTuple):
    """Utilisation ``u`` and available resources ``x``, one per presynaptic neuron."""

    u: torch.Tensor
    x: torch.Tensor


def stp_step(
    z: torch.Tensor,
    state: TsodyksMarkramState,
    p: TsodyksMarkramParameters = TsodyksMarkramParameters(),
    dt: float = 1e-3,
) -> tuple[torch.Tensor, TsodyksMarkramState]:
    """One step (module docstring); returns ``(released, state)``."""
    u = decay_factor(p.tau_f_inv, dt) * state.u
    x = 1 - decay_factor(p.tau_d_inv, dt) * (1 - state.x)
    u = u + p.U * (1 - u) * z
    released = u * x * z
    return released, TsodyksMarkramState(u, x - released)


def stp_initial_state(p: TsodyksMarkramParameters, like: torch.Tensor) -> TsodyksMarkramState:
    """At rest: ``u = 0``, ``x = 1``, shaped like ``like``."""
    return TsodyksMarkramState(torch.zeros_like(like), torch.ones_like(like))


def steady_state(U: float, tau_f: float, tau_d: float, interval: float) -> tuple[float, float]:
    """:math:`(u^+_\\infty, x^-_\\infty)` for a regular train with spikes ``interval`` seconds
    apart (time constants in seconds; module docstring). The transmitted fraction per spike
    converges to their product."""
    facilitation = math.exp(-interval / tau_f)
    recovery = math.exp(-interval / tau_d)
    u = U / (1 - (1 - U) * facilitation)
    x = (1 - recovery) / (1 - (1 - u) * recovery)
    return u, x


def validate_stp(p: TsodyksMarkramParameters, dt: float) -> None:
    """``U`` in (0, 1], positive time constants."""
    check_dt(dt)
    check_positive("U", p.U)
    check_in_range("U", p.U, 0.0, 1.0)
    check_positive("tau_f_inv", p.tau_f_inv)
    check_positive("tau_d_inv", p.tau_d_inv)


RULE = PlasticityRule(
    name="stp",
    parameters=TsodyksMarkramParameters,
    state=TsodyksMarkramState,
    step=stp_step,
    initial_state=stp_initial_state,
    validate=validate_stp,
    kind="transmission",
)
