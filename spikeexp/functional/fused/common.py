"""Helpers shared by the fused neuron kernels: eligibility, parameter broadcast, fallbacks.

The step loops here are the pure-PyTorch fallback of the fused paths (same semantics as
:func:`spikeexp.module.unroll.reference_sequence` and ``reference_recurrent_sequence``, which
``functional`` may not import). They run when the C++ kernels are unavailable, on devices other
than the CPU, for dtypes other than float32/float64, and for cases a kernel does not cover.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from spikeexp.functional.fused.build import kernels
from spikeexp.functional.surrogate import surrogate_derivative

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel

KERNEL_DTYPES = (torch.float32, torch.float64)
_SURROGATE_CHUNK = 1 << 16  # elements per surrogate evaluation: temporaries stay in cache
_MIN_CHUNKS = 8  # short sequences: at most 1/8 of the sequence per evaluation (peak memory)


def kernel_applies(x: torch.Tensor, tensors: list[Any]) -> bool:
    """The C++ kernels can run: CPU, float32/float64, one floating dtype (integer parameters are
    converted, as type promotion does in the step loop), and a compiler."""
    if x.device.type != "cpu" or x.dtype not in KERNEL_DTYPES or x.shape[0] == 0:
        return False
    for value in tensors:
        if not isinstance(value, torch.Tensor):
            continue
        if value.device != x.device or (value.is_floating_point() and value.dtype != x.dtype):
            return False
    return kernels() is not None


def broadcasts_to(value: Any, shape: torch.Size) -> bool:
    """``value`` (float or tensor) broadcasts to ``shape`` without enlarging it."""
    if not isinstance(value, torch.Tensor):
        return True
    try:
        return torch.broadcast_shapes(value.shape, shape) == shape
    except RuntimeError:
        return False


def per_neuron(value: Any, shape: torch.Size, like: torch.Tensor) -> torch.Tensor:
    """A parameter as a contiguous tensor of ``shape`` (autograd sums the gradient back)."""
    if isinstance(value, torch.Tensor):
        return value.to(like.dtype).expand(shape).contiguous()
    return torch.full(shape, value, dtype=like.dtype, device=like.device)


def surrogate_of(
    distance: torch.Tensor, offset: torch.Tensor | None, method: str, alpha: float
) -> torch.Tensor:
    r""":math:`\sigma'(\text{distance} - \text{offset})` over ``[T, ...]``, in time chunks.

    ``offset`` (the threshold, broadcast over time) may be ``None``. Chunking keeps the
    temporaries of the surrogate formula small; the result is one new ``[T, ...]`` tensor.
    """
    out = torch.empty_like(distance)
    per_step = max(1, distance[0].numel())
    steps = distance.shape[0]
    chunk = max(1, min(_SURROGATE_CHUNK // per_step, -(-steps // _MIN_CHUNKS)))
    for start in range(0, steps, chunk):
        part = distance[start : start + chunk]
        if offset is not None:
            part = part - offset
        out[start : start + chunk] = surrogate_derivative(part, method, alpha)
    return out


def time_rows(grad: torch.Tensor | None) -> tuple[torch.Tensor | None, int]:
    """A ``[T, ...]`` gradient as (tensor, elements between time rows) for the kernels.

    A gradient broadcast over time (stride 0, as from a loss on spike counts) is passed as one
    row with stride 0 instead of being materialised.
    """
    if grad is None:
        return None, 0
    if grad.stride(0) == 0:
        return grad[0].contiguous(), 0
    grad = grad.contiguous()
    return grad, grad[0].numel()


def pointer(tensor: torch.Tensor | None) -> int | None:
    """The data address for ctypes (``None`` becomes a null pointer)."""
    return None if tensor is None else tensor.data_ptr()


def any_requires_grad(values: list[Any]) -> bool:
    return any(isinstance(v, torch.Tensor) and v.requires_grad for v in values)


def step_loop(
    model: NeuronModel, x: torch.Tensor, state: Any, p: Any, dt: float, record_states: bool
) -> tuple[torch.Tensor, Any]:
    """Pure-PyTorch feed-forward unroll (the reference semantics)."""
    outputs, trajectory = [], []
    for x_t in x:
        out, state = model.step(x_t, state, p, dt)
        outputs.append(out)
        if record_states:
            trajectory.append(state)
    return torch.stack(outputs), _stack(trajectory) if record_states else state


def recurrent_step_loop(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool,
) -> tuple[torch.Tensor, Any]:
    """Pure-PyTorch recurrent unroll (the reference semantics, reset detached)."""
    state_type = type(state)
    z, neuron = state
    outputs, trajectory = [], []
    for current in F.linear(x, input_weights):
        z, neuron = model.step(current + F.linear(z, recurrent_weights), neuron, p, dt, True)
        outputs.append(z)
        if record_states:
            trajectory.append(state_type(z, neuron))
    final = _stack(trajectory) if record_states else state_type(z, neuron)
    return torch.stack(outputs), final


def _stack(states: list[Any]) -> Any:
    """A list of (nested) state tuples as one tuple of ``[T, ...]`` tensors."""
    if isinstance(states[0], torch.Tensor):
        return torch.stack(states)
    return type(states[0])(*(_stack(list(fields)) for fields in zip(*states, strict=True)))
