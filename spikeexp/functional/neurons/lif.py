r"""Current-based leaky integrate-and-fire (LIF) neuron, forward Euler.

One step of length :math:`\Delta t` (seconds) with input current :math:`x`:

.. math::
    i &\leftarrow i + x \\
    v &\leftarrow v + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v) + i\big) \\
    i &\leftarrow i - \Delta t\, \tau_{syn}^{-1}\, i \\
    z &= H(v - v_{th}) \quad (\text{strictly greater}) \\
    v &\leftarrow (1 - z)\, v + z\, v_{reset}

Defaults are Norse's: :math:`\Delta t = 1` ms, :math:`\tau_{syn}^{-1} = 200` 1/s,
:math:`\tau_{mem}^{-1} = 100` 1/s, :math:`v_{leak} = v_{reset} = 0`, :math:`v_{th} = 1`,
SuperSpike surrogate with :math:`\alpha = 100`. With constant input 1 from rest the voltage runs
0.1, 0.27, 0.487, 0.7335, 0.9963, then spikes (reset to 0), 0.3951, 0.7717, spike, ...
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.fused.lif import lif_fused_recurrent_sequence, lif_fused_sequence
from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.surrogate import check_surrogate, spike_and_reset_factor
from spikeexp.functional.validation import (
    check_dt,
    check_finite,
    check_rate_constant,
    check_threshold,
)

Param = float | torch.Tensor


class LIFParameters(NamedTuple):
    """LIF parameters; each may be a float or a per-neuron tensor.

    Attributes:
        tau_syn_inv: inverse synaptic time constant (1/s).
        tau_mem_inv: inverse membrane time constant (1/s).
        v_leak: leak (resting) potential.
        v_th: firing threshold.
        v_reset: potential after a spike.
        method: surrogate gradient name (see :mod:`spikeexp.functional.surrogate`).
        alpha: surrogate sharpness.
    """

    tau_syn_inv: Param = 200.0
    tau_mem_inv: Param = 100.0
    v_leak: Param = 0.0
    v_th: Param = 1.0
    v_reset: Param = 0.0
    method: str = "super"
    alpha: float = 100.0


class LIFState(NamedTuple):
    """LIF state: membrane voltage ``v`` and synaptic current ``i``."""

    v: torch.Tensor
    i: torch.Tensor


def lif_step(
    x: torch.Tensor,
    state: LIFState,
    p: LIFParameters = LIFParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, LIFState]:
    """One Euler step of the LIF equations (module docstring); returns ``(spikes, state)``."""
    i = state.i + x
    v = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + i)
    i = i - dt * p.tau_syn_inv * i
    z, z_reset = spike_and_reset_factor(v - p.v_th, p.method, p.alpha, detach_reset)
    v = (1 - z_reset) * v + z_reset * p.v_reset
    return z, LIFState(v, i)


def lif_initial_state(p: LIFParameters, like: torch.Tensor) -> LIFState:
    """Resting state: ``v = v_leak``, ``i = 0``, shaped like ``like``."""
    zeros = torch.zeros_like(like)
    return LIFState(v=zeros + p.v_leak, i=zeros)


def validate_lif(p: LIFParameters, dt: float) -> None:
    """Positive time constants, stable Euler step, ``v_th > v_reset``, known surrogate."""
    check_dt(dt)
    check_rate_constant("tau_syn_inv", p.tau_syn_inv, dt)
    check_rate_constant("tau_mem_inv", p.tau_mem_inv, dt)
    check_finite("v_leak", p.v_leak)
    check_threshold(p.v_th, p.v_reset)
    check_surrogate(p.method, p.alpha)


MODEL = NeuronModel(
    name="lif",
    prefix="LIF",
    parameters=LIFParameters,
    state=LIFState,
    step=lif_step,
    initial_state=lif_initial_state,
    validate=validate_lif,
    rate_constants=("tau_syn_inv", "tau_mem_inv"),
    fused_sequence=lif_fused_sequence,
    fused_recurrent_sequence=lif_fused_recurrent_sequence,
)
