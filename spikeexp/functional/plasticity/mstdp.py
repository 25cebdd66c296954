r"""Reward-modulated STDP with an eligibility trace (MSTDPET).

Florian (2007), "Reinforcement learning through modulation of spike-timing-dependent synaptic
plasticity", Neural Computation 19(6):1468-1502 (the MSTDPET rule), and Izhikevich (2007),
"Solving the distal reward problem through linkage of STDP and dopamine signaling", Cerebral
Cortex 17(10):2443-2452: pair STDP does not change the weight directly but feeds a synaptic
eligibility trace :math:`e` that a reward :math:`r` (dopamine) turns into a weight change, so a
reward arriving up to about :math:`\tau_e` after the spikes still credits them.

Per step of length :math:`\Delta t` (s), per sample :math:`n` of the batch:

.. math::
    x &\leftarrow e^{-\Delta t/\tau_{pre}} x + z^{pre}, \qquad
    y \leftarrow e^{-\Delta t/\tau_{post}} y + z^{post} \\
    \zeta_n &= A_+ \eta_+(w)\, C_n(z^{post}, x) - A_- \eta_-(w)\, C_n(y, z^{pre}) \\
    e_n &\leftarrow e^{-\Delta t/\tau_e}\, e_n + \zeta_n \\
    \Delta w &= \sum_n r_n\, e_n

(:math:`C_n` the correlation of sample :math:`n`, :mod:`~spikeexp.functional.plasticity.connection`;
:math:`\eta_\pm` and the hard bounds of :mod:`~spikeexp.functional.plasticity.bounds`). The
eligibility is in weight units (the unit-jump convention; Izhikevich's :math:`c`), the reward
:math:`r_n` is dimensionless and delivered at the step it is given (zero elsewhere); the
amplitudes set the learning rate. Defaults: :math:`\tau_\pm = 20` ms and :math:`A_-/A_+ = 1.5`
as in Izhikevich (2007), :math:`\tau_e = 1` s (his :math:`\tau_c`), weights in :math:`[0, 1]`.

The eligibility trace is kept per sample (``[batch, *w.shape]``), since each sample earns its
own reward.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.plasticity.base import PlasticityRule
from spikeexp.functional.plasticity.bounds import bound_update, weight_factors
from spikeexp.functional.plasticity.connection import (
    DENSE,
    Connection,
    correlate,
    correlate_sequence,
)
from spikeexp.functional.plasticity.stdp import validate_pair_traces
from spikeexp.functional.plasticity.traces import decay_factor, trace_sequence, trace_step
from spikeexp.functional.validation import check_positive

Param = float | torch.Tensor


class MSTDPParameters(NamedTuple):
    """Reward-modulated STDP parameters (pair-STDP fields plus the eligibility time constant).

    Attributes:
        a_plus, a_minus: STDP amplitudes of the eligibility increments (weight units).
        tau_pre_inv, tau_post_inv: inverse time constants of the spike traces (1/s).
        tau_e_inv: inverse time constant of the eligibility trace (1/s).
        w_min, w_max, weight_dependence, hard_bounds, interaction: as for pair STDP.
    """

    a_plus: Param = 0.01
    a_minus: Param = 0.015
    tau_pre_inv: Param = 50.0
    tau_post_inv: Param = 50.0
    tau_e_inv: Param = 1.0
    w_min: Param = 0.0
    w_max: Param = 1.0
    weight_dependence: str = "additive"
    hard_bounds: bool = True
    interaction: str = "all_to_all"


class MSTDPState(NamedTuple):
    """Spike traces ``x`` (pre), ``y`` (post) and the eligibility ``e [batch, *w.shape]``."""

    x: torch.Tensor
    y: torch.Tensor
    e: torch.Tensor


def _per_sample(reward: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    """``reward`` (a number or ``[batch]``) shaped ``[batch, 1, ...]`` to scale ``like``."""
    reward = torch.as_tensor(reward, dtype=like.dtype, device=like.device)
    return reward.expand(like.shape[0]).reshape(-1, *([1] * (like.dim() - 1)))


def mstdp_step(
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: MSTDPState,
    p: MSTDPParameters = MSTDPParameters(),
    dt: float = 1e-3,
    connection: Connection = DENSE,
    reward: torch.Tensor | float = 0.0,
) -> tuple[torch.Tensor, MSTDPState]:
    """One step (module docstring) with the reward ``[batch]`` (or one number) of this step;
    returns ``(dw, state)`` with ``w + dw`` within bounds."""
    x = trace_step(state.x, z_pre, decay_factor(p.tau_pre_inv, dt), p.interaction)
    y = trace_step(state.y, z_post, decay_factor(p.tau_post_inv, dt), p.interaction)
    eta_plus, eta_minus = weight_factors(w, p)
    zeta = p.a_plus * eta_plus * correlate(
        z_post, x, w.shape, connection, per_sample=True
    ) - p.a_minus * eta_minus * correlate(y, z_pre, w.shape, connection, per_sample=True)
    e = decay_factor(p.tau_e_inv, dt) * state.e + zeta
    dw = (_per_sample(reward, e) * e).sum(0)
    return bound_update(w, dw, p), MSTDPState(x, y, e)


def _discounted_future(reward: torch.Tensor, decay: float) -> torch.Tensor:
    """:math:`R_s = \\sum_{t \\ge s} d^{t-s} r_t` for ``reward [T, batch]``: the all-to-all trace
    of the reward run backwards in time."""
    backwards = trace_sequence(reward.flip(0), torch.zeros_like(reward[0]), decay, "all_to_all")
    return backwards.flip(0)


def mstdp_sequence(
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: MSTDPState,
    p: MSTDPParameters = MSTDPParameters(),
    dt: float = 1e-3,
    connection: Connection = DENSE,
    reward: torch.Tensor | None = None,
) -> tuple[torch.Tensor, MSTDPState]:
    r"""The summed change of a sequence ``[T, batch, ...]`` with ``w`` fixed, for rewards
    ``reward [T, batch]``.

    With :math:`d = e^{-\Delta t/\tau_e}`, :math:`e_n(t) = d^{t+1} e_n(-1) + \sum_{s \le t}
    d^{t-s} \zeta_n(s)`, so :math:`\sum_t r_n(t) e_n(t) = (\sum_t r_n(t) d^{t+1}) e_n(-1) +
    \sum_s R_n(s) \zeta_n(s)` with the discounted future reward :math:`R_n(s)`: one weighted
    contraction per STDP term, no per-step eligibility.
    """
    steps = z_pre.shape[0]
    if reward is None:
        raise ValueError("reward must be given for reward-modulated STDP (got None)")
    reward = torch.as_tensor(reward, dtype=w.dtype, device=w.device).expand(steps, z_pre.shape[1])
    x = trace_sequence(z_pre, state.x, decay_factor(p.tau_pre_inv, dt), p.interaction)
    y = trace_sequence(z_post, state.y, decay_factor(p.tau_post_inv, dt), p.interaction)
    eta_plus, eta_minus = weight_factors(w, p)
    d = decay_factor(float(p.tau_e_inv), dt)

    def terms(weights: torch.Tensor, per_sample: bool) -> torch.Tensor:
        """:math:`\\sum_s c_n(s) \\zeta_n(s)` for per-step, per-sample weights ``c [T, batch]``."""
        scale = weights.reshape(*weights.shape, *([1] * (z_post.dim() - 2)))
        plus = correlate_sequence(scale * z_post, x, w.shape, connection, per_sample)
        minus = correlate_sequence(scale * y, z_pre, w.shape, connection, per_sample)
        return p.a_plus * eta_plus * plus - p.a_minus * eta_minus * minus

    def powers(first: int, last: int) -> torch.Tensor:
        """:math:`d^k` for k = first, ..., last (one per step), as a column ``[T, 1]``."""
        step = 1 if last >= first else -1
        exponents = torch.arange(first, last + step, step, dtype=w.dtype, device=w.device)
        return (d**exponents).unsqueeze(1)

    carried = (reward * powers(1, steps)).sum(0)  # sum_t r(t) d^(t+1)
    dw = terms(_discounted_future(reward, d), per_sample=False)
    dw = dw + (_per_sample(carried, state.e) * state.e).sum(0)
    final = powers(steps - 1, 0).expand(steps, z_pre.shape[1])  # d^(T-1-s)
    eligibility = terms(final, per_sample=True) + d**steps * state.e
    return bound_update(w, dw, p), MSTDPState(x[-1], y[-1], eligibility)


def mstdp_initial_state(
    p: MSTDPParameters, pre: torch.Tensor, post: torch.Tensor, w: torch.Tensor
) -> MSTDPState:
    """Empty traces and eligibility ``[batch, *w.shape]``."""
    return MSTDPState(
        torch.zeros_like(pre), torch.zeros_like(post), w.new_zeros(pre.shape[0], *w.shape)
    )


def validate_mstdp(p: MSTDPParameters, dt: float) -> None:
    """Pair-STDP checks and one positive eligibility time constant."""
    validate_pair_traces(p, dt)
    check_positive("tau_e_inv", p.tau_e_inv)
    if isinstance(p.tau_e_inv, torch.Tensor) and p.tau_e_inv.numel() != 1:
        raise ValueError(f"tau_e_inv must be one number (got shape {tuple(p.tau_e_inv.shape)})")


RULE = PlasticityRule(
    name="mstdp",
    parameters=MSTDPParameters,
    state=MSTDPState,
    step=mstdp_step,
    initial_state=mstdp_initial_state,
    validate=validate_mstdp,
    modulated=True,
    sequence=mstdp_sequence,
)
