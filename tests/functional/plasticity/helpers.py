"""Spike trains shared by the plasticity tests."""

from __future__ import annotations

import torch


def pair(pre_step: int, post_step: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One presynaptic and one postsynaptic spike, ``[T, 1, 1]`` each (float64)."""
    pre = torch.zeros(steps, 1, 1, dtype=torch.float64)
    post = torch.zeros(steps, 1, 1, dtype=torch.float64)
    pre[pre_step] = 1.0
    post[post_step] = 1.0
    return pre, post


def poisson(shape: tuple[int, ...], probability: float, seed: int) -> torch.Tensor:
    """Bernoulli spikes of the given probability per step (float64)."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) < probability).double()
