r"""Whole-sequence LIF (feed-forward): one autograd node for all ``T`` steps.

Forward runs the LIF equations of :mod:`spikeexp.functional.neurons.lif` in one C++ pass over
``[T, ...]`` (same operation order, no fused multiply-add: bit-identical to the step loop).
Saved for backward: the pre-reset voltage :math:`u_t` only (4 bytes per neuron-step; spikes are
recomputed as :math:`H(u_t - v_{th})`, the post-reset voltage as :math:`(1 - z_t) u_t + z_t
v_{reset}`). With learnable parameters the synaptic current after the input :math:`j_t` is saved
too. Backward walks time in reverse with the adjoint of each step (reset *not* detached, as in
:func:`~spikeexp.functional.neurons.lif.lif_step`). The surrogate derivative of the algebraic
surrogates (:data:`INLINE_SURROGATES`) is evaluated inside the kernel, in the operation order of
:mod:`spikeexp.functional.surrogate` (bit-identical, tested); the others come from
:func:`~spikeexp.functional.surrogate.surrogate_derivative`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from spikeexp.functional.fused.build import kernel
from spikeexp.functional.fused.common import (
    broadcasts_to,
    first_order_only,
    kernel_applies,
    laid_out_like,
    neuron_parameters,
    pointer,
    surrogate_of,
    time_major,
    time_rows,
)
from spikeexp.functional.fused.recurrent import fused_recurrent
from spikeexp.functional.unroll import reference_sequence

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel

_PARAMETERS = ("a", "b", "v_leak", "v_th", "v_reset")

INLINE_SURROGATES = {"super": 1, "fast_sigmoid": 2, "triangle": 3, "straight_through": 4}
"""Surrogates the backward kernel evaluates itself (codes of ``kernels.cpp``), bit-identical to
:func:`~spikeexp.functional.surrogate.surrogate_derivative`; the others are computed in PyTorch
and passed in (one more pass over ``[T, ...]``)."""


class LIFSequenceFunction(torch.autograd.Function):
    """Autograd node of the whole LIF sequence.

    Inputs: ``x [T, *S]`` with consecutive dense time steps (contiguous or channels-last steps)
    or one contiguous step repeated with time stride 0 (a constant input), initial ``v, i [*S]``
    laid out like ``x[0]``, and the per-neuron parameters ``a = dt tau_mem_inv``,
    ``b = dt tau_syn_inv``, ``v_leak``, ``v_th``, ``v_reset``: all laid out like ``x[0]``, or all
    contiguous ``S[1:]`` arrays shared by every sample (not with parameter gradients); then the
    surrogate ``method`` and ``alpha``.
    Outputs: spikes ``[T, *S]`` laid out like ``x`` (contiguous for a constant input), final
    ``v`` and ``i``.
    """

    @staticmethod
    def forward(ctx, x, v0, i0, a, b, v_leak, v_th, v_reset, method, alpha):
        params = (a, b, v_leak, v_th, v_reset)
        steps, m = x.shape[0], x[0].numel()
        period = max(a.numel(), 1)  # parameters repeat every `period` neurons (kernels.cpp)
        need_params = any(ctx.needs_input_grad[3:8])
        if need_params and period != m:
            raise ValueError("parameters that need gradients must be given per neuron [*S]")
        # An input with time stride 0 (the same at every step) is read from its one step.
        x_stride = 0 if x.stride(0) == 0 else m
        z = torch.empty_like(x)
        u = torch.empty_like(x) if any(ctx.needs_input_grad) else None
        j = torch.empty_like(x) if need_params else None
        v = v0.clone()
        i = i0.clone()
        run = kernel("lif_forward", x.dtype)
        run(steps, m, period, pointer(x), x_stride, *[pointer(t) for t in (z, u, j, v, i, *params)])
        ctx.save_for_backward(u, j, v0, *params)
        ctx.set_materialize_grads(False)  # unused outputs: None, not zeros (see backward)
        ctx.method = method
        ctx.alpha = alpha
        ctx.need_params = need_params
        return z, v, i

    @staticmethod
    def backward(ctx, grad_z, grad_v, grad_i):
        u, j, v0, a, b, v_leak, v_th, v_reset = ctx.saved_tensors
        steps, m, period = u.shape[0], u[0].numel(), max(a.numel(), 1)
        code = INLINE_SURROGATES.get(ctx.method, 0)
        # g: the surrogate derivative on entry (code 0 only), the input gradient on exit.
        g = torch.empty_like(u) if code else surrogate_of(u, v_th, ctx.method, ctx.alpha)
        gz, gz_stride = time_rows(grad_z, u)
        # Fresh copies laid out like the state: the kernel overwrites them. An absent gradient
        # (None) is not a zero one: the kernel skips its terms, as autograd does (0 * inf).
        gv = torch.zeros_like(v0) if grad_v is None else torch.empty_like(v0).copy_(grad_v)
        gi = torch.zeros_like(v0) if grad_i is None else torch.empty_like(v0).copy_(grad_i)
        grads = [torch.zeros_like(v0) for _ in _PARAMETERS] if ctx.need_params else [None] * 5
        run = kernel("lif_backward", u.dtype)
        head = [pointer(t) for t in (u, g, gz)]
        given = (int(grad_v is not None), int(grad_i is not None))
        tail = [pointer(t) for t in (v0, j, a, b, v_leak, v_th, v_reset, *grads)]
        run(
            code,
            ctx.alpha,
            steps,
            m,
            period,
            *head,
            gz_stride,
            pointer(gv),
            pointer(gi),
            *given,
            *tail,
        )
        if grad_v is None and grad_z is None:  # no gradient reaches v: autograd gives None
            gv = grads[0] = grads[2] = grads[3] = grads[4] = None
        grads = first_order_only(
            "the fused LIF kernel", (g, gv, gi, *grads), (grad_z, grad_v, grad_i)
        )
        return (*grads, None, None)


def lif_fused_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_sequence`` with the LIF model: spikes ``[T, ...]``, final state.

    Uses :class:`LIFSequenceFunction` on the CPU for float32/float64; otherwise (other devices
    or dtypes, no compiler, recorded states, parameters or states that do not broadcast to the
    state shape) runs the exact pure-PyTorch step loop. A dense ``x`` keeps its memory layout
    (channels_last feature maps stay channels_last); a contiguous input repeated over time with
    stride 0 (a constant input, e.g. after :class:`~spikeexp.module.Lift` of a constant current)
    is read in place; others are made contiguous.
    """
    shape = x.shape[1:]
    values = [p.tau_mem_inv, p.tau_syn_inv, p.v_leak, p.v_th, p.v_reset, state.v, state.i]
    if (
        record_states
        or not kernel_applies(x, values)
        or not all(broadcasts_to(value, shape) for value in values)
    ):
        return reference_sequence(model, x, state, p, dt, record_states)
    constant = x.shape[0] > 1 and x.stride(0) == 0 and x[0].is_contiguous()
    x = x if constant else time_major(x)
    like = x[0]
    raw = [dt * p.tau_mem_inv, dt * p.tau_syn_inv, p.v_leak, p.v_th, p.v_reset]
    params = neuron_parameters(raw, like)
    v0 = laid_out_like(state.v, like)
    i0 = laid_out_like(state.i, like)
    z, v, i = LIFSequenceFunction.apply(x, v0, i0, *params, p.method, float(p.alpha))
    return z, type(state)(v, i)


def lif_fused_recurrent_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_recurrent_sequence`` with the LIF model (see
    :mod:`spikeexp.functional.fused.recurrent`)."""
    return fused_recurrent(
        model, x, state, input_weights, recurrent_weights, p, dt, record_states, "lif"
    )
