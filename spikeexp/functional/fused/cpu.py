"""CPU implementations of the fused operators (:mod:`~spikeexp.functional.fused.ops`): the C++
kernels of ``kernels.cpp`` through :mod:`ctypes`.

Every function fills the preallocated outputs the operator passes (same names and meaning in
:mod:`~spikeexp.functional.fused.gpu`). The C++ kernels compute in float32 or float64; bfloat16
inputs and spike outputs are converted to and from the float32 state here. The surrogate
derivatives of :data:`INLINE_SURROGATES` are evaluated inside the feed-forward LIF backward
kernel; all others come from :func:`~spikeexp.functional.surrogate.surrogate_derivative`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from spikeexp.functional.fused.build import kernel
from spikeexp.functional.fused.common import (
    input_stride,
    period,
    pointer,
    surrogate_of,
    time_rows,
)

NAME = "C++ kernels"
"""How :class:`~spikeexp.callbacks.backends.BackendReport` names this implementation."""
INLINE_SURROGATES = {"super": 1, "fast_sigmoid": 2, "triangle": 3, "straight_through": 4}
"""Surrogates the LIF backward kernel evaluates itself (codes of ``kernels.cpp``), bit-identical
to :func:`~spikeexp.functional.surrogate.surrogate_derivative`."""


def _in_state_dtype(x: Tensor, dtype: torch.dtype) -> Tensor:
    """``x`` in the state dtype, a time-stride-0 input still read from its one step."""
    if x.dtype == dtype:
        return x
    if x.shape[0] > 1 and x.stride(0) == 0:
        return x[0].to(dtype).expand(x.shape)
    return x.to(dtype)


def _state_output(out: Tensor, dtype: torch.dtype) -> Tensor:
    """Where a kernel writes ``out``: itself, or a state-dtype buffer (copied back after)."""
    return out if out.dtype == dtype else torch.empty_like(out, dtype=dtype)


def _direct_bfloat16(sequence: Tensor | None, state: Tensor) -> bool:
    """The bfloat16 LIF kernels read or write ``sequence`` as it is (no float32 copy)."""
    bfloat16 = sequence is None or sequence.dtype == torch.bfloat16
    return bfloat16 and state.dtype == torch.float32


def lif_forward(x, z, u, j, v, i, a, b, v_leak, v_th, v_reset) -> None:
    """Feed-forward LIF: spikes ``z``, saved ``u`` and ``j`` (empty: not saved), state ``v``,
    ``i`` updated in place. A bfloat16 ``x`` and ``z`` are read and written as they are."""
    direct = x.dtype == torch.bfloat16 and _direct_bfloat16(z, v)
    xs = x if direct else _in_state_dtype(x, v.dtype)
    zs = z if direct else _state_output(z, v.dtype)
    run = kernel("lif_forward", x.dtype if direct else v.dtype)
    ptrs = [pointer(t) for t in (zs, u, j, v, i, a, b, v_leak, v_th, v_reset)]
    run(x.shape[0], x[0].numel(), period(a), pointer(xs), input_stride(x), *ptrs)
    if zs is not z:
        z.copy_(zs)


SUMS_OVER_TIME = True
""":func:`lif_backward` can return the input gradient summed over time (``time_sum``) without
writing it per step, for an input that is the same at every step."""


def lif_backward(
    method, alpha, u, g, grad_z, gv, gi, v0, j, a, b, v_leak, v_th, v_reset, grads, given,
    time_sum=None,
) -> None:  # fmt: skip
    """Backward of :func:`lif_forward`: input gradient into ``g``; ``gv``, ``gi`` from the final
    to the initial state's gradient; parameter gradients accumulated into ``grads`` (empty:
    none). ``given``: whether the final state's gradients ``(gv, gi)`` exist; an absent one
    (zero-filled) contributes no terms at all, as in autograd, where ``0 * inf`` would be NaN.
    ``time_sum`` (a state-shaped tensor): receives the input gradient summed over time instead
    of ``g`` (which may then be ``None``: the surrogate derivative of the non-inline surrogates
    gets a buffer of its own)."""
    code = INLINE_SURROGATES.get(method, 0)
    if not code:
        g = torch.empty_like(u) if g is None else g
        surrogate_of(u, v_th, method, alpha, out=g)
    direct = grad_z is not None and grad_z.dtype == torch.bfloat16 and _direct_bfloat16(None, u)
    gz, gz_stride = time_rows(grad_z, u, torch.bfloat16 if direct else None)
    run = kernel("lif_backward", torch.bfloat16 if direct else u.dtype)
    head = [pointer(t) for t in (u, g, time_sum, gz)]
    state = [pointer(gv), pointer(gi), *(int(flag) for flag in given)]
    tail = [pointer(t) for t in (v0, j, a, b, v_leak, v_th, v_reset, *grads)]
    run(code, alpha, u.shape[0], u[0].numel(), period(a), *head, gz_stride, *state, *tail)


def lsnn_forward(mode, x, z, u, d, v, i, adapt, a, bs, c, v_leak, v_th, v_reset, beta) -> None:
    """Feed-forward LSNN (``mode`` 1: Norse's adaptation, 2: Bellec's)."""
    xs = _in_state_dtype(x, v.dtype)
    zs = _state_output(z, v.dtype)
    run = kernel("lsnn_forward", v.dtype)
    params = (a, bs, c, v_leak, v_th, v_reset, beta)
    ptrs = [pointer(t) for t in (zs, u, d, v, i, adapt, *params)]
    run(mode, x.shape[0], x[0].numel(), period(a), pointer(xs), input_stride(x), *ptrs)
    if zs is not z:
        z.copy_(zs)


def lsnn_backward(mode, method, alpha, u, d, g, grad_z, gv, gi, gb, a, bs, c, v_reset, beta):
    """Backward of :func:`lsnn_forward` (the surrogate derivative computed in PyTorch)."""
    surrogate_of(d, None, method, alpha, out=g)
    gz, gz_stride = time_rows(grad_z, u)
    run = kernel("lsnn_backward", u.dtype)
    head = [pointer(t) for t in (u, d, g, gz)]
    tail = [pointer(t) for t in (gv, gi, gb, a, bs, c, v_reset, beta)]
    run(mode, u.shape[0], u[0].numel(), period(a), *head, gz_stride, *tail)


def li_forward(x, out, j, v, i, a, b, v_leak) -> None:
    """Leaky integrators: voltages ``out`` (state dtype), saved ``j`` (empty: not saved)."""
    xs = _in_state_dtype(x, v.dtype)
    run = kernel("li_forward", v.dtype)
    ptrs = [pointer(t) for t in (out, j, v, i, a, b, v_leak)]
    run(x.shape[0], x[0].numel(), period(a), pointer(xs), input_stride(x), *ptrs)


def li_backward(grad_out, g, gv, gi, out, v0, j, a, b, v_leak, grads) -> None:
    """Backward of :func:`li_forward`; ``out`` and ``j`` are read for parameter gradients
    only (``grads`` not empty)."""
    gout, gout_stride = time_rows(grad_out, g)
    run = kernel("li_backward", v0.dtype)
    ptrs = [pointer(t) for t in (g, gv, gi, out, v0, j, a, b, v_leak, *grads)]
    run(g.shape[0], v0.numel(), period(a), pointer(gout), gout_stride, *ptrs)


def recurrent_forward(
    mode, projected, weights, z0, z, d, v, i, adapt, a, bs, c, v_leak, v_th, v_reset, beta
) -> None:
    """Recurrent LIF (``mode`` 0) or LSNN (1, 2) layer; ``z`` also feeds back, so it is
    computed in the state dtype."""
    steps, batch, hidden = projected.shape
    ps = _in_state_dtype(projected, v.dtype).contiguous()
    zs = _state_output(z, v.dtype)
    transposed = weights.to(v.dtype).t().contiguous()
    run = kernel("recurrent_forward", v.dtype)
    params = (a, bs, c, v_leak, v_th, v_reset, beta)
    ptrs = [pointer(t) for t in (ps, transposed, z0, zs, d, v, i, adapt, *params)]
    run(mode, steps, batch, hidden, *ptrs)
    if zs is not z:
        z.copy_(zs)


BLAS_HIDDEN = 256
"""Hidden sizes from which the recurrent backward computes each step's recurrent gradient
:math:`g_t W` with one BLAS product over the batch instead of the kernel's loop per batch row
(which streams all of ``W`` for every row; measured: ``benchmarks/bench_recurrent.py``)."""


def recurrent_backward(
    mode, method, alpha, d, weights, grad_z, g, gv, gi, gb, gz0, a, bs, c, beta
) -> None:
    """Backward of :func:`recurrent_forward` through the neurons and ``W_rec``: the gradient of
    the total input current into ``g``; ``gz0`` holds the final spikes' gradient on entry. From
    :data:`BLAS_HIDDEN` neurons on, one kernel call per step and a BLAS product in between."""
    steps, batch, hidden = d.shape
    sg = surrogate_of(d, None, method, alpha)
    gz, gz_stride = time_rows(grad_z, d)
    w = weights.to(d.dtype).contiguous()
    run = kernel("recurrent_backward", d.dtype)
    state = [pointer(t) for t in (gv, gi, gb, gz0, a, bs, c, beta)]
    if hidden < BLAS_HIDDEN:
        head = [pointer(t) for t in (d, sg, w, gz)]
        run(mode, steps, batch, hidden, *head, gz_stride, pointer(g), *state)
        return
    for t in range(steps - 1, -1, -1):
        gz_t = None if gz is None else (gz[t] if gz_stride else gz)
        head = [pointer(x) for x in (d[t], sg[t], None, gz_t)]
        run(mode, 1, batch, hidden, *head, 0, pointer(g[t]), *state)
        torch.mm(g[t], w, out=gz0)


def _pool_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def max_pool_forward(x: Tensor, y: Tensor, where: Tensor, size: int) -> None:
    """Maxima ``y`` and their window positions ``where`` of contiguous ``x [*, H, W]``
    (bfloat16 through float32: the same maxima)."""
    dtype = _pool_dtype(x.dtype)
    xs, ys = x.to(dtype), _state_output(y, dtype)
    height, width = x.shape[-2:]
    run = kernel("max_pool_forward", dtype)
    run(x[..., 0, 0].numel(), height, width, size, pointer(xs), pointer(ys), pointer(where))
    if ys is not y:
        y.copy_(ys)


def max_pool_backward(grad_y: Tensor, where: Tensor, grad_x: Tensor, size: int) -> None:
    """Each ``grad_y`` element to its window's maximum in ``grad_x``, zero elsewhere."""
    dtype = _pool_dtype(grad_y.dtype)
    gy, gx = grad_y.to(dtype), _state_output(grad_x, dtype)
    height, width = grad_x.shape[-2:]
    run = kernel("max_pool_backward", dtype)
    run(gx[..., 0, 0].numel(), height, width, size, pointer(gy), pointer(where), pointer(gx))
    if gx is not grad_x:
        grad_x.copy_(gx)
