r"""Integrate-and-fire (IAF) neuron without leak.

The input :math:`x` is the voltage added in one step (it already contains :math:`\Delta t`), so
the step does not depend on :math:`\Delta t`:

.. math::
    v &\leftarrow v + x \\
    z &= H(v - v_{th}) \quad (\text{strictly greater}) \\
    v &\leftarrow (1 - z)\, v + z\, v_{reset}

Without input the voltage stays where it is (no leak). Defaults: :math:`v_{th} = 1`,
:math:`v_{reset} = 0`, SuperSpike surrogate with :math:`\alpha = 100`; the state starts at
:math:`v = v_{reset}`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.surrogate import check_surrogate, spike_and_reset_factor
from spikeexp.functional.validation import check_dt, check_threshold

Param = float | torch.Tensor


class IAFParameters(NamedTuple):
    """IAF parameters; ``v_th`` and ``v_reset`` may be floats or per-neuron tensors.

    Attributes:
        v_th: firing threshold.
        v_reset: potential after a spike, also the resting potential.
        method: surrogate gradient name (see :mod:`spikeexp.functional.surrogate`).
        alpha: surrogate sharpness.
    """

    v_th: Param = 1.0
    v_reset: Param = 0.0
    method: str = "super"
    alpha: float = 100.0


class IAFState(NamedTuple):
    """IAF state: membrane voltage ``v``."""

    v: torch.Tensor


def iaf_step(
    x: torch.Tensor,
    state: IAFState,
    p: IAFParameters = IAFParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, IAFState]:
    """One step (module docstring); returns ``(spikes, state)``. ``dt`` does not enter."""
    v = state.v + x
    z, z_reset = spike_and_reset_factor(v - p.v_th, p.method, p.alpha, detach_reset)
    v = (1 - z_reset) * v + z_reset * p.v_reset
    return z, IAFState(v)


def iaf_initial_state(p: IAFParameters, like: torch.Tensor) -> IAFState:
    """Rest: ``v = v_reset``, shaped like ``like``."""
    return IAFState(v=torch.zeros_like(like) + p.v_reset)


def validate_iaf(p: IAFParameters, dt: float) -> None:
    """Positive ``dt``, ``v_th > v_reset``, known surrogate."""
    check_dt(dt)
    check_threshold(p.v_th, p.v_reset)
    check_surrogate(p.method, p.alpha)


MODEL = NeuronModel(
    name="iaf",
    prefix="IAF",
    parameters=IAFParameters,
    state=IAFState,
    step=iaf_step,
    initial_state=iaf_initial_state,
    validate=validate_iaf,
)
