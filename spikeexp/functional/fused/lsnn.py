"""Fused recurrent LSNN layer: the recurrent kernel with an adaptive threshold.

Both conventions of :mod:`spikeexp.functional.neurons.lsnn` (``adaptation="norse"`` and
``"bellec"``) run in :class:`~spikeexp.functional.fused.recurrent.RecurrentSequenceFunction`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from spikeexp.functional.fused.recurrent import fused_recurrent

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel


def lsnn_fused_recurrent_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_recurrent_sequence`` with the LSNN model."""
    return fused_recurrent(
        model, x, state, input_weights, recurrent_weights, p, dt, record_states, p.adaptation
    )
