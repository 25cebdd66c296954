r"""A competitive excitatory layer: LIF neurons with lateral inhibition (winner-take-all) and
adaptive thresholds, after Diehl & Cook (2015), "Unsupervised learning of digit recognition
using spike-timing-dependent plasticity", Front. Comput. Neurosci. 9:99.

Diehl & Cook pair every excitatory neuron with an inhibitory one that inhibits all other
excitatory neurons; here that loop is one step of lateral inhibition: a spike of neuron :math:`j`
lowers the voltage of every other neuron by ``inhibition`` at the next step. Per step of length
:math:`\Delta t` (s), with input :math:`x_i` (voltage units per step, e.g. the weighted input
spikes :math:`\sum_k w_{ik} z_k`), the spikes of the previous step :math:`z'`, refractory
neurons (:math:`r_i > 0` steps left) ignoring their input:

.. math::
    v_i &\leftarrow e^{-\Delta t\, \tau_{mem}^{-1}} v_i
          + [r_i = 0] \big(x_i - w_{inh} \textstyle\sum_{j \ne i} z'_j\big) \\
    z_i &= H(v_i - v_{th} - \theta_i) \quad (\text{strictly greater}), \qquad
    v_i \leftarrow v_{reset} \text{ if } z_i \\
    r_i &\leftarrow \mathrm{round}(t_{ref}/\Delta t) \text{ if } z_i \text{ else } \max(r_i - 1, 0)

The adaptive threshold :math:`\theta_i` (homeostasis) is not reset between samples. After a
training sequence of :math:`T` steps with spikes :math:`z_{t,n,i}` (batch :math:`n`)
(:func:`theta_update`):

.. math::
    \theta_i \leftarrow e^{-T \Delta t\, \tau_\theta^{-1}}\, \theta_i
      + \theta_+ \textstyle\sum_{t,n} z_{t,n,i}

so a neuron that wins often needs more input to win again and every neuron gets its share of
the inputs. The samples of a batch count as if shown one after another with :math:`\theta` held
during the batch. Diehl & Cook's :math:`\tau_\theta = 10^7` ms is :math:`\tau_\theta^{-1} =
10^{-4}` 1/s; ``tau_theta_inv = 0`` means no decay. The layer has no surrogate gradient: it is
meant for local learning rules.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from spikeexp.functional.validation import (
    check_dt,
    check_finite,
    check_non_negative,
    check_positive,
    check_threshold,
)

Param = float | torch.Tensor


class CompetitiveParameters(NamedTuple):
    """Parameters of the competitive layer (module docstring).

    Attributes:
        tau_mem_inv: inverse membrane time constant (1/s).
        v_th: base firing threshold (voltage units).
        v_reset: voltage after a spike.
        inhibition: voltage :math:`w_{inh}` removed from every other neuron per spike.
        refractory: refractory period :math:`t_{ref}` (s).
        theta_plus: threshold increase per spike :math:`\\theta_+` (voltage units).
        tau_theta_inv: inverse time constant of the threshold's decay (1/s; 0: none).
    """

    tau_mem_inv: float = 20.0
    v_th: Param = 1.0
    v_reset: Param = 0.0
    inhibition: Param = 20.0
    refractory: float = 5e-3
    theta_plus: Param = 0.05
    tau_theta_inv: float = 0.0


class CompetitiveState(NamedTuple):
    """Voltages ``v``, the previous step's spikes ``z`` and refractory steps left ``r``."""

    v: torch.Tensor
    z: torch.Tensor
    r: torch.Tensor


def competitive_initial_state(p: CompetitiveParameters, like: torch.Tensor) -> CompetitiveState:
    """At rest (``v = v_reset``), no spikes, not refractory, shaped like ``like``."""
    zeros = torch.zeros_like(like)
    return CompetitiveState(zeros + p.v_reset, zeros, zeros)


def competitive_step(
    x: torch.Tensor,
    state: CompetitiveState,
    theta: torch.Tensor,
    p: CompetitiveParameters = CompetitiveParameters(),
    dt: float = 1e-3,
) -> tuple[torch.Tensor, CompetitiveState]:
    """One step for input ``x [batch, neurons]`` (module docstring); returns ``(spikes, state)``."""
    inhibition = p.inhibition * (state.z.sum(-1, keepdim=True) - state.z)
    free = (state.r <= 0).to(x.dtype)
    v = math.exp(-dt * p.tau_mem_inv) * state.v + free * (x - inhibition)
    z = (v > p.v_th + theta).to(x.dtype)
    v = torch.where(z > 0, torch.as_tensor(p.v_reset, dtype=v.dtype), v)
    r = torch.where(z > 0, float(round(p.refractory / dt)), (state.r - 1).clamp(min=0))
    return z, CompetitiveState(v, z, r)


def theta_update(
    theta: torch.Tensor, counts: torch.Tensor, steps: int, p: CompetitiveParameters, dt: float
) -> torch.Tensor:
    """The adaptive thresholds after a training sequence of ``steps`` steps in which each neuron
    spiked ``counts [neurons]`` times (summed over the batch)."""
    decay = math.exp(-steps * dt * p.tau_theta_inv)
    return decay * theta + p.theta_plus * counts


def validate_competitive(p: CompetitiveParameters, dt: float) -> None:
    """Positive membrane rate, ``v_th > v_reset``, non-negative inhibition, refractory period,
    threshold step and threshold decay."""
    check_dt(dt)
    check_positive("tau_mem_inv", p.tau_mem_inv)
    check_threshold(p.v_th, p.v_reset)
    check_non_negative("inhibition", p.inhibition)
    check_non_negative("refractory", p.refractory)
    check_non_negative("theta_plus", p.theta_plus)
    check_non_negative("tau_theta_inv", p.tau_theta_inv)
    check_finite("tau_theta_inv", p.tau_theta_inv)
