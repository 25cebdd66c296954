"""The competitive excitatory layer of Diehl & Cook (2015) as a time-first module.

See :mod:`spikeexp.functional.competition` for the equations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from spikeexp.functional.competition import (
    CompetitiveParameters,
    CompetitiveState,
    competitive_initial_state,
    competitive_step,
    theta_update,
    validate_competitive,
)
from spikeexp.module.neuron import check_layer_sizes


class CompetitiveLIF(nn.Module):
    """LIF neurons with lateral inhibition and adaptive thresholds over ``[T, batch, size]``.

    ``spikes, state = layer(x)`` starts from rest, ``layer(x, state)`` continues; with
    :attr:`record_states` the state returned is the trajectory (``[T, batch, size]`` each). The
    adaptive thresholds :attr:`theta` (a buffer, so part of checkpoints) grow in training mode
    only, after each sequence; in evaluation mode they are held.

    Args:
        size: number of neurons.
        p: :class:`~spikeexp.functional.competition.CompetitiveParameters`.
        dt: integration step (s).
        **overrides: single parameter values replacing those of ``p``.
    """

    stateful = True

    def __init__(
        self,
        size: int,
        p: CompetitiveParameters | None = None,
        dt: float = 1e-3,
        **overrides: Any,
    ) -> None:
        super().__init__()
        check_layer_sizes(size, size)
        p = CompetitiveParameters() if p is None else p
        unknown = sorted(set(overrides) - set(p._fields))
        if unknown:
            raise ValueError(
                f"unknown competitive parameter {unknown[0]!r}; valid: {', '.join(p._fields)}"
            )
        p = p._replace(**overrides)
        validate_competitive(p, dt)
        self.size = size
        self.p = p
        self.dt = float(dt)
        self.record_states = False
        self.register_buffer("theta", torch.zeros(size))

    def forward(
        self, x: torch.Tensor, state: CompetitiveState | None = None
    ) -> tuple[torch.Tensor, CompetitiveState]:
        if x.dim() != 3 or x.shape[-1] != self.size:
            raise ValueError(
                f"CompetitiveLIF expects input [T, batch, {self.size}] (got shape {tuple(x.shape)})"
            )
        if state is None:
            state = competitive_initial_state(self.p, x[0])
        theta = self.theta.to(x.dtype)
        spikes, states = [], []
        for x_t in x:
            z, state = competitive_step(x_t, state, theta, self.p, self.dt)
            spikes.append(z)
            if self.record_states:
                states.append(state)
        out = torch.stack(spikes)
        if self.training:
            with torch.no_grad():
                self.theta.copy_(theta_update(self.theta, out.detach(), self.p, self.dt))
        if self.record_states:
            state = CompetitiveState(*(torch.stack(values) for values in zip(*states, strict=True)))
        return out, state

    def firing_threshold(self, state: CompetitiveState) -> torch.Tensor:
        """The threshold :math:`v_{th} + \\theta` of every neuron, shaped like ``state.v``."""
        threshold = self.p.v_th + self.theta.detach().cpu()
        return torch.broadcast_to(threshold, state.v.shape).clone()

    def extra_repr(self) -> str:
        return f"size={self.size}, p={self.p}, dt={self.dt:g}"
