"""Pair-STDP parameters in the conventions of Norse and SpikingJelly (see
:mod:`spikeexp.functional.plasticity.traces` for the three trace conventions).

Both conversions give the same weight changes for the same spike trains, up to rounding:

* :func:`norse_stdp_parameters`: keyword arguments of Norse's ``STDPParameters`` for its
  ``stdp_step_linear`` / ``stdp_step_conv2d`` (Euler traces with a jump of
  ``a * dt * tau_inv``, weights updated and clipped every step, like :func:`stdp_step` applied
  online);
* :func:`spikingjelly_stdp_arguments`: keyword arguments of SpikingJelly's ``STDPLearner``
  (traces with decay ``1 - 1/tau``, ``tau`` in steps; weight modulation functions ``f_pre``,
  ``f_post``; the changes of a sequence are summed with the weights fixed and not bounded, like
  :func:`~spikeexp.functional.plasticity.sequence.reference_weight_sequence` with
  ``hard_bounds=False``).

Neither library is needed to call these functions; they return plain values and functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from spikeexp.functional.plasticity.bounds import weight_factors
from spikeexp.functional.plasticity.stdp import STDPParameters, validate_pair_traces
from spikeexp.functional.plasticity.traces import euler_rate_for_decay, steps_for_decay

NORSE_ALGORITHMS = {"additive": "additive", "multiplicative": "multiplicative_relu"}


def _number(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be one number to convert (got shape {tuple(value.shape)})"
            )
        return float(value)
    return float(value)


def _all_to_all(p: STDPParameters) -> None:
    if p.interaction != "all_to_all":
        raise ValueError(
            f"interaction must be 'all_to_all' to convert (got {p.interaction!r}); "
            "Norse and SpikingJelly traces add every spike"
        )


def norse_stdp_parameters(p: STDPParameters, dt: float) -> dict[str, Any]:
    """Norse ``STDPParameters(**result)`` with the same per-step changes as ``p`` at ``dt``.

    Norse's trace :math:`t \\leftarrow t + \\Delta t\\, \\tau_N^{-1} (-t + a z)` equals the
    unit-jump trace for :math:`\\tau_N^{-1} = (1 - e^{-\\Delta t \\tau^{-1}})/\\Delta t` and
    :math:`a = 1/(\\Delta t\\, \\tau_N^{-1})`; its ``eta_plus``/``eta_minus`` are our
    :math:`A_\\pm`, ``multiplicative_relu`` is our ``multiplicative``.
    """
    validate_pair_traces(p, dt)
    _all_to_all(p)
    tau_pre_inv = euler_rate_for_decay(_number("tau_pre_inv", p.tau_pre_inv), dt)
    tau_post_inv = euler_rate_for_decay(_number("tau_post_inv", p.tau_post_inv), dt)
    return {
        "a_pre": 1.0 / (dt * tau_pre_inv),
        "a_post": 1.0 / (dt * tau_post_inv),
        "tau_pre_inv": tau_pre_inv,
        "tau_post_inv": tau_post_inv,
        "w_min": _number("w_min", p.w_min),
        "w_max": _number("w_max", p.w_max),
        "eta_plus": _number("a_plus", p.a_plus),
        "eta_minus": _number("a_minus", p.a_minus),
        "stdp_algorithm": NORSE_ALGORITHMS[p.weight_dependence],
        "hardbound": p.hard_bounds,
    }


def spikingjelly_stdp_arguments(p: STDPParameters, dt: float) -> dict[str, Any]:
    """SpikingJelly ``STDPLearner(..., **result)`` arguments with the changes of ``p`` at ``dt``.

    SpikingJelly's trace decays by ``1 - 1/tau`` per step (``tau`` in steps) and jumps by 1:
    ``tau = 1/(1 - exp(-dt * tau_inv))``. Its change is
    ``f_post(w) * post x trace_pre - f_pre(w) * trace_post x pre``, so
    ``f_post = A+ eta+(w)`` and ``f_pre = A- eta-(w)``. Hard bounds are not part of its learner:
    clip the weights after the optimiser step.
    """
    validate_pair_traces(p, dt)
    _all_to_all(p)

    def f_post(w: torch.Tensor) -> torch.Tensor:
        return p.a_plus * weight_factors(w, p)[0] * torch.ones_like(w)

    def f_pre(w: torch.Tensor) -> torch.Tensor:
        return p.a_minus * weight_factors(w, p)[1] * torch.ones_like(w)

    functions: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
        "f_pre": f_pre,
        "f_post": f_post,
    }
    return {
        "tau_pre": steps_for_decay(_number("tau_pre_inv", p.tau_pre_inv), dt),
        "tau_post": steps_for_decay(_number("tau_post_inv", p.tau_post_inv), dt),
        **functions,
    }
