r"""Whole-sequence recurrent LIF and LSNN layers: one autograd node for all ``T`` steps.

The input projection :math:`W_{in} x` is one matrix product over ``[T * batch, input]`` (outside
the node, as in the reference). The node runs the recurrence
:math:`c_t = W_{in} x_t + W_{rec} z_{t-1}` and the neuron step for every batch row in one C++
pass (rows split across threads), so the per-step cost is a few hundred floating-point
operations instead of a dozen PyTorch calls. Saved for backward: the threshold distance
:math:`d_t` (the surrogate's argument; spikes are :math:`H(d_t)`) and the spikes (the node's
output, needed for :math:`\partial L / \partial W_{rec} = \sum_t g_t^\top z_{t-1}`, one matrix
product). The voltage reset is detached, the adaptation jump is not, as in the step functions.

Exactness: the neuron arithmetic matches the step functions operation by operation; the
recurrent sum :math:`W_{rec} z_{t-1}` is accumulated in input order, where the reference calls
BLAS, so currents may differ in the last bit (relative 1e-7) and a voltage that lands within
that of the threshold could spike in one and not the other.

Learnable neuron parameters (a tensor that requires grad) are not covered: those layers run the
pure-PyTorch step loop (exact, slower).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from spikeexp.functional.fused.build import kernel
from spikeexp.functional.fused.common import (
    any_requires_grad,
    broadcasts_to,
    first_order_only,
    kernel_applies,
    per_neuron,
    pointer,
    surrogate_of,
    time_rows,
)
from spikeexp.functional.unroll import reference_recurrent_sequence

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel

MODES = {"lif": 0, "norse": 1, "bellec": 2}

BLAS_HIDDEN = 256
"""Hidden sizes from which the backward computes the recurrent gradient :math:`g_t W` of each step
with one BLAS matrix product over the batch instead of the kernel's loop per row (measured:
``benchmarks/bench_recurrent.py``)."""


class RecurrentSequenceFunction(torch.autograd.Function):
    """Autograd node of a recurrent LIF/LSNN sequence.

    Inputs: projected input ``[T, B, H]``, recurrent weights ``W [H, H]``, initial spikes, ``v``,
    ``i`` and adaptation ``b`` (``[B, H]``; ``b`` is ``None`` for LIF), the per-neuron
    parameters as a tuple of ``[B, H]`` tensors ``(a, b_syn, c, v_leak, v_th, v_reset, beta)``
    (``a = dt tau_mem_inv``, ``b_syn = dt tau_syn_inv``, ``c = dt tau_adapt_inv``), the mode
    (:data:`MODES`), surrogate ``method`` and ``alpha``.
    Outputs: spikes ``[T, B, H]``, final spikes, ``v``, ``i``, ``b`` (``None`` for LIF).
    """

    @staticmethod
    def forward(ctx, projected, weights, z0, v0, i0, b0, params, mode, method, alpha):
        steps, batch, hidden = projected.shape
        z = torch.empty_like(projected)
        d = torch.empty_like(projected)
        v, i = v0.clone(), i0.clone()
        adapt = None if b0 is None else b0.clone()
        transposed = weights.t().contiguous()
        run = kernel("recurrent_forward", projected.dtype)
        ptrs = [pointer(t) for t in (projected, transposed, z0, z, d, v, i, adapt, *params)]
        run(mode, steps, batch, hidden, *ptrs)
        ctx.save_for_backward(d, z, weights, z0, *params)
        ctx.mode, ctx.method, ctx.alpha = mode, method, alpha
        return z, z[-1].clone(), v, i, adapt

    @staticmethod
    def backward(ctx, grad_z, grad_z_final, grad_v, grad_i, grad_b):
        d, z, weights, z0, *params = ctx.saved_tensors
        steps, batch, hidden = d.shape
        a, b_syn, c, _, _, _, beta = params

        def state_grad(grad: torch.Tensor | None) -> torch.Tensor:
            if grad is None:
                return torch.zeros_like(z0)
            return grad.clone(memory_format=torch.contiguous_format)

        sg = surrogate_of(d, None, ctx.method, ctx.alpha)
        gz, gz_stride = time_rows(grad_z)
        g = torch.empty_like(d)
        gv, gi, gzr = state_grad(grad_v), state_grad(grad_i), state_grad(grad_z_final)
        gb = state_grad(grad_b) if ctx.mode != 0 else None
        w = weights.contiguous()
        run = kernel("recurrent_backward", d.dtype)
        state = [pointer(t) for t in (gv, gi, gb, gzr, a, b_syn, c, beta)]
        if hidden < BLAS_HIDDEN:
            head = [pointer(t) for t in (d, sg, w, gz)]
            run(ctx.mode, steps, batch, hidden, *head, gz_stride, pointer(g), *state)
        else:  # one kernel call per step, the recurrent gradient g_t W by BLAS in between
            for t in range(steps - 1, -1, -1):
                gz_t = None if gz is None else (gz[t] if gz_stride else gz)
                head = [pointer(x) for x in (d[t], sg[t], None, gz_t)]
                run(ctx.mode, 1, batch, hidden, *head, 0, pointer(g[t]), *state)
                torch.mm(g[t], w, out=gzr)
        grad_weights = None
        if ctx.needs_input_grad[1]:
            grad_weights = g[0].t() @ z0
            if steps > 1:
                grad_weights += g[1:].reshape(-1, hidden).t() @ z[:-1].reshape(-1, hidden)
        outgoing = (g, grad_weights, gzr, gv, gi, gb)
        incoming = (grad_z, grad_z_final, grad_v, grad_i, grad_b)
        grads = first_order_only("the fused recurrent kernel", outgoing, incoming)
        return (*grads, None, None, None, None)


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
    params = tuple(per_neuron(dt * rate, shape, x) for rate in rates) + tuple(
        per_neuron(value, shape, x) for value in others
    )
    initial = [per_neuron(value, shape, x) for value in (z0, *neuron)]
    adapt0 = initial[3] if adaptive else None
    projected = F.linear(x, input_weights).contiguous()
    spikes, z, v, i, b = RecurrentSequenceFunction.apply(
        projected,
        recurrent_weights,
        initial[0],
        initial[1],
        initial[2],
        adapt0,
        params,
        MODES[mode],
        p.method,
        float(p.alpha),
    )
    final_neuron = type(neuron)(v, i, b) if adaptive else type(neuron)(v, i)
    return spikes, type(state)(z, final_neuron)
