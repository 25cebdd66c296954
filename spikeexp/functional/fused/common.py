"""Helpers shared by the fused neuron kernels: eligibility, parameter and state layout, the
surrogate derivative, gradients over time and pointers for ``ctypes``.

Where no kernel applies (no compiler on the CPU, no Triton on CUDA, another device or dtype, a
case the kernels do not cover) the fused paths run :mod:`spikeexp.functional.unroll`'s
reference loops instead.
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import torch

from spikeexp.functional.fused.build import kernels
from spikeexp.functional.surrogate import surrogate_derivative

KERNEL_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
"""Input dtypes of the fused operators (bfloat16 inputs run with a float32 state)."""
_SURROGATE_CHUNK = 1 << 16  # elements per surrogate evaluation: temporaries stay in cache
_MIN_CHUNKS = 8  # short sequences: at most 1/8 of the sequence per evaluation (peak memory)


def state_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype of the state and saved values for inputs of ``dtype`` (float32 for bfloat16)."""
    return torch.float32 if dtype in (torch.bfloat16, torch.float16) else dtype


@functools.cache
def triton_importable() -> bool:
    """``import triton`` works (it ships with CUDA builds of PyTorch on Linux)."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@torch.compiler.assume_constant_result
def kernels_available(device_type: str) -> bool:
    """Fused kernels exist for tensors on ``device_type``: the C++ library built (CPU), Triton
    importable and a CUDA device present (CUDA). ``SPIKEEXP_FUSED_KERNELS=0`` disables both.
    A constant for ``torch.compile`` (evaluated once while tracing)."""
    if device_type == "cpu":
        return kernels() is not None
    if device_type == "cuda":
        enabled = os.environ.get("SPIKEEXP_FUSED_KERNELS", "1") != "0"
        return enabled and triton_importable()
    return False


def kernel_applies(x: torch.Tensor, tensors: list[Any]) -> bool:
    """A fused operator can run on ``x``: a device with kernels (:func:`kernels_available`),
    float32, float64 or bfloat16, a non-empty sequence, and every tensor of ``tensors`` on
    ``x``'s device with, if floating, ``x``'s dtype or its state dtype (integer parameters are
    converted, as type promotion does in the step loop)."""
    if x.dtype not in KERNEL_DTYPES or x.shape[0] == 0:
        return False
    allowed = (x.dtype, state_dtype(x.dtype))
    for value in tensors:
        if not isinstance(value, torch.Tensor):
            continue
        if value.device != x.device or (value.is_floating_point() and value.dtype not in allowed):
            return False
    return kernels_available(x.device.type)


def feed_forward_applies(x: torch.Tensor, values: list[Any], record_states: bool) -> bool:
    """A feed-forward sequence operator can run ``x`` with these parameter and state
    ``values``: no recorded states, :func:`kernel_applies`, and every value broadcasts to the
    state shape ``x.shape[1:]``."""
    shape = x.shape[1:]
    return (
        not record_states
        and kernel_applies(x, values)
        and all(broadcasts_to(value, shape) for value in values)
    )


def broadcasts_to(value: Any, shape: torch.Size) -> bool:
    """``value`` (float or tensor) broadcasts to ``shape`` without enlarging it."""
    if not isinstance(value, torch.Tensor):
        return True
    # The broadcasting rule by hand: torch.broadcast_shapes costs ~0.1 ms per call, a share
    # of a small layer's whole step.
    own = tuple(value.shape)
    if len(own) > len(shape):
        return False
    return all(
        size in (1, target) for size, target in zip(own[::-1], tuple(shape)[::-1], strict=False)
    )


def per_neuron(value: Any, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """A parameter as a contiguous tensor of ``shape`` (autograd sums the gradient back). A
    number becomes a constant array, made once per value, shape, dtype and device (the kernels
    only read it) outside ``torch.compile`` tracing."""
    if isinstance(value, torch.Tensor):
        return value.to(like.dtype).expand(shape).contiguous()
    if torch.compiler.is_compiling():
        return torch.full(shape, value, dtype=like.dtype, device=like.device)
    return _constant(float(value), tuple(shape), like.dtype, like.device)


@functools.lru_cache(maxsize=256)
def _constant(value: float, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
    return torch.full(shape, value, dtype=dtype, device=device)


def is_dense(tensor: torch.Tensor) -> bool:
    """The elements fill the memory without gaps or overlaps in some order of the dimensions
    (contiguous, channels_last, transposed): elementwise kernels may treat it as a flat array."""
    extents = sorted(
        (stride, size)
        for stride, size in zip(tensor.stride(), tensor.shape, strict=True)
        if size != 1
    )
    expected = 1
    for stride, size in extents:
        if stride != expected:
            return False
        expected *= size
    return True


def time_major(sequence: torch.Tensor) -> torch.Tensor:
    """A ``[T, ...]`` sequence whose time steps are consecutive dense blocks (step ``t`` at
    offset ``t * sequence[0].numel()``, the layout the kernels assume): ``sequence`` itself if it
    has that layout (contiguous, or channels-last steps), else a contiguous copy."""
    steps = sequence.shape[0]
    row = sequence[0].numel()
    if (steps == 1 or sequence.stride(0) == row) and is_dense(sequence[0]):
        return sequence
    return sequence.contiguous()


def sequence_input(x: torch.Tensor) -> torch.Tensor:
    """``x`` in a layout the sequence operators read (:mod:`spikeexp.functional.fused.ops`): an
    input repeated over time with stride 0 whose step is contiguous stays as it is (read in
    place), others as :func:`time_major` gives them."""
    constant = x.shape[0] > 1 and x.stride(0) == 0 and x[0].is_contiguous()
    return x if constant else time_major(x)


def state_step(x: torch.Tensor) -> torch.Tensor:
    """A ``[*S]`` tensor with the layout of one step of ``x`` and the state dtype: what states
    and parameters are laid out like (``x[0]`` itself when ``x`` has the state dtype)."""
    dtype = state_dtype(x.dtype)
    return x[0] if x.dtype == dtype else torch.empty_like(x[0], dtype=dtype)


def laid_out_like(value: Any, like: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """``value`` (float or tensor broadcasting to ``like``) as a tensor with ``like``'s shape,
    memory layout (strides) and dtype (or ``dtype``); differentiable, a copy only where
    needed."""
    dtype = like.dtype if dtype is None else dtype
    if not isinstance(value, torch.Tensor):
        return torch.full_like(like, value, dtype=dtype)
    value = value.to(dtype)
    if value.shape == like.shape and value.stride() == like.stride():
        return value
    return torch.empty_like(like, dtype=dtype).copy_(value.expand(like.shape))


MIN_SHARED_PERIOD = 64  # neurons per sample below which parameters are laid out per neuron


def neuron_parameters(values: list[Any], like: torch.Tensor) -> list[torch.Tensor]:
    """Parameters as arrays for the feed-forward kernels, for a state shaped like ``like``.

    Parameters that are the same for every sample of the batch (no batch dimension), do not
    need gradients, and fit the layout of ``like`` are given for one sample only: contiguous
    ``like.shape[1:]`` arrays, which the kernels repeat over the batch (no batch-sized fill per
    call). Otherwise every parameter is laid out like ``like`` itself.
    """
    per_sample = like.shape[1:]
    uniform = all(not isinstance(v, torch.Tensor) or v.numel() == 1 for v in values)
    shared = (
        like.dim() >= 1
        and math.prod(per_sample) >= MIN_SHARED_PERIOD
        and not any_requires_grad(values)
        and all(_same_for_every_sample(v, like.dim()) for v in values)
        and (uniform or like.is_contiguous())
    )
    if shared:
        return [per_neuron(value, per_sample, like) for value in values]
    return [laid_out_like(value, like) for value in values]


def _same_for_every_sample(value: Any, dims: int) -> bool:
    """``value`` broadcast to a ``dims``-dimensional state does not vary along the batch."""
    return not isinstance(value, torch.Tensor) or value.dim() < dims or value.shape[0] == 1


def surrogate_of(
    distance: torch.Tensor,
    offset: torch.Tensor | None,
    method: str,
    alpha: float,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    r""":math:`\sigma'(\text{distance} - \text{offset})` over ``[T, ...]``, in time chunks.

    ``offset`` (the threshold, broadcast over time) may be ``None``. Chunking keeps the
    temporaries of the surrogate formula small; the result is written to ``out`` (default: a
    new tensor like ``distance``) and returned.
    """
    out = torch.empty_like(distance) if out is None else out
    per_step = max(1, distance[0].numel())
    steps = distance.shape[0]
    chunk = max(1, min(_SURROGATE_CHUNK // per_step, -(-steps // _MIN_CHUNKS)))
    for start in range(0, steps, chunk):
        part = distance[start : start + chunk]
        if offset is not None:
            part = part - offset
        out[start : start + chunk] = surrogate_derivative(part, method, alpha)
    return out


def time_rows(
    grad: torch.Tensor | None, like: torch.Tensor | None = None, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor | None, int]:
    """A ``[T, ...]`` gradient as (tensor, elements between time rows) for the kernels, laid out
    like ``like`` (a ``[T, ...]`` tensor; default: contiguous), in ``like``'s dtype or
    ``dtype``.

    A gradient broadcast over time (stride 0, as from a loss on spike counts) is passed as one
    row with stride 0 instead of being materialised.
    """
    if grad is None:
        return None, 0
    if grad.stride(0) == 0:
        step = grad[0]
        return (step.contiguous() if like is None else laid_out_like(step, like[0], dtype)), 0
    grad = grad.contiguous() if like is None else laid_out_like(grad, like, dtype)
    return grad, grad[0].numel()


def input_stride(x: torch.Tensor) -> int:
    """Elements between the time steps of a sequence operator's input ``x`` (0 for one step
    repeated over time)."""
    return 0 if x.shape[0] > 1 and x.stride(0) == 0 else x[0].numel()


def period(parameter: torch.Tensor) -> int:
    """Per-neuron parameter arrays repeat every ``period`` neurons (their size: the state's, or
    one sample's when shared by the batch)."""
    return max(parameter.numel(), 1)


def pointer(tensor: torch.Tensor | None) -> int | None:
    """The data address for ctypes (``None`` and empty tensors become a null pointer)."""
    return None if tensor is None or tensor.numel() == 0 else tensor.data_ptr()


def any_requires_grad(values: list[Any]) -> bool:
    return any(isinstance(v, torch.Tensor) and v.requires_grad for v in values)


class _NoSecondDerivative(torch.autograd.Function):
    """Identity on ``count`` tensors whose backward raises: marks gradients computed by a kernel
    that has no derivative of its own, so that differentiating them fails loudly instead of
    giving zero. Further tensors (the incoming gradients, which lead back into the forward graph)
    only connect the node to the graph, so that ``torch.autograd.grad`` reaches it."""

    @staticmethod
    def forward(ctx, what: str, count: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        ctx.what = what
        return tuple(t.view_as(t) for t in tensors[:count])

    @staticmethod
    def backward(ctx, *grads: torch.Tensor) -> None:
        raise RuntimeError(
            f"double backward through {ctx.what} is not supported (its gradient is computed by "
            "a kernel that has no derivative of its own); for higher-order gradients run the "
            "layer with backend='reference' or 'compiled' (unroll.backend)"
        )


def first_order_only(
    what: str, grads: tuple[torch.Tensor | None, ...], incoming: tuple[torch.Tensor | None, ...]
) -> tuple[torch.Tensor | None, ...]:
    """``grads`` (the results of a kernel's backward, from the ``incoming`` output gradients)
    unchanged, except that under ``create_graph=True`` they carry a graph node that raises when
    differentiated again."""
    present = [g for g in grads if g is not None]
    if not torch.is_grad_enabled() or not present:
        return grads
    links = [g for g in incoming if g is not None and g.requires_grad]
    outputs = [g.detach().requires_grad_() for g in present]
    marked = iter(_NoSecondDerivative.apply(what, len(outputs), *outputs, *links))
    return tuple(None if g is None else next(marked) for g in grads)
