r"""Non-overlapping 2-D max pooling on the CPU kernel: :math:`y_{n,c,r,s} = \max_{0 \le a, b < k}
x_{n,c,rk+a,sk+b}` (kernel ``k`` = stride, no padding, trailing rows/columns that do not fill a
window dropped), the values and gradients of ``torch.nn.functional.max_pool2d(x, k)``.

Backward routes each output gradient to the window's maximum: the first one in row-major order
when several are equal (binary spike maps are full of such ties), a NaN when there is one, as
PyTorch's CPU kernel does. Saved for backward: the maximum's position inside its window, one byte
per output element, instead of PyTorch's 8-byte flat index; the backward writes every input
gradient once instead of zero-filling and scattering.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from spikeexp.functional.fused.build import kernel
from spikeexp.functional.fused.common import kernel_applies, pointer

MAX_KERNEL_SIZE = 15  # window positions r * k + c fit in one byte


class MaxPool2dFunction(torch.autograd.Function):
    """Autograd node of :func:`max_pool2d` on a contiguous ``[*, H, W]`` input."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int) -> torch.Tensor:
        height, width = x.shape[-2:]
        planes = x[..., 0, 0].numel()
        y = x.new_empty((*x.shape[:-2], height // size, width // size))
        where = torch.empty(y.shape, dtype=torch.uint8)
        run = kernel("max_pool_forward", x.dtype)
        run(planes, height, width, size, pointer(x), pointer(y), pointer(where))
        ctx.save_for_backward(where)
        ctx.input_shape = x.shape
        ctx.size = size
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, None]:
        (where,) = ctx.saved_tensors
        height, width = ctx.input_shape[-2:]
        grad_y = grad_y.contiguous()
        grad_x = grad_y.new_empty(ctx.input_shape)
        planes = grad_x[..., 0, 0].numel()
        run = kernel("max_pool_backward", grad_y.dtype)
        run(planes, height, width, ctx.size, pointer(grad_y), pointer(where), pointer(grad_x))
        return grad_x, None


def max_pool2d(x: torch.Tensor, size: int) -> torch.Tensor:
    """``torch.nn.functional.max_pool2d(x, size)`` (stride ``size``) for ``x`` of shape
    ``[C, H, W]`` or ``[N, C, H, W]``: the fused kernel for contiguous float32/float64 CPU
    tensors, else PyTorch's own (channels-last inputs, other devices and dtypes, no compiler)."""
    eligible = (
        x.dim() in (3, 4)
        and x.is_contiguous()
        and 1 <= size <= MAX_KERNEL_SIZE
        and x.shape[-2] >= size
        and x.shape[-1] >= size
        and x.numel() > 0
        and kernel_applies(x, [])
    )
    if not eligible:
        return F.max_pool2d(x, size)
    return MaxPool2dFunction.apply(x, size)
