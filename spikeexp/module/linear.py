"""Linear layers for spike input."""

from __future__ import annotations

import torch
from torch import nn

from spikeexp.functional.fused.spike_linear import spike_linear


class SpikeLinear(nn.Linear):
    """``nn.Linear`` for input that is mostly zeros (the spikes of a previous layer):
    :func:`~spikeexp.functional.fused.spike_linear.spike_linear` sums the weight columns of the
    active inputs instead of running a dense GEMM where the spike density is low enough, and
    falls back to ``nn.Linear``'s product otherwise. Same parameters and ``state_dict`` as
    ``nn.Linear``; outputs and gradients equal it up to float32 rounding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return spike_linear(x, self.weight, self.bias)
