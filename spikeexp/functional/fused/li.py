r"""Whole-sequence leaky integrators (the LI readout): one operator call for all ``T`` steps.

``spikeexp::li_sequence`` (:mod:`spikeexp.functional.fused.ops`) runs the equations of
:mod:`spikeexp.functional.neurons.li` in one pass over ``[T, ...]``, in the step function's
operation order. The LI neuron is linear in its input and state, so the input and state
gradients need nothing saved: backward runs the adjoint recursion in reverse time,

.. math::
    \bar v_{t-1} = (1 - a)(\bar v_t + \bar y_t), \quad
    \bar j_t = (1 - b)\, \bar\imath_t + a (\bar v_t + \bar y_t), \quad
    \bar x_t = \bar\imath_{t-1} = \bar j_t

(:math:`a = \Delta t\, \tau_{mem}^{-1}`, :math:`b = \Delta t\, \tau_{syn}^{-1}`, :math:`\bar y_t`
the gradient of the output at step ``t``). Learnable parameters additionally keep the synaptic
currents :math:`j_t` and read the voltages (the layer's output).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from spikeexp.functional.fused import ops
from spikeexp.functional.fused.common import (
    feed_forward_applies,
    laid_out_like,
    neuron_parameters,
    sequence_input,
    state_step,
)
from spikeexp.functional.fused.lif import save_level
from spikeexp.functional.unroll import reference_sequence

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel


def li_fused_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_sequence`` with the LI model: voltages ``[T, ...]``, final state.

    Eligibility and input layouts as :func:`~spikeexp.functional.fused.lif.lif_fused_sequence`;
    the voltages are in the state dtype (float32 for a bfloat16 input).
    """
    values = [p.tau_mem_inv, p.tau_syn_inv, p.v_leak, state.v, state.i]
    if not feed_forward_applies(x, values, record_states):
        return reference_sequence(model, x, state, p, dt, record_states)
    x = sequence_input(x)
    like = state_step(x)
    params = neuron_parameters([dt * p.tau_mem_inv, dt * p.tau_syn_inv, p.v_leak], like)
    v0 = laid_out_like(state.v, like)
    i0 = laid_out_like(state.i, like)
    save = save_level([x, v0, i0], params) == 2
    out, v, i, _ = ops.li_sequence(x, v0, i0, *params, save)
    return out, type(state)(v, i)
