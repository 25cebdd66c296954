r"""Adaptive exponential leaky integrate-and-fire (AdEx), current-based, forward Euler.

Brette and Gerstner, "Adaptive exponential integrate-and-fire model as an effective description
of neuronal activity", J. Neurophysiol. 2005:
:math:`C \dot v = -g_L (v - E_L) + g_L \Delta_T e^{(v - V_T)/\Delta_T} - w + I`,
:math:`\tau_w \dot w = a (v - E_L) - w`, and at a spike :math:`v \to v_r`, :math:`w \to w + b`.
Here in the dimensionless form Norse uses (:math:`C / g_L = \tau_{mem}`, voltages relative to
threshold 1, the adaptation current :math:`a` scaled by :math:`1/g_L`) with LIF's synaptic
current. One step of length :math:`\Delta t` (s) with input :math:`x`:

.. math::
    i &\leftarrow i + x \\
    v &\leftarrow v + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v)
          + \Delta_T\, e^{(v - v_{th}) / \Delta_T} + i - a\big) \\
    a &\leftarrow a + \Delta t\, \tau_{ada}^{-1} \big(a_{sub} (v_{old} - v_{leak}) - a\big) \\
    i &\leftarrow i - \Delta t\, \tau_{syn}^{-1}\, i \\
    z &= H(v - v_{th}) \quad (\text{strictly greater}) \\
    v &\leftarrow (1 - z)\, v + z\, v_{reset}, \qquad a \leftarrow a + z\, a_{spike}

where :math:`a_{sub}` is ``adaptation_current`` (sub-threshold adaptation, the paper's
:math:`a`), :math:`a_{spike}` is ``adaptation_spike`` (the paper's :math:`b`) and :math:`\Delta_T`
is ``delta_T`` (slope factor). The spike is detected at :math:`v_{th}`, so the exponential only
sharpens the approach to threshold and :math:`v` before a step never exceeds :math:`v_{th}`.

Defaults (Norse's dimensionless values): :math:`a_{sub} = 4`, :math:`a_{spike} = 1.02`,
:math:`\Delta_T = 0.5`, :math:`\tau_{ada}^{-1} = 2` 1/s, and LIF's :math:`\tau_{syn}^{-1} = 200`,
:math:`\tau_{mem}^{-1} = 100` 1/s, :math:`v_{leak} = v_{reset} = 0`, :math:`v_{th} = 1`,
SuperSpike with :math:`\alpha = 100`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.surrogate import check_surrogate, spike_and_reset_factor
from spikeexp.functional.validation import (
    check_dt,
    check_finite,
    check_positive,
    check_rate_constant,
    check_threshold,
)

Param = float | torch.Tensor


class LIFAdExParameters(NamedTuple):
    """AdEx parameters; numeric fields may be floats or per-neuron tensors.

    Attributes:
        adaptation_current: sub-threshold adaptation coupling :math:`a_{sub}` (dimensionless).
        adaptation_spike: adaptation jump per spike :math:`a_{spike}` (voltage units).
        delta_T: slope factor of the exponential term (voltage units, > 0).
        tau_ada_inv: inverse adaptation time constant (1/s).
        tau_syn_inv: inverse synaptic time constant (1/s).
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
        v_th: threshold (exponential soft threshold and spike detection).
        v_reset: potential after a spike.
        method: surrogate gradient name (see :mod:`spikeexp.functional.surrogate`).
        alpha: surrogate sharpness.
    """

    adaptation_current: Param = 4.0
    adaptation_spike: Param = 1.02
    delta_T: Param = 0.5
    tau_ada_inv: Param = 2.0
    tau_syn_inv: Param = 200.0
    tau_mem_inv: Param = 100.0
    v_leak: Param = 0.0
    v_th: Param = 1.0
    v_reset: Param = 0.0
    method: str = "super"
    alpha: float = 100.0


class LIFAdExState(NamedTuple):
    """AdEx state: voltage ``v``, synaptic current ``i``, adaptation current ``a``."""

    v: torch.Tensor
    i: torch.Tensor
    a: torch.Tensor


def lif_adex_step(
    x: torch.Tensor,
    state: LIFAdExState,
    p: LIFAdExParameters = LIFAdExParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, LIFAdExState]:
    """One Euler step (module docstring); returns ``(spikes, state)``."""
    i = state.i + x
    v_old = state.v
    exponential = p.delta_T * torch.exp((v_old - p.v_th) / p.delta_T)
    v = v_old + dt * p.tau_mem_inv * ((p.v_leak - v_old) + exponential + i - state.a)
    a = state.a + dt * p.tau_ada_inv * (p.adaptation_current * (v_old - p.v_leak) - state.a)
    i = i - dt * p.tau_syn_inv * i
    z, z_reset = spike_and_reset_factor(v - p.v_th, p.method, p.alpha, detach_reset)
    v = (1 - z_reset) * v + z_reset * p.v_reset
    a = a + z_reset * p.adaptation_spike
    return z, LIFAdExState(v, i, a)


def lif_adex_initial_state(p: LIFAdExParameters, like: torch.Tensor) -> LIFAdExState:
    """Rest: ``v = v_leak``, ``i = 0``, ``a = 0``, shaped like ``like``."""
    zeros = torch.zeros_like(like)
    return LIFAdExState(v=zeros + p.v_leak, i=zeros, a=zeros)


def validate_lif_adex(p: LIFAdExParameters, dt: float) -> None:
    """Positive time constants and slope, stable Euler steps, ``v_th > v_reset``."""
    check_dt(dt)
    check_rate_constant("tau_ada_inv", p.tau_ada_inv, dt)
    check_rate_constant("tau_syn_inv", p.tau_syn_inv, dt)
    check_rate_constant("tau_mem_inv", p.tau_mem_inv, dt)
    check_positive("delta_T", p.delta_T)
    check_finite("adaptation_current", p.adaptation_current)
    check_finite("adaptation_spike", p.adaptation_spike)
    check_finite("v_leak", p.v_leak)
    check_threshold(p.v_th, p.v_reset)
    check_surrogate(p.method, p.alpha)


MODEL = NeuronModel(
    name="lif_adex",
    prefix="LIFAdEx",
    parameters=LIFAdExParameters,
    state=LIFAdExState,
    step=lif_adex_step,
    initial_state=lif_adex_initial_state,
    validate=validate_lif_adex,
    rate_constants=("tau_ada_inv", "tau_syn_inv", "tau_mem_inv"),
)
