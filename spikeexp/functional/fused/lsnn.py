"""Fused LSNN layers: feed-forward (``spikeexp::lsnn_sequence``) and recurrent (the recurrent
operator with an adaptive threshold).

Both conventions of :mod:`spikeexp.functional.neurons.lsnn` (``adaptation="norse"`` and
``"bellec"``) run in the kernels. The feed-forward layer keeps the reset in the graph (as
:func:`~spikeexp.functional.neurons.lsnn.lsnn_step` does without ``detach_reset``) and saves the
pre-reset voltage and the threshold distance per neuron-step. Learnable neuron parameters are
not covered: those layers run the pure-PyTorch step loop (exact, slower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from spikeexp.functional.fused import ops
from spikeexp.functional.fused.common import (
    any_requires_grad,
    feed_forward_applies,
    laid_out_like,
    neuron_parameters,
    sequence_input,
    state_step,
)
from spikeexp.functional.fused.lif import save_level
from spikeexp.functional.fused.recurrent import fused_recurrent
from spikeexp.functional.unroll import reference_sequence

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel


def lsnn_fused_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_sequence`` with the LSNN model: spikes ``[T, ...]``, final state.

    Eligibility and input layouts as :func:`~spikeexp.functional.fused.lif.lif_fused_sequence`,
    and no parameter that requires a gradient.
    """
    rates = [p.tau_mem_inv, p.tau_syn_inv, p.tau_adapt_inv]
    others = [p.v_leak, p.v_th, p.v_reset, p.beta]
    values = [*rates, *others, *state]
    if any_requires_grad(values[:7]) or not feed_forward_applies(x, values, record_states):
        return reference_sequence(model, x, state, p, dt, record_states)
    x = sequence_input(x)
    like = state_step(x)
    params = neuron_parameters([dt * rate for rate in rates] + others, like)
    v0, i0, b0 = (laid_out_like(value, like) for value in state)
    save = save_level([x, v0, i0, b0], params) > 0
    mode = ops.LSNN_MODES[p.adaptation]
    z, v, i, b, _, _ = ops.lsnn_sequence(
        x, v0, i0, b0, *params, mode, p.method, float(p.alpha), save
    )
    return z, type(state)(v, i, b)


def lsnn_fused_recurrent_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_recurrent_sequence`` with the LSNN model."""
    return fused_recurrent(
        model, x, state, input_weights, recurrent_weights, p, dt, record_states, p.adaptation
    )
