r"""Non-overlapping 2-D max pooling as a fused operator: :math:`y_{n,c,r,s} = \max_{0 \le a, b <
k} x_{n,c,rk+a,sk+b}` (kernel ``k`` = stride, no padding, trailing rows/columns that do not fill
a window dropped), the values and gradients of ``torch.nn.functional.max_pool2d(x, k)``.

Backward routes each output gradient to the window's maximum: the first one in row-major order
when several are equal (binary spike maps are full of such ties), a NaN when there is one, as
PyTorch's kernels do. Saved for backward: the maximum's position inside its window, one byte
per output element, instead of PyTorch's 8-byte flat index; the backward writes every input
gradient once instead of zero-filling and scattering (``spikeexp::max_pool2d``,
:mod:`spikeexp.functional.fused.ops`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from spikeexp.functional.fused import ops
from spikeexp.functional.fused.common import kernel_applies

MAX_KERNEL_SIZE = 15  # window positions r * k + c fit in one byte


def max_pool2d(x: torch.Tensor, size: int) -> torch.Tensor:
    """``torch.nn.functional.max_pool2d(x, size)`` (stride ``size``) for ``x`` of shape
    ``[C, H, W]`` or ``[N, C, H, W]``: the fused operator for contiguous float32, float64 or
    bfloat16 tensors on a device with kernels and sizes 2 to 15, else PyTorch's own
    (channels-last inputs, other devices, dtypes and sizes, no kernels)."""
    eligible = (
        x.dim() in (3, 4)
        and x.is_contiguous()
        and 2 <= size <= MAX_KERNEL_SIZE  # size 1 is a copy: PyTorch does it
        and x.shape[-2] >= size
        and x.shape[-1] >= size
        and x.numel() > 0
        and kernel_applies(x, [])
    )
    if not eligible:
        return F.max_pool2d(x, size)
    y, _ = ops.max_pool2d(x, size)
    return y
