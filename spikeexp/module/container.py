"""Containers for time-first networks: :class:`Lift` and :class:`SequentialState`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class Lift(nn.Module):
    """Apply a stateless layer to every time step at once.

    The input ``[T, batch, ...]`` is flattened to ``[T * batch, ...]``, passed through ``module``
    in one call (one GEMM or convolution for the whole sequence) and reshaped back.

    Args:
        module: the stateless layer.
        channels_last: give image batches ``[T * batch, C, H, W]`` to ``module`` in channels-last
            memory order (the native layout of oneDNN and of GPU tensor cores). The output keeps
            that order; elementwise layers and the fused neuron kernels preserve it.
    """

    stateful = False

    def __init__(self, module: nn.Module, channels_last: bool = False) -> None:
        super().__init__()
        self.module = module
        self.channels_last = channels_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(
                f"Lift expects time-first input [T, batch, ...] (got shape {tuple(x.shape)})"
            )
        steps, batch = x.shape[:2]
        flat = x.reshape(steps * batch, *x.shape[2:])
        if self.channels_last and flat.dim() == 4:
            flat = flat.contiguous(memory_format=torch.channels_last)
        y = self.module(flat)
        return y.reshape(steps, batch, *y.shape[1:])


def is_stateful(module: nn.Module) -> bool:
    """Whether ``module`` takes and returns a state (``out, state = module(x, state)``)."""
    return bool(getattr(module, "stateful", False))


class SequentialState(nn.Sequential):
    """Like :class:`torch.nn.Sequential`, threading a state through each stateful layer.

    ``out, states = net(x)`` starts every stateful layer from rest; ``net(x, states)`` continues
    from ``states``, a list with one entry per layer (``None`` for stateless layers).
    """

    stateful = True

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: list[Any] | None = None
    ) -> tuple[torch.Tensor, list[Any]]:
        if state is not None and len(state) != len(self):
            raise ValueError(
                f"SequentialState expects a state list of length {len(self)} (got {len(state)})"
            )
        new_state: list[Any] = []
        for index, layer in enumerate(self):
            if is_stateful(layer):
                x, layer_state = layer(x, None if state is None else state[index])
            else:
                x, layer_state = layer(x), None
            new_state.append(layer_state)
        return x, new_state
