"""Linear readouts: a bias-free linear layer followed by leaky integrators (LI).

The usual non-spiking output layer of an SNN: :class:`LILinearCell` for one step,
:class:`LILinear` for a time-first sequence, where the projection of all ``T * batch`` rows is one
matrix product before the LI loop. The LI equations and parameters are those of
:mod:`spikeexp.functional.neurons.li`; the output is the membrane voltage ``v`` of
``hidden_size`` integrators.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from spikeexp.functional.neurons.li import LIState
from spikeexp.module.neuron import check_features, check_layer_sizes
from spikeexp.module.neurons import LI, LICell


class LILinearCell(LICell):
    """One step of ``hidden_size`` LI neurons fed by ``W x`` (no bias); input ``[batch, input]``.

    ``v, state = cell(x, state)``; ``W`` is ``self.linear.weight`` (``[hidden, input]``,
    initialised like :class:`torch.nn.Linear`). Other arguments as :class:`LICell`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: Any = None,
        dt: float = 1e-3,
        learnable: Iterable[str] = (),
        **overrides: Any,
    ) -> None:
        super().__init__(p, dt, learnable, **overrides)
        check_layer_sizes(input_size, hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.linear = nn.Linear(input_size, hidden_size, bias=False)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: LIState | None = None
    ) -> tuple[torch.Tensor, LIState]:
        check_features(self, x, "[batch, input_size]")
        return super().forward(self.linear(x), state)


class LILinear(LI):
    """``hidden_size`` LI neurons fed by ``W x`` over a sequence ``[T, batch, input_size]``.

    Returns ``(v [T, batch, hidden], LIState)``; ``W x`` for all steps is one matrix product.
    Arguments as :class:`LILinearCell` plus ``record_states`` and ``backend`` of :class:`LI`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: Any = None,
        dt: float = 1e-3,
        learnable: Iterable[str] = (),
        record_states: bool = False,
        backend: str = "auto",
        **overrides: Any,
    ) -> None:
        super().__init__(p, dt, learnable, record_states, backend, **overrides)
        check_layer_sizes(input_size, hidden_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.linear = nn.Linear(input_size, hidden_size, bias=False)

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, state: LIState | None = None
    ) -> tuple[torch.Tensor, Any]:
        check_features(self, x, "[T, batch, input_size]")
        return super().forward(self.linear(x), state)
