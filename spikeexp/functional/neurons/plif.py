r"""Parametric leaky integrate-and-fire (PLIF), Fang et al. 2021.

Fang, Yu, Chen, Masquelier, Huang and Tian, "Incorporating learnable membrane time constant to
enhance learning of spiking neural networks", ICCV 2021. The neuron has no synaptic current and
integrates its input with the leak ("decay input"):

.. math::
    v &\leftarrow v + \Delta t\, \tau_{mem}^{-1} \big((v_{leak} - v) + x\big) \\
    z &= H(v - v_{th}) \quad (\text{strictly greater}) \\
    v &\leftarrow (1 - z)\, v + z\, v_{reset}

Fang et al. write :math:`v \leftarrow v + k\,(x - (v - v_{reset}))` with :math:`k = 1/\tau` per
step, i.e. :math:`k = \Delta t\, \tau_{mem}^{-1}`, and learn :math:`k = \sigma(w)` so that
:math:`0 < k < 1` always holds. Made learnable through a module
(``learnable=("tau_mem_inv",)``, as in ``conf/neuron/plif.yaml``), ``tau_mem_inv`` is stored as
``tau_mem_inv_logit`` :math:`= \operatorname{logit}(\Delta t\, \tau_{mem}^{-1})` and used as
:math:`\tau_{mem}^{-1} = \sigma(w) / \Delta t` (1/s). One time constant per layer: give a float;
one per neuron: give a tensor of shape ``[hidden]`` (it broadcasts over the last dimension).

Defaults: Fang et al.'s initial :math:`\tau = 2` steps, i.e. :math:`\tau_{mem}^{-1} = 500` 1/s at
:math:`\Delta t = 1` ms, :math:`v_{leak} = v_{reset} = 0`, :math:`v_{th} = 1`, SuperSpike with
:math:`\alpha = 100` (Fang et al. use an arctan surrogate: ``method="arctan"``, ``alpha=2``).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.surrogate import check_surrogate, spike_and_reset_factor
from spikeexp.functional.validation import (
    check_dt,
    check_finite,
    check_rate_constant,
    check_threshold,
)

Param = float | torch.Tensor


class PLIFParameters(NamedTuple):
    """PLIF parameters; numeric fields may be floats or per-neuron tensors.

    Attributes:
        tau_mem_inv: (initial) inverse membrane time constant (1/s), learnable through
            the sigmoid parametrisation above.
        v_leak: leak (resting) potential.
        v_th: firing threshold.
        v_reset: potential after a spike.
        method: surrogate gradient name (see :mod:`spikeexp.functional.surrogate`).
        alpha: surrogate sharpness.
    """

    tau_mem_inv: Param = 500.0
    v_leak: Param = 0.0
    v_th: Param = 1.0
    v_reset: Param = 0.0
    method: str = "super"
    alpha: float = 100.0


class PLIFState(NamedTuple):
    """PLIF state: membrane voltage ``v``."""

    v: torch.Tensor


def plif_step(
    x: torch.Tensor,
    state: PLIFState,
    p: PLIFParameters = PLIFParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, PLIFState]:
    """One Euler step (module docstring); returns ``(spikes, state)``."""
    v = state.v + dt * p.tau_mem_inv * ((p.v_leak - state.v) + x)
    z, z_reset = spike_and_reset_factor(v - p.v_th, p.method, p.alpha, detach_reset)
    v = (1 - z_reset) * v + z_reset * p.v_reset
    return z, PLIFState(v)


def plif_initial_state(p: PLIFParameters, like: torch.Tensor) -> PLIFState:
    """Rest: ``v = v_leak``, shaped like ``like``."""
    return PLIFState(v=torch.zeros_like(like) + p.v_leak)


def validate_plif(p: PLIFParameters, dt: float) -> None:
    """``0 < dt * tau_mem_inv < 1``, ``v_th > v_reset``, known surrogate."""
    check_dt(dt)
    check_rate_constant("tau_mem_inv", p.tau_mem_inv, dt)
    check_finite("v_leak", p.v_leak)
    check_threshold(p.v_th, p.v_reset)
    check_surrogate(p.method, p.alpha)


MODEL = NeuronModel(
    name="plif",
    prefix="PLIF",
    parameters=PLIFParameters,
    state=PLIFState,
    step=plif_step,
    initial_state=plif_initial_state,
    validate=validate_plif,
    rate_constants=("tau_mem_inv",),
    sigmoid_rates=("tau_mem_inv",),
)
