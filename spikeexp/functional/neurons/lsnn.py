r"""Long short-term memory spiking neuron (LSNN / ALIF): LIF with an adaptive threshold.

Bellec, Salaj, Subramoney, Legenstein and Maass, "Long short-term memory and learning-to-learn in
networks of spiking neurons", NeurIPS 2018. The membrane and synapse are the current-based LIF of
:mod:`spikeexp.functional.neurons.lif` (same step order, same reset); an adaptation variable
:math:`b` raises the threshold after each spike and relaxes back with
:math:`\tau_{adapt}^{-1}` (1/s). One Euler step of length :math:`\Delta t` (s) with input
:math:`x`:

.. math::
    i &\leftarrow i + x \\
    v &\leftarrow v + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v) + i\big) \\
    i &\leftarrow i - \Delta t\, \tau_{syn}^{-1}\, i

then, by ``adaptation``:

``"norse"`` (Norse's convention: :math:`b` *is* the threshold, in voltage units; at rest
:math:`b = v_{th}`):

.. math::
    b &\leftarrow b + \Delta t\, \tau_{adapt}^{-1} (v_{th} - b) \\
    z &= H(v - b) \\
    b &\leftarrow b + \beta z

``"bellec"`` (the paper's convention: threshold :math:`A = v_{th} + \beta b` with :math:`b` a
dimensionless low-pass trace of the spikes, 0 at rest):

.. math::
    z &= H\big(v - (v_{th} + \beta b)\big) \\
    b &\leftarrow b + \Delta t\, \tau_{adapt}^{-1} (z - b)

The Bellec update is the explicit-Euler form of the paper's
:math:`b_{t+1} = \rho\, b_t + (1 - \rho)\, z_t` with :math:`\rho = e^{-\Delta t / \tau_{adapt}}
\approx 1 - \Delta t\, \tau_{adapt}^{-1}`: each spike adds :math:`\Delta t\, \tau_{adapt}^{-1}`
(not 1) to :math:`b`, so :math:`b` tends to the fraction of steps with a spike and one spike
raises the threshold by :math:`\beta \Delta t\, \tau_{adapt}^{-1}`. The Norse convention adds
:math:`\beta` to the threshold per spike (Norse's own code scales that jump by
:math:`\tau_{adapt}^{-1}` as well, which mixes units; here the jump is :math:`\beta`, in voltage
units). In both, :math:`z = H(\cdot)` is strictly greater than zero and the reset is LIF's:
:math:`v \leftarrow (1 - z) v + z\, v_{reset}`.

Defaults: LIF's (:math:`\tau_{syn}^{-1} = 200`, :math:`\tau_{mem}^{-1} = 100` 1/s,
:math:`v_{th} = 1`, :math:`v_{reset} = v_{leak} = 0`, SuperSpike with :math:`\alpha = 100`),
:math:`\beta = 1.8` and :math:`\tau_{adapt} = 1.2` s (:math:`\tau_{adapt}^{-1} = 1/1.2` 1/s), the
values Bellec et al. use for their store-recall task. Bellec et al. use a base threshold of 0.01,
so their :math:`\beta = 1.8` is 180 thresholds; with :math:`v_{th} = 1` and the ``"bellec"``
convention, scale :math:`\beta` by :math:`1 / 0.01` for the same relative adaptation.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.fused.lsnn import lsnn_fused_recurrent_sequence, lsnn_fused_sequence
from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.surrogate import check_surrogate, spike_and_reset_factor
from spikeexp.functional.validation import (
    check_choice,
    check_dt,
    check_finite,
    check_non_negative,
    check_rate_constant,
    check_threshold,
)

Param = float | torch.Tensor

ADAPTATIONS = ("norse", "bellec")


class LSNNParameters(NamedTuple):
    """LSNN parameters; numeric fields may be floats or per-neuron tensors.

    Attributes:
        tau_syn_inv: inverse synaptic time constant (1/s).
        tau_mem_inv: inverse membrane time constant (1/s).
        tau_adapt_inv: inverse adaptation time constant (1/s); 1/1.2 s by default.
        v_leak: leak (resting) potential.
        v_th: base firing threshold.
        v_reset: potential after a spike.
        beta: adaptation strength (``norse``: threshold jump per spike, voltage units;
            ``bellec``: threshold per unit of the spike trace ``b``).
        adaptation: ``"norse"`` (``b`` is the threshold) or ``"bellec"`` (``v_th + beta * b``).
        method: surrogate gradient name (see :mod:`spikeexp.functional.surrogate`).
        alpha: surrogate sharpness.
    """

    tau_syn_inv: Param = 200.0
    tau_mem_inv: Param = 100.0
    tau_adapt_inv: Param = 1.0 / 1.2
    v_leak: Param = 0.0
    v_th: Param = 1.0
    v_reset: Param = 0.0
    beta: Param = 1.8
    adaptation: str = "norse"
    method: str = "super"
    alpha: float = 100.0


class LSNNState(NamedTuple):
    """LSNN state: voltage ``v``, synaptic current ``i`` and adaptation variable ``b``."""

    v: torch.Tensor
    i: torch.Tensor
    b: torch.Tensor


def lsnn_step(
    x: torch.Tensor,
    state: LSNNState,
    p: LSNNParameters = LSNNParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, LSNNState]:
    """One Euler step of the LSNN equations (module docstring); returns ``(spikes, state)``.

    ``detach_reset`` stops gradients through the voltage reset (recurrent layers); the
    adaptation jump keeps its gradient.
    """
    i = state.i + x
    v = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + i)
    i = i - dt * p.tau_syn_inv * i
    if p.adaptation == "norse":
        b = state.b + dt * p.tau_adapt_inv * (p.v_th - state.b)
        z, z_reset = spike_and_reset_factor(v - b, p.method, p.alpha, detach_reset)
        b = b + p.beta * z
    else:
        threshold = p.v_th + p.beta * state.b
        z, z_reset = spike_and_reset_factor(v - threshold, p.method, p.alpha, detach_reset)
        b = state.b + dt * p.tau_adapt_inv * (z - state.b)
    v = (1 - z_reset) * v + z_reset * p.v_reset
    return z, LSNNState(v, i, b)


def lsnn_initial_state(p: LSNNParameters, like: torch.Tensor) -> LSNNState:
    """Rest: ``v = v_leak``, ``i = 0``; ``b = v_th`` (``norse``) or ``b = 0`` (``bellec``)."""
    zeros = torch.zeros_like(like)
    b = zeros + p.v_th if p.adaptation == "norse" else zeros
    return LSNNState(v=zeros + p.v_leak, i=zeros, b=b)


def validate_lsnn(p: LSNNParameters, dt: float) -> None:
    """Positive time constants, stable Euler steps, ``v_th > v_reset``, ``beta >= 0``."""
    check_dt(dt)
    check_rate_constant("tau_syn_inv", p.tau_syn_inv, dt)
    check_rate_constant("tau_mem_inv", p.tau_mem_inv, dt)
    check_rate_constant("tau_adapt_inv", p.tau_adapt_inv, dt)
    check_finite("v_leak", p.v_leak)
    check_threshold(p.v_th, p.v_reset)
    check_non_negative("beta", p.beta)
    check_choice("adaptation", p.adaptation, ADAPTATIONS)
    check_surrogate(p.method, p.alpha)


MODEL = NeuronModel(
    name="lsnn",
    prefix="LSNN",
    parameters=LSNNParameters,
    state=LSNNState,
    step=lsnn_step,
    initial_state=lsnn_initial_state,
    validate=validate_lsnn,
    rate_constants=("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv"),
    fused_sequence=lsnn_fused_sequence,
    fused_recurrent_sequence=lsnn_fused_recurrent_sequence,
)
