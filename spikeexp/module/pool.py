"""Pooling modules."""

from __future__ import annotations

import torch
from torch import nn

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
