"""Containers for time-first networks: :class:`Lift` and :class:`SequentialState`."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

TIME_INVARIANT_LAYERS: tuple[type[nn.Module], ...] = (
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.Linear,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.ReLU,
    nn.Sequential,
)
"""Layers whose output for one sample depends on that sample only, the same at every call (no
randomness such as dropout, no batch statistics such as batch norm in training)."""


def is_time_invariant(module: nn.Module) -> bool:
    """``module`` and all its submodules are :data:`TIME_INVARIANT_LAYERS` or declare
    ``time_invariant = True``: applied to the same input at every step, it gives the same
    output at every step."""
    return all(
        isinstance(part, TIME_INVARIANT_LAYERS) or getattr(part, "time_invariant", False)
        for part in module.modules()
    )


class Lift(nn.Module):
    """Apply a stateless layer to every time step at once.

    The input ``[T, batch, ...]`` is flattened to ``[T * batch, ...]``, passed through ``module``
    in one call (one GEMM or convolution for the whole sequence) and reshaped back.

    An input that is the same at every step, given as a view with time stride 0 (what constant-
    current encoders return), goes through a time-invariant ``module`` (:func:`is_time_invariant`)
    once, for ``[batch, ...]``; the output is again a time-stride-0 view of that one result, and
    autograd sums its gradient over time before the layer's backward. Same values, ``T`` times
    less work (the first convolution of a ConvNet on constant-current images, for example). Like
    the encoder's output, such a view must not be written in place.

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
        if steps > 1 and x.stride(0) == 0 and is_time_invariant(self.module):
            y = self._apply_to_steps(x[0])
            return y.unsqueeze(0).expand(steps, *y.shape)
        y = self._apply_to_steps(x.reshape(steps * batch, *x.shape[2:]))
        return y.reshape(steps, batch, *y.shape[1:])

    def _apply_to_steps(self, flat: torch.Tensor) -> torch.Tensor:
        if self.channels_last and flat.dim() == 4:
            flat = flat.contiguous(memory_format=torch.channels_last)
        return self.module(flat)


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
