r"""Linear layers on spike input: :math:`y = x W^\top + b` by events instead of a dense GEMM.

The input of every layer after the first spiking layer is binary spikes, mostly zeros (10-25 %
ones in trained networks). The kernels of ``spike_linear.cpp`` use that:

* forward: :math:`y_n = b + \sum_{k: x_{nk} \ne 0} x_{nk} W_{:,k}`, a gather-sum of the weight
  columns of the active inputs (for binary spikes only additions);
* weight gradient: :math:`(\partial L/\partial W)_{:,k} = \sum_{n: x_{nk} \ne 0} x_{nk}
  (\partial L/\partial y_n)`, a scatter-sum of output-gradient rows, blocked so that they stay in
  the L2 cache;
* input gradient :math:`(\partial L/\partial y) W`: dense, the same BLAS call as
  ``torch.nn.functional.linear`` (the output gradient is not sparse).

Work and memory traffic scale with the number of nonzero inputs instead of their count, so the
product is faster than MKL's ``sgemm`` below a break-even spike density; :func:`spike_linear`
counts the nonzero inputs of each call and takes the event-driven path for the forward pass
and for the weight gradient separately below :data:`FORWARD_MAX_DENSITY` and
:data:`WEIGHT_GRAD_MAX_DENSITY` (measured: ``benchmarks/bench_spike_linear.py``), else the
dense one.

Exactness: each output is the float32 sum of the same terms as the dense product, in the order
of the active inputs (a GEMM adds them in its own blocked order), so both agree to rounding
(tested: within ``1e-6`` of the output's largest magnitude, and nearer the float64 product than
``sgemm`` is). Non-finite values behave as in the dense product: a non-finite weight or a
non-finite output gradient in a row without spikes, where the dense product's ``0 * inf``
gives NaN, sends the call to the dense path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeexp.functional.fused.build import kernel, kernels
from spikeexp.functional.fused.common import first_order_only, pointer

FORWARD_MAX_DENSITY = 0.25
"""Fraction of nonzero inputs up to which the forward pass is event-driven."""

WEIGHT_GRAD_MAX_DENSITY = 0.25
"""Fraction of nonzero inputs up to which the weight gradient is event-driven."""


class SpikeLinearFunction(torch.autograd.Function):
    """Autograd node of :func:`spike_linear` on ``x [rows, in]`` (contiguous float32).

    ``sparse_forward`` and ``sparse_weight_grad`` choose the event-driven kernel (else the dense
    BLAS product) for the forward pass and for the weight gradient.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, sparse_forward, sparse_weight_grad):
        rows, inputs = x.shape
        outputs = weight.shape[0]
        if sparse_forward:
            y = x.new_empty(rows, outputs)
            run = kernel("spike_linear_forward", torch.float32)
            run(rows, inputs, outputs, *(pointer(t) for t in (x, weight.contiguous(), bias, y)))
        else:
            y = F.linear(x, weight, bias)
        ctx.save_for_backward(x, weight)
        ctx.sparse_weight_grad = sparse_weight_grad
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, weight = ctx.saved_tensors
        grad_y = grad_y.contiguous()
        grad_x = grad_y.mm(weight) if ctx.needs_input_grad[0] else None
        grad_weight = grad_bias = None
        if ctx.needs_input_grad[1]:
            grad_weight = _weight_grad(x, grad_y) if ctx.sparse_weight_grad else None
            if grad_weight is None:
                grad_weight = grad_y.t().mm(x)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_y.sum(0)
        grads = first_order_only(
            "the event-driven spike product", (grad_x, grad_weight, grad_bias), (grad_y,)
        )
        return (*grads, None, None)


def _weight_grad(x: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor | None:
    """``grad_y^T x`` by the event-driven kernel; ``None`` where a non-finite gradient needs the
    dense product's NaN semantics."""
    rows, inputs = x.shape
    outputs = grad_y.shape[1]
    transposed = x.new_empty(inputs, outputs)
    run = kernel("spike_linear_weight_grad", torch.float32)
    hidden = run(rows, inputs, outputs, pointer(x), pointer(grad_y), pointer(transposed))
    if hidden or not bool(torch.isfinite(transposed).all()):
        return None
    return transposed.t().contiguous()


def spike_linear(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None
) -> torch.Tensor:
    """``torch.nn.functional.linear(x, weight, bias)`` for mostly-zero (spike) input ``x
    [..., in]``: event-driven where the fraction of nonzero inputs is low enough (module
    docstring), else the dense product. Same values up to float32 rounding, same gradients.

    Applies to float32 CPU tensors when the kernels are built, outside ``torch.compile``
    tracing (the dispatch depends on the data); anything else runs
    ``torch.nn.functional.linear``.
    """
    if torch.compiler.is_compiling():
        return F.linear(x, weight, bias)
    eligible = (
        x.dtype == torch.float32
        and weight.dtype == torch.float32
        and (bias is None or bias.dtype == torch.float32)
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and x.dim() >= 2
        and x.numel() > 0
        and kernels() is not None
    )
    if not eligible:
        return F.linear(x, weight, bias)
    flat = x.reshape(-1, x.shape[-1]).contiguous()
    density = int(torch.count_nonzero(flat)) / flat.numel()
    sparse_forward = density <= FORWARD_MAX_DENSITY and bool(torch.isfinite(weight).all())
    sparse_weight_grad = density <= WEIGHT_GRAD_MAX_DENSITY and weight.requires_grad
    if not (sparse_forward or (sparse_weight_grad and torch.is_grad_enabled())):
        return F.linear(x, weight, bias)
    y = SpikeLinearFunction.apply(flat, weight, bias, sparse_forward, sparse_weight_grad)
    return y.reshape(*x.shape[:-1], weight.shape[0])
