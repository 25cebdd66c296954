"""Pooling modules."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from spikeexp.functional.fused.pool import max_pool2d


class FusedMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d(kernel_size)`` (stride = kernel size, no padding) on the fused CPU kernel of
    :func:`spikeexp.functional.fused.pool.max_pool2d`: the same values and gradients, one byte
    per output element saved for backward instead of an int64 index, and no zero-fill pass.
    Falls back to PyTorch's pooling where the kernel does not apply."""

    def __init__(self, kernel_size: int) -> None:
        super().__init__(int(kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool2d(x, self.kernel_size)


class SumPool2d(nn.AvgPool2d):
    """Sum over each window of ``[batch, C, H, W]``: :math:`y = \\sum_{window} x`.

    ``nn.AvgPool2d`` with divisor 1 (exact sums, no division); padding adds zeros. Arguments as
    ``nn.AvgPool2d``: ``kernel_size``, ``stride`` (default: the kernel size), ``padding``.
    """

    time_invariant = True  # see spikeexp.module.container.is_time_invariant

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__(kernel_size, stride, padding, divisor_override=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return functional.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, divisor_override=1
        )
