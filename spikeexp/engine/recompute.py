"""Full backpropagation through time in less memory: recompute the forward pass in time chunks.

Backpropagating through a sequence of ``T`` steps keeps, for every step, what the backward pass
needs (voltages or threshold distances, spikes, the readout's states): memory grows linearly with
``T``. :func:`recomputed_forward` cuts the sequence into chunks of ``chunk_steps`` steps and runs
each chunk under :func:`torch.utils.checkpoint.checkpoint` (non-reentrant): only the state between
chunks and the chunk outputs are kept; the inside of a chunk is recomputed during backward, one
chunk at a time. The gradient is exactly that of the plain forward pass (the forward is
deterministic; dropout keeps its random state across the recomputation), at the price of a second
forward pass (about +1/3 of a training step's time).

Compare truncated BPTT (``tbptt_steps``), which saves the same memory without recomputation but
cuts gradients at chunk borders: a dependency longer than a chunk (e.g. STORE to RECALL in the
memory task) cannot be learnt from a gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.checkpoint import checkpoint

from spikeexp.module.network import SpikingNetwork


def recomputed_forward(
    network: SpikingNetwork, x: torch.Tensor, chunk_steps: int, state: Any = None
) -> tuple[torch.Tensor, Any]:
    """``network(x, state)`` with the memory of one chunk of ``chunk_steps`` steps.

    Returns the same ``(outputs [T, batch, ...], final state)`` as ``network(x, state)``, and as
    it leaves ``network.records`` holding every spiking layer's spikes over all ``T`` steps.
    """
    if isinstance(chunk_steps, bool) or not isinstance(chunk_steps, int) or chunk_steps < 1:
        raise ValueError(f"recompute_steps must be an integer >= 1 (got {chunk_steps!r})")
    outputs: list[torch.Tensor] = []
    records: dict[str, list[torch.Tensor]] = {}
    for start in range(0, x.shape[0], chunk_steps):
        chunk = x[start : start + chunk_steps]
        if torch.is_grad_enabled():
            output, state, chunk_records = checkpoint(
                _chunk_forward, network, chunk, state, use_reentrant=False
            )
        else:
            output, state, chunk_records = _chunk_forward(network, chunk, state)
        outputs.append(output)
        for name, spikes in chunk_records.items():
            records.setdefault(name, []).append(spikes)
    network.records = {name: torch.cat(parts) for name, parts in records.items()}
    return torch.cat(outputs), state


def _chunk_forward(
    network: SpikingNetwork, chunk: torch.Tensor, state: Any
) -> tuple[torch.Tensor, Any, dict[str, torch.Tensor]]:
    """One chunk; its spikes are returned, and ``network.records`` is left as it was, so the
    recomputation during backward (which may stop early, by an exception, once it has what
    backward needs) does not overwrite the records of the whole sequence."""
    kept = network.records
    try:
        output, state = network(chunk, state)
        chunk_records = network.records
    finally:
        network.records = kept
    return output, state, chunk_records
