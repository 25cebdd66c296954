"""CUDA implementations of the fused operators (:mod:`~spikeexp.functional.fused.ops`): the
Triton kernels of :mod:`~spikeexp.functional.fused.triton_kernels`.

Same functions and arguments as :mod:`~spikeexp.functional.fused.cpu`. On CPU tensors the same
kernels run in Triton's interpreter (a separate copy of the kernel module built with
``TRITON_INTERPRET=1``, which is set only while such a kernel runs): slow, for testing the
kernels without a GPU.

Recurrent layers up to :data:`PERSISTENT_MAX_HIDDEN` neurons run one persistent program per
batch row with the recurrent weights in registers; larger layers run one cuBLAS product
(``torch.mm``) and one pointwise kernel per step. Kernels are launched with
``enable_fp_fusion=False``: no fused multiply-add, the step functions' rounding.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
from collections.abc import Iterator
from types import ModuleType

import torch
from torch import Tensor

from spikeexp.functional.fused.common import input_stride, period, surrogate_of

NAME = "Triton kernels"
"""How :class:`~spikeexp.callbacks.backends.BackendReport` names this implementation."""
SURROGATE_CODES = {
    "super": 0,
    "sigmoid": 1,
    "fast_sigmoid": 2,
    "triangle": 3,
    "arctan": 4,
    "tanh": 5,
    "erfc": 6,
    "straight_through": 7,
}
"""Surrogates of :data:`spikeexp.functional.surrogate.SURROGATES` the kernels evaluate inline
(``triton_kernels.surrogate``; same formulas, rounding may differ in the last bits). Any other
is computed with :func:`~spikeexp.functional.surrogate.surrogate_derivative` before the
backward kernel and read by it (code ``GIVEN``)."""
GIVEN = -1
PERSISTENT_MAX_HIDDEN = 128
"""Largest hidden size whose recurrent weights one program holds on chip."""
_KERNELS = "spikeexp.functional.fused.triton_kernels"


@functools.cache
def _kernel_module(interpret: bool) -> ModuleType:
    """The kernel module; with ``interpret`` a second copy compiled for Triton's interpreter
    (kernels are bound to the interpreter when their module is executed)."""
    if not interpret:
        return importlib.import_module(_KERNELS)
    spec = importlib.util.find_spec(_KERNELS)
    assert spec is not None and spec.origin is not None
    copy = importlib.util.spec_from_file_location(f"{_KERNELS}_interpreted", spec.origin)
    assert copy is not None and copy.loader is not None
    module = importlib.util.module_from_spec(copy)
    with _interpreter():
        copy.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _interpreter() -> Iterator[None]:
    """``TRITON_INTERPRET=1`` for the duration (Triton reads it while an interpreted kernel
    runs), the previous value restored; NaN/inf arithmetic warnings of NumPy silenced."""
    import numpy

    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        with numpy.errstate(all="ignore"):
            yield
    finally:
        if previous is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = previous


@contextlib.contextmanager
def _launching(device: torch.device) -> Iterator[ModuleType]:
    """The kernel module for tensors on ``device``, with the device current (CUDA) or the
    interpreter on (CPU)."""
    if device.type == "cuda":
        with torch.cuda.device(device):
            yield _kernel_module(False)
    else:
        kernels = _kernel_module(True)
        with _interpreter():
            yield kernels


def _block(m: int, state: Tensor) -> tuple[int, int]:
    """(neurons per program, warps) for ``m`` neurons with a state like ``state``: the largest
    block that still gives every streaming multiprocessor several programs (at most 256 for a
    float64 state: twice the registers per value); 64 in the interpreter."""
    if state.device.type != "cuda":
        return 64, 1
    processors = torch.cuda.get_device_properties(state.device).multi_processor_count
    blocks = (256, 128) if state.dtype == torch.float64 else (512, 256, 128)
    for block in blocks:
        if -(-m // block) >= 4 * processors:
            return block, 4
    return 64, 2


def _grid(count: int, block: int) -> tuple[int]:
    return (max(1, -(-count // block)),)


def _method(method: str) -> int:
    """The kernels' surrogate code (:data:`SURROGATE_CODES`, else :data:`GIVEN`)."""
    return SURROGATE_CODES.get(method, GIVEN)


def _last(steps: int, row: int, grad_stride: int) -> tuple[int, int]:
    """Offsets of the last time row: of the state arrays (``row`` elements per step) and of a
    gradient with ``grad_stride`` elements per step (0: repeated over time)."""
    return (steps - 1) * row, (steps - 1) * grad_stride


def _or(tensor: Tensor, placeholder: Tensor) -> Tensor:
    """``tensor``, or a valid placeholder pointer where the kernel does not read it (empty)."""
    return tensor if tensor.numel() else placeholder


def _rows(grad: Tensor | None, like: Tensor) -> tuple[Tensor | None, int]:
    """A gradient over time laid out like ``like`` (``[T, ...]``) in its own dtype, and the
    elements between its time rows (0 for a gradient repeated over time with stride 0)."""
    if grad is None:
        return None, 0
    constant = grad.shape[0] > 1 and grad.stride(0) == 0
    step, target = (grad[0], like[0]) if constant else (grad, like)
    if step.stride() != target.stride():
        step = torch.empty_like(target, dtype=step.dtype).copy_(step)
    return step, 0 if constant else like[0].numel()


def lif_forward(x, z, u, j, v, i, a, b, v_leak, v_th, v_reset) -> None:
    """Feed-forward LIF (see :func:`spikeexp.functional.fused.cpu.lif_forward`)."""
    m = x[0].numel()
    block, warps = _block(m, v)
    with _launching(x.device) as kernels:
        kernels.lif_forward_kernel[_grid(m, block)](
            x, z, _or(u, v), _or(j, v), v, i, a, b, v_leak, v_th, v_reset,
            x.shape[0], m, period(a), input_stride(x),
            SAVE_U=u.numel() > 0, SAVE_J=j.numel() > 0, BLOCK=block,
            num_warps=warps, enable_fp_fusion=False,
        )  # fmt: skip


def lif_backward(
    method, alpha, u, g, grad_z, gv, gi, v0, j, a, b, v_leak, v_th, v_reset, grads,
    given=(True, True),
) -> None:  # fmt: skip
    """Backward of :func:`lif_forward` (see :func:`spikeexp.functional.fused.cpu.lif_backward`).
    ``given`` is accepted for the common signature; this kernel treats an absent final-state
    gradient as the zeros it is filled with (identical unless the state holds inf or NaN)."""
    code = _method(method)
    if code == GIVEN:
        surrogate_of(u, v_th, method, alpha, out=g)
    gz, gz_stride = _rows(grad_z, u)
    m = u[0].numel()
    block, warps = _block(m, u)
    params = bool(grads[0].numel())
    targets = [t if params else gv for t in grads]
    with _launching(u.device) as kernels:
        kernels.lif_backward_kernel[_grid(m, block)](
            u, g, gv if gz is None else gz, gv, gi, v0, _or(j, v0),
            a, b, v_leak, v_th, v_reset, *targets,
            float(alpha), u.shape[0], m, period(a), gz_stride, *_last(u.shape[0], m, gz_stride),
            METHOD=code, HAS_GZ=gz is not None, PARAMS=params, BLOCK=block,
            num_warps=warps, enable_fp_fusion=False,
        )  # fmt: skip


def lsnn_forward(mode, x, z, u, d, v, i, adapt, a, bs, c, v_leak, v_th, v_reset, beta) -> None:
    """Feed-forward LSNN (``mode`` 1: Norse's adaptation, 2: Bellec's)."""
    m = x[0].numel()
    block, warps = _block(m, v)
    with _launching(x.device) as kernels:
        kernels.lsnn_forward_kernel[_grid(m, block)](
            x, z, _or(u, v), _or(d, v), v, i, adapt, a, bs, c, v_leak, v_th, v_reset, beta,
            x.shape[0], m, period(a), input_stride(x),
            MODE=mode, SAVE=u.numel() > 0, BLOCK=block, num_warps=warps, enable_fp_fusion=False,
        )  # fmt: skip


def lsnn_backward(mode, method, alpha, u, d, g, grad_z, gv, gi, gb, a, bs, c, v_reset, beta):
    """Backward of :func:`lsnn_forward`."""
    code = _method(method)
    if code == GIVEN:
        surrogate_of(d, None, method, alpha, out=g)
    gz, gz_stride = _rows(grad_z, u)
    m = u[0].numel()
    block, warps = _block(m, u)
    with _launching(u.device) as kernels:
        kernels.lsnn_backward_kernel[_grid(m, block)](
            u, d, g, gv if gz is None else gz, gv, gi, gb, a, bs, c, v_reset, beta,
            float(alpha), u.shape[0], m, period(a), gz_stride, *_last(u.shape[0], m, gz_stride),
            MODE=mode, METHOD=code, HAS_GZ=gz is not None, BLOCK=block,
            num_warps=warps, enable_fp_fusion=False,
        )  # fmt: skip


def li_forward(x, out, j, v, i, a, b, v_leak) -> None:
    """Leaky integrators: voltages ``out`` (state dtype), saved ``j`` (empty: not saved)."""
    m = x[0].numel()
    block, warps = _block(m, v)
    with _launching(x.device) as kernels:
        kernels.li_forward_kernel[_grid(m, block)](
            x, out, _or(j, v), v, i, a, b, v_leak, x.shape[0], m, period(a), input_stride(x),
            SAVE_J=j.numel() > 0, BLOCK=block, num_warps=warps, enable_fp_fusion=False,
        )  # fmt: skip


def li_backward(grad_out, g, gv, gi, out, v0, j, a, b, v_leak, grads) -> None:
    """Backward of :func:`li_forward`."""
    gout, gout_stride = _rows(grad_out, g)
    m = v0.numel()
    block, warps = _block(m, v0)
    params = bool(grads[0].numel())
    targets = [t if params else gv for t in grads]
    with _launching(v0.device) as kernels:
        kernels.li_backward_kernel[_grid(m, block)](
            gv if gout is None else gout, g, gv, gi, v0 if out is None else out, v0,
            _or(j, v0), a, b, v_leak, *targets, g.shape[0], m, period(a), gout_stride,
            *_last(g.shape[0], m, gout_stride),
            HAS_GOUT=gout is not None, PARAMS=params, BLOCK=block,
            num_warps=warps, enable_fp_fusion=False,
        )  # fmt: skip


def _hidden_block(hidden: int) -> tuple[int, int]:
    """(padded hidden size, warps) of a persistent recurrent program."""
    padded = max(16, 1 << (hidden - 1).bit_length())
    return padded, 8 if padded >= 128 else 4


def recurrent_forward(
    mode, projected, weights, z0, z, d, v, i, adapt, a, bs, c, v_leak, v_th, v_reset, beta
) -> None:
    """Recurrent LIF (``mode`` 0) or LSNN (1, 2) layer."""
    steps, batch, hidden = projected.shape
    w = weights.to(v.dtype).contiguous()
    adapt = _or(adapt, v)
    params = (a, bs, c, v_leak, v_th, v_reset, beta)
    if hidden <= PERSISTENT_MAX_HIDDEN:
        padded, warps = _hidden_block(hidden)
        with _launching(v.device) as kernels:
            kernels.recurrent_forward_kernel[(batch,)](
                projected, w.t().contiguous(), z0, z, d, v, i, adapt, *params,
                steps, batch * hidden, hidden,
                MODE=mode, HIDDEN=padded, num_warps=warps, enable_fp_fusion=False,
            )  # fmt: skip
        return
    size = batch * hidden
    block, warps = _block(size, v)
    separate = z.dtype != v.dtype
    spikes = torch.empty_like(z, dtype=v.dtype) if separate else z
    previous = z0
    with _launching(v.device) as kernels:
        for t in range(steps):
            recurrent = torch.mm(previous, w.t())
            kernels.recurrent_step_kernel[_grid(size, block)](
                projected[t], recurrent, z[t], spikes[t], d[t], v, i, adapt, *params, size,
                MODE=mode, SEPARATE_ZS=separate, BLOCK=block,
                num_warps=warps, enable_fp_fusion=False,
            )  # fmt: skip
            previous = spikes[t]


def recurrent_backward(
    mode, method, alpha, d, weights, grad_z, g, gv, gi, gb, gz0, a, bs, c, beta
) -> None:
    """Backward of :func:`recurrent_forward`: ``g`` receives the gradient of the total input
    current; ``gz0`` holds the final spikes' gradient on entry, the initial spikes' on exit."""
    steps, batch, hidden = d.shape
    code = _method(method)
    if code == GIVEN:
        surrogate_of(d, None, method, alpha, out=g)
    w = weights.to(d.dtype).contiguous()
    gz, gz_stride = _rows(grad_z, d)
    gb = _or(gb, gv)
    params = (a, bs, c, beta)
    if hidden > PERSISTENT_MAX_HIDDEN:
        _recurrent_backward_steps(
            mode, code, alpha, d, w, (gz, gz_stride), g, gv, gi, gb, gz0, params
        )
        return
    padded, warps = _hidden_block(hidden)
    with _launching(d.device) as kernels:
        kernels.recurrent_backward_kernel[(batch,)](
            d, w, gv if gz is None else gz, g, gv, gi, gb, gz0, *params,
            float(alpha), steps, batch * hidden, hidden, gz_stride,
            *_last(steps, batch * hidden, gz_stride),
            MODE=mode, METHOD=code, HAS_GZ=gz is not None, HIDDEN=padded,
            num_warps=warps, enable_fp_fusion=False,
        )  # fmt: skip


def _recurrent_backward_steps(mode, code, alpha, d, w, rows, g, gv, gi, gb, gz0, params) -> None:
    """Per step, last first: the pointwise backward kernel, then the spikes' gradient through
    ``W_rec`` for the step before (:math:`g_t W`, cuBLAS). ``rows``: the spike gradient and its
    time stride (:func:`_rows`)."""
    gz, gz_stride = rows
    steps, batch, hidden = d.shape
    size = batch * hidden
    block, warps = _block(size, d)
    through = gz0.clone()
    with _launching(d.device) as kernels:
        for t in range(steps - 1, -1, -1):
            outside = gv if gz is None else gz.view(-1)[t * gz_stride : t * gz_stride + size]
            kernels.recurrent_step_backward_kernel[_grid(size, block)](
                d[t], outside, through, g[t], gv, gi, gb, *params, float(alpha), size,
                MODE=mode, METHOD=code, HAS_GZ=gz is not None, BLOCK=block,
                num_warps=warps, enable_fp_fusion=False,
            )  # fmt: skip
            through = torch.mm(g[t], w)
    gz0.copy_(through)


def _pool_block(device: torch.device) -> int:
    """Output (forward) or input (backward) elements per program."""
    return 1024 if device.type == "cuda" else 256


def max_pool_forward(x: Tensor, y: Tensor, where: Tensor, size: int) -> None:
    """Maxima ``y`` and their window positions ``where`` of contiguous ``x [*, H, W]``."""
    height, width = x.shape[-2:]
    count = y.numel()
    block = _pool_block(x.device)
    with _launching(x.device) as kernels:
        kernels.max_pool_forward_kernel[_grid(count, block)](
            x, y, where, count, height, width, y.shape[-2], y.shape[-1], K=size, BLOCK=block
        )


def max_pool_backward(grad_y: Tensor, where: Tensor, grad_x: Tensor, size: int) -> None:
    """Each ``grad_y`` element to its window's maximum in ``grad_x``, zero elsewhere."""
    height, width = grad_x.shape[-2:]
    count = grad_x.numel()
    block = _pool_block(grad_x.device)
    with _launching(grad_x.device) as kernels:
        kernels.max_pool_backward_kernel[_grid(count, block)](
            grad_y, where, grad_x, count, height, width, grad_y.shape[-2], grad_y.shape[-1],
            K=size, BLOCK=block,
        )  # fmt: skip
