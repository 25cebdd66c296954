"""``backend="compiled"``: the reference unroll with each time step compiled by ``torch.compile``.

It works for every neuron model, feed-forward and recurrent, because it compiles the model's own
step function (:mod:`spikeexp.functional.unroll` runs the loop): inductor fuses the step's
elementwise arithmetic, forward and (through AOTAutograd) backward, into generated kernels (C++
with OpenMP on the CPU, Triton on CUDA). The first call per process, model and shape compiles
(about 10-20 s on the CPU here; PyTorch caches the result on disk for later processes). Results
equal the reference loop up to rounding: inductor may reorder and fuse floating-point operations.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from spikeexp.functional.unroll import (
    RecurrentState,
    recurrent_step_of,
    reference_recurrent_sequence,
    reference_sequence,
)

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel

Step = Callable[..., tuple[torch.Tensor, Any]]

RECOMPILE_LIMIT = 64
"""Compiled versions kept per step function (torch's default is 8).

One step function serves every layer of its model, and torch.compile specialises it on each
layer's shape, on grad mode (training or evaluation) and on whether the state needs a gradient (a
fresh zero state does not, the states after it do): three layers of one model already need
3 x 2 x 2 = 12 versions. Past the limit torch logs one warning and runs further versions
uncompiled."""


@functools.cache
def compiled_step(step: Step) -> Step:
    """``torch.compile`` of a model's step function (one compiled object per model)."""
    return torch.compile(step)


@functools.cache
def compiled_recurrent_step(step: Step) -> Step:
    """``torch.compile`` of :func:`~spikeexp.functional.unroll.recurrent_step_of` for ``step``."""
    return torch.compile(functools.partial(recurrent_step_of, step))


def compiled_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """:func:`~spikeexp.functional.unroll.reference_sequence` with the step compiled (at most
    :data:`RECOMPILE_LIMIT` versions of it, set once for the whole unroll)."""
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        return reference_sequence(model, x, state, p, dt, record_states, compiled_step(model.step))


def compiled_recurrent_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: RecurrentState,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """:func:`~spikeexp.functional.unroll.reference_recurrent_sequence` with the step compiled
    (at most :data:`RECOMPILE_LIMIT` versions of it, set once for the whole unroll)."""
    step = compiled_recurrent_step(model.step)
    with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
        return reference_recurrent_sequence(
            model, x, state, input_weights, recurrent_weights, p, dt, record_states, step
        )
