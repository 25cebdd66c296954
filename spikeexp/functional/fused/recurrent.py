r"""Whole-sequence recurrent LIF and LSNN layers: one operator call for all ``T`` steps.

The input projection :math:`W_{in} x` is one matrix product over ``[T * batch, input]`` (outside
the operator, as in the reference). ``spikeexp::recurrent_sequence``
(:mod:`spikeexp.functional.fused.ops`) runs the recurrence :math:`c_t = W_{in} x_t + W_{rec}
z_{t-1}` and the neuron step (C++ on the CPU: batch rows split across threads, a few hundred
floating-point operations per step instead of a dozen PyTorch calls; Triton on CUDA: the
recurrent weights held on chip for small layers). Saved for backward: the threshold distance
:math:`d_t` (the surrogate's argument; spikes are :math:`H(d_t)`) and the spikes (the output,
needed for :math:`\partial L / \partial W_{rec} = \sum_t g_t^\top z_{t-1}`, one matrix product).
The voltage reset is detached, the adaptation jump is not, as in the step functions.

Exactness: the neuron arithmetic matches the step functions operation by operation; the
recurrent sum :math:`W_{rec} z_{t-1}` is accumulated in another order than the reference's BLAS
call, so currents may differ in the last bit (relative 1e-7) and a voltage that lands within
that of the threshold could spike in one and not the other.

Learnable neuron parameters (a tensor that requires grad) are not covered: those layers run the
pure-PyTorch step loop (exact, slower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from spikeexp.functional.fused import ops
from spikeexp.functional.fused.common import (
    any_requires_grad,
    broadcasts_to,
    kernel_applies,
    per_neuron,
    state_step,
)
from spikeexp.functional.unroll import reference_recurrent_sequence

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel

MODES = ops.RECURRENT_MODES


def fused_recurrent(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool,
    mode: str,
) -> tuple[torch.Tensor, Any]:
    """Recurrent unroll of a LIF (``mode="lif"``) or LSNN (``"norse"``/``"bellec"``) layer.

    Same contract as ``reference_recurrent_sequence``. ``p`` must have the LIF fields, and for
    LSNN ``tau_adapt_inv`` and ``beta``; the state's neuron part must be ``(v, i)`` or
    ``(v, i, b)``. Falls back to the pure-PyTorch step loop where the kernel does not apply
    (module docstring).
    """
    z0, neuron = state
    adaptive = mode != "lif"
    rates = [p.tau_mem_inv, p.tau_syn_inv, p.tau_adapt_inv if adaptive else 0.0]
    others = [p.v_leak, p.v_th, p.v_reset, p.beta if adaptive else 0.0]
    shape = z0.shape
    values = [*rates, *others, *neuron]
    if (
        record_states
        or x.dim() != 3
        or any_requires_grad(values[:7])
        or not kernel_applies(x, [*values, z0, input_weights, recurrent_weights])
        or not all(broadcasts_to(value, shape) for value in values)
    ):
        return reference_recurrent_sequence(
            model, x, state, input_weights, recurrent_weights, p, dt, record_states
        )
    projected = F.linear(x, input_weights).contiguous()
    like = state_step(projected)
    params = [per_neuron(dt * rate, shape, like) for rate in rates]
    params += [per_neuron(value, shape, like) for value in others]
    initial = [per_neuron(value, shape, like) for value in (z0, *neuron)]
    adapt0 = initial[3] if adaptive else None
    spikes, z, v, i, b, _ = ops.recurrent_sequence(
        projected,
        recurrent_weights,
        *initial[:3],
        adapt0,
        *params,
        MODES[mode],
        p.method,
        float(p.alpha),
    )
    final_neuron = type(neuron)(v, i, b) if adaptive else type(neuron)(v, i)
    return spikes, type(state)(z, final_neuron)
