r"""Pair-based spike-timing-dependent plasticity (STDP) with pre- and postsynaptic traces.

Per step of length :math:`\Delta t` (seconds), with presynaptic spikes :math:`z^{pre}`,
postsynaptic spikes :math:`z^{post}` and the unit-jump traces of
:mod:`spikeexp.functional.plasticity.traces`:

.. math::
    x &\leftarrow e^{-\Delta t\, \tau_{pre}^{-1}}\, x + z^{pre}, \qquad
    y \leftarrow e^{-\Delta t\, \tau_{post}^{-1}}\, y + z^{post} \\
    \Delta w &= A_+\, \eta_+(w)\, C(z^{post}, x) - A_-\, \eta_-(w)\, C(y, z^{pre})

:math:`C` correlates post- and presynaptic activity over the batch (and over positions for a
convolution, :mod:`~spikeexp.functional.plasticity.connection`); :math:`\eta_\pm` are the weight
dependence and the hard bounds cut :math:`\Delta w` (:mod:`~spikeexp.functional.plasticity.bounds`).
For one pre and one post spike :math:`\Delta t_s = t_{post} - t_{pre}` apart (additive, within
bounds) the change is the classic window (Bi & Poo 1998; Song, Miller & Abbott 2000):

.. math::
    \Delta w = A_+\, e^{-\Delta t_s \tau_{pre}^{-1}} \ (\Delta t_s > 0), \qquad
    \Delta w = -A_-\, e^{\Delta t_s \tau_{post}^{-1}} \ (\Delta t_s < 0), \qquad
    \Delta w = A_+ - A_- \ (\Delta t_s = 0).

Defaults follow Song, Miller & Abbott (2000): :math:`\tau_{pre} = \tau_{post} = 20` ms,
:math:`A_+ = 0.005`, :math:`A_-/A_+ = 1.05` (weights in :math:`[0, 1]`). ``A`` are in weight
units; ``interaction="nearest"`` resets traces to 1 instead of adding 1.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.plasticity.base import PlasticityRule
from spikeexp.functional.plasticity.bounds import validate_bounds, weight_update
from spikeexp.functional.plasticity.connection import (
    DENSE,
    Connection,
    correlate,
    correlate_sequence,
)
from spikeexp.functional.plasticity.traces import (
    check_interaction,
    decay_factor,
    trace_sequence,
    trace_step,
)
from spikeexp.functional.validation import check_dt, check_finite, check_positive

Param = float | torch.Tensor


class STDPParameters(NamedTuple):
    """Pair-STDP parameters.

    Attributes:
        a_plus: potentiation amplitude :math:`A_+` (weight units) of a causal pair.
        a_minus: depression amplitude :math:`A_-` (weight units) of an anti-causal pair.
        tau_pre_inv: inverse time constant of the presynaptic trace (1/s): the LTP window.
        tau_post_inv: inverse time constant of the postsynaptic trace (1/s): the LTD window.
        w_min: lower weight bound.
        w_max: upper weight bound.
        weight_dependence: ``additive`` or ``multiplicative`` (soft bounds).
        hard_bounds: keep ``w`` in ``[w_min, w_max]`` by cutting the change.
        interaction: ``all_to_all`` (traces add spikes) or ``nearest`` (reset to 1).
    """

    a_plus: Param = 0.005
    a_minus: Param = 0.00525
    tau_pre_inv: Param = 50.0
    tau_post_inv: Param = 50.0
    w_min: Param = 0.0
    w_max: Param = 1.0
    weight_dependence: str = "additive"
    hard_bounds: bool = True
    interaction: str = "all_to_all"


class STDPState(NamedTuple):
    """Traces: presynaptic ``x`` (shaped like the input spikes), postsynaptic ``y``."""

    x: torch.Tensor
    y: torch.Tensor


def stdp_step(
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: STDPState,
    p: STDPParameters = STDPParameters(),
    dt: float = 1e-3,
    connection: Connection = DENSE,
) -> tuple[torch.Tensor, STDPState]:
    """One step (module docstring); returns ``(dw, state)`` with ``w + dw`` within bounds."""
    x = trace_step(state.x, z_pre, decay_factor(p.tau_pre_inv, dt), p.interaction)
    y = trace_step(state.y, z_post, decay_factor(p.tau_post_inv, dt), p.interaction)
    potentiation = p.a_plus * correlate(z_post, x, w.shape, connection)
    depression = p.a_minus * correlate(y, z_pre, w.shape, connection)
    return weight_update(w, potentiation, depression, p), STDPState(x, y)


def stdp_sequence(
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: STDPState,
    p: STDPParameters = STDPParameters(),
    dt: float = 1e-3,
    connection: Connection = DENSE,
) -> tuple[torch.Tensor, STDPState]:
    """The summed change of a whole sequence ``[T, batch, ...]`` with ``w`` held fixed, bounds
    applied once to the sum: the traces of all steps, then one contraction per term."""
    x = trace_sequence(z_pre, state.x, decay_factor(p.tau_pre_inv, dt), p.interaction)
    y = trace_sequence(z_post, state.y, decay_factor(p.tau_post_inv, dt), p.interaction)
    potentiation = p.a_plus * correlate_sequence(z_post, x, w.shape, connection)
    depression = p.a_minus * correlate_sequence(y, z_pre, w.shape, connection)
    return weight_update(w, potentiation, depression, p), STDPState(x[-1], y[-1])


def stdp_initial_state(
    p: STDPParameters, pre: torch.Tensor, post: torch.Tensor, w: torch.Tensor
) -> STDPState:
    """Empty traces shaped like the spikes ``pre`` and ``post``."""
    return STDPState(torch.zeros_like(pre), torch.zeros_like(post))


def validate_pair_traces(p: NamedTuple, dt: float) -> None:
    """Checks shared with the reward-modulated rule: amplitudes, traces, bounds."""
    check_dt(dt)
    check_finite("a_plus", p.a_plus)
    check_finite("a_minus", p.a_minus)
    check_positive("tau_pre_inv", p.tau_pre_inv)
    check_positive("tau_post_inv", p.tau_post_inv)
    validate_bounds(p)
    check_interaction(p.interaction)


RULE = PlasticityRule(
    name="stdp",
    parameters=STDPParameters,
    state=STDPState,
    step=stdp_step,
    initial_state=stdp_initial_state,
    validate=validate_pair_traces,
    sequence=stdp_sequence,
)
