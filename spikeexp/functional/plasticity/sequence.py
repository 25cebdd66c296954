"""The reference loop of a weight rule over a whole sequence, weights held fixed.

A plastic connection (:mod:`spikeexp.module.plastic`) computes its input current for a whole
sequence ``[T, batch, ...]`` with the weights of the start of the sequence, then asks its rule for
the change of the sequence: the sum of the per-step changes with ``w`` fixed, the hard bounds
applied once to the sum. :func:`reference_weight_sequence` defines that by calling the rule's step
``T`` times; a rule's ``sequence`` fast path (one contraction per term) must equal it, and the
tests check that it does.
"""

from __future__ import annotations

from typing import Any

import torch

from spikeexp.functional.plasticity.base import PlasticityRule
from spikeexp.functional.plasticity.bounds import bound_update
from spikeexp.functional.plasticity.connection import DENSE, Connection


def reference_weight_sequence(
    rule: PlasticityRule,
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: Any,
    p: Any,
    dt: float = 1e-3,
    connection: Connection = DENSE,
    reward: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Any]:
    """Sum of ``rule.step`` over ``z_pre [T, batch, ...]`` and ``z_post [T, batch, ...]`` with
    ``w`` fixed and no bounds per step, then the hard bounds once; returns ``(dw, state)``.
    Modulated rules take ``reward [T, batch]`` (the reward delivered at each step)."""
    unbounded = p._replace(hard_bounds=False)
    total = torch.zeros_like(w)
    for t in range(z_pre.shape[0]):
        extra = {"reward": reward[t]} if rule.modulated else {}
        dw, state = rule.step(z_pre[t], z_post[t], w, state, unbounded, dt, connection, **extra)
        total = total + dw
    return bound_update(w, total, p), state


def weight_sequence(
    rule: PlasticityRule,
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: Any,
    p: Any,
    dt: float = 1e-3,
    connection: Connection = DENSE,
    reward: torch.Tensor | None = None,
) -> tuple[torch.Tensor, Any]:
    """The rule's fast path when it has one, else :func:`reference_weight_sequence`."""
    extra = {"reward": reward} if rule.modulated else {}
    if rule.sequence is not None:
        return rule.sequence(z_pre, z_post, w, state, p, dt, connection, **extra)
    return reference_weight_sequence(rule, z_pre, z_post, w, state, p, dt, connection, reward)
