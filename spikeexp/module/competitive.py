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
from spikeexp.functional.validation import check_positive
from spikeexp.module.neuron import check_layer_sizes
from spikeexp.module.plastic import sum_over_processes


class CompetitiveLIF(nn.Module):
    r"""LIF neurons with lateral inhibition and adaptive thresholds over ``[T, batch, size]``.

    ``spikes, state = layer(x)`` starts from rest, ``layer(x, state)`` continues; with
    :attr:`record_states` the state returned is the trajectory (``[T, batch, size]`` each). The
    adaptive thresholds :attr:`theta` (a buffer, so part of checkpoints) grow in training mode
    only, after each sequence; in evaluation mode they are held.

    A sample to which the layer answers with fewer than ``min_spikes`` spikes is presented again
    with its input multiplied by :math:`1 + k\,` ``boost`` (:math:`k = 1, 2, \ldots`, at most
    ``max_repeats`` times), as Diehl & Cook (2015) repeat a presentation with the input rate
    raised by half its maximum until the network answers with at least 5 spikes; the answer of
    the last presentation counts (spikes, thresholds, plasticity).

    Args:
        size: number of neurons.
        p: :class:`~spikeexp.functional.competition.CompetitiveParameters`.
        dt: integration step (s).
        min_spikes: spikes a sample needs before it is not repeated (0: never repeat).
        boost: input factor increment per repetition (dimensionless, > 0).
        max_repeats: most repetitions of a sample.
        **overrides: single parameter values replacing those of ``p``.
    """

    stateful = True

    def __init__(
        self,
        size: int,
        p: CompetitiveParameters | None = None,
        dt: float = 1e-3,
        min_spikes: int = 0,
        boost: float = 0.5,
        max_repeats: int = 4,
        **overrides: Any,
    ) -> None:
        super().__init__()
        check_layer_sizes(size, size)
        check_repeats(min_spikes, boost, max_repeats)
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
        self.min_spikes = min_spikes
        self.boost = float(boost)
        self.max_repeats = max_repeats
        self.record_states = False
        self.register_buffer("theta", torch.zeros(size))

    def forward(
        self, x: torch.Tensor, state: CompetitiveState | None = None
    ) -> tuple[torch.Tensor, CompetitiveState]:
        if x.dim() != 3 or x.shape[-1] != self.size:
            raise ValueError(
                f"CompetitiveLIF expects input [T, batch, {self.size}] (got shape {tuple(x.shape)})"
            )
        start = competitive_initial_state(self.p, x[0]) if state is None else state
        theta = self.theta.to(x.dtype)
        out, state = self._run(x, start, theta)
        for repeat in range(1, self.max_repeats + 1):
            few = out.sum(dim=(0, 2)) < self.min_spikes
            if not bool(few.any()):
                break
            picked = CompetitiveState(*(value[few] for value in start))
            again, again_state = self._run(x[:, few] * (1 + self.boost * repeat), picked, theta)
            out = _with_samples(out, again, few, 1)
            axis = 1 if self.record_states else 0
            state = CompetitiveState(
                *(
                    _with_samples(whole, part, few, axis)
                    for whole, part in zip(state, again_state, strict=True)
                )
            )
        if self.training:
            with torch.no_grad():
                # Summed over data-parallel processes: every replica keeps the same thresholds.
                counts = sum_over_processes(out.detach().sum(dim=(0, 1)))
                self.theta.copy_(theta_update(self.theta, counts, len(out), self.p, self.dt))
        return out, state

    def _run(
        self, x: torch.Tensor, state: CompetitiveState, theta: torch.Tensor
    ) -> tuple[torch.Tensor, CompetitiveState]:
        """One presentation: the spikes and the final state (the trajectory with
        :attr:`record_states`)."""
        spikes, states = [], []
        for x_t in x:
            z, state = competitive_step(x_t, state, theta, self.p, self.dt)
            spikes.append(z)
            if self.record_states:
                states.append(state)
        if self.record_states:
            state = CompetitiveState(*(torch.stack(values) for values in zip(*states, strict=True)))
        return torch.stack(spikes), state

    def firing_threshold(self, state: CompetitiveState) -> torch.Tensor:
        """The threshold :math:`v_{th} + \\theta` of every neuron, shaped like ``state.v``."""
        threshold = self.p.v_th + self.theta.detach().cpu()
        return torch.broadcast_to(threshold, state.v.shape).clone()

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, p={self.p}, dt={self.dt:g}, min_spikes={self.min_spikes}, "
            f"boost={self.boost:g}, max_repeats={self.max_repeats}"
        )


def _with_samples(
    whole: torch.Tensor, part: torch.Tensor, samples: torch.Tensor, axis: int
) -> torch.Tensor:
    """``whole`` with the ``samples`` (a mask along the batch axis ``axis``) from ``part``."""
    whole = whole.clone()
    whole[(slice(None),) * axis + (samples,)] = part
    return whole


def check_repeats(min_spikes: int, boost: float, max_repeats: int) -> None:
    """Integers ``min_spikes >= 0``, ``max_repeats >= 0`` and a number ``boost > 0``."""
    for name, value in (("min_spikes", min_spikes), ("max_repeats", max_repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0 (got {value!r})")
    check_positive("boost", boost)
