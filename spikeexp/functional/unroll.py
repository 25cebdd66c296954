"""The one place where time is unrolled.

Sequences are time-first, ``[T, batch, ...]``. :func:`reference_sequence` and
:func:`reference_recurrent_sequence` loop over ``T`` calling a model's step function; they define
the semantics every faster backend must reproduce. Stateless work (the input projection of a
recurrent layer) is hoisted out of the loop and done once over the whole ``[T, batch, ...]`` block.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel


class RecurrentState(NamedTuple):
    """State of a recurrent layer: the last output ``z`` (fed back) and the neuron state."""

    z: torch.Tensor
    neuron: Any


def stack_states(states: list[Any]) -> Any:
    """Turn a list of T state tuples into one tuple of ``[T, ...]`` tensors (recorded states).

    Nested tuples (the neuron state inside a :class:`RecurrentState`) are stacked field by field.
    """
    first = states[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(states)
    return type(first)(*(stack_states(list(fields)) for fields in zip(*states, strict=True)))


def reference_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    p: Any,
    dt: float,
    record_states: bool = False,
    step: Callable[..., tuple[torch.Tensor, Any]] | None = None,
) -> tuple[torch.Tensor, Any]:
    """Run ``model.step`` over ``x[t]`` for ``t = 0 .. T-1``.

    Returns the outputs ``[T, ...]`` and the final state, or with ``record_states`` the whole state
    trajectory (a state tuple of ``[T, ...]`` tensors). ``step`` replaces ``model.step`` (same
    signature; e.g. a compiled version of it).
    """
    step = step or model.step
    outputs = []
    trajectory = []
    for x_t in x:
        out, state = step(x_t, state, p, dt)
        outputs.append(out)
        if record_states:
            trajectory.append(state)
    return torch.stack(outputs), stack_states(trajectory) if record_states else state


def recurrent_step_of(
    step: Callable[..., tuple[torch.Tensor, Any]],
    current: torch.Tensor,
    z: torch.Tensor,
    recurrent_weights: torch.Tensor,
    neuron: Any,
    p: Any,
    dt: float,
) -> tuple[torch.Tensor, Any]:
    """One recurrent step: ``step`` on ``current + W_rec z`` with the reset detached."""
    return step(current + F.linear(z, recurrent_weights), neuron, p, dt, True)


def reference_recurrent_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: RecurrentState,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool = False,
    recurrent_step: Callable[..., tuple[torch.Tensor, Any]] | None = None,
) -> tuple[torch.Tensor, Any]:
    """Recurrent unroll: input current ``W_in x[t] + W_rec z[t-1]``, reset detached.

    The input projection ``W_in x`` is one matrix product over all ``T * batch`` rows.
    ``recurrent_step`` replaces :func:`recurrent_step_of` ``model.step`` (same signature).
    """
    step = recurrent_step or functools.partial(recurrent_step_of, model.step)
    projected = F.linear(x, input_weights)
    outputs = []
    trajectory = []
    z, neuron = state
    for current in projected:
        z, neuron = step(current, z, recurrent_weights, neuron, p, dt)
        outputs.append(z)
        if record_states:
            trajectory.append(RecurrentState(z, neuron))
    final = stack_states(trajectory) if record_states else RecurrentState(z, neuron)
    return torch.stack(outputs), final
