r"""Triplet STDP (Pfister & Gerstner 2006, "Triplets of spikes in a model of spike
timing-dependent plasticity", J. Neurosci. 26(38):9673-9682).

Two presynaptic traces :math:`r_1` (:math:`\tau_+`), :math:`r_2` (:math:`\tau_x`) and two
postsynaptic traces :math:`o_1` (:math:`\tau_-`), :math:`o_2` (:math:`\tau_y`), unit jump per
spike (:mod:`~spikeexp.functional.plasticity.traces`). At a postsynaptic spike the weight grows by
:math:`r_1 (A_2^+ + A_3^+ o_2(t-\epsilon))`, at a presynaptic spike it shrinks by
:math:`o_1 (A_2^- + A_3^- r_2(t-\epsilon))`, where :math:`t-\epsilon` means "before this step's
own spike is added". Per step of length :math:`\Delta t` (s):

.. math::
    r_1 &\leftarrow e^{-\Delta t/\tau_+} r_1 + z^{pre}, \qquad
    o_1 \leftarrow e^{-\Delta t/\tau_-} o_1 + z^{post} \\
    \Delta w &= \eta_+(w)\, C\big(z^{post} (A_2^+ + A_3^+ e^{-\Delta t/\tau_y} o_2),\, r_1\big)
      - \eta_-(w)\, C\big(o_1,\, z^{pre} (A_2^- + A_3^- e^{-\Delta t/\tau_x} r_2)\big) \\
    r_2 &\leftarrow e^{-\Delta t/\tau_x} r_2 + z^{pre}, \qquad
    o_2 \leftarrow e^{-\Delta t/\tau_y} o_2 + z^{post}

(:math:`C`, :math:`\eta_\pm` and the bounds as for pair STDP). With :math:`A_3^\pm = 0` this is
pair STDP with :math:`A_\pm = A_2^\pm`, :math:`\tau_{pre} = \tau_+`, :math:`\tau_{post} = \tau_-`.

Presets (``preset``; fields left ``None`` come from it, given fields override it,
``preset="custom"`` needs all of them): the full models fitted to the visual-cortex data of
Sjöström et al. (2001) in Pfister & Gerstner (2006), Table 4, with
:math:`\tau_+ = 16.8` ms and :math:`\tau_- = 33.7` ms:

========================================  ========  ========  ========  ========  =====  =====
preset                                    A2+       A3+       A2-       A3-       tau_x  tau_y
========================================  ========  ========  ========  ========  =====  =====
``visual_cortex_all_to_all``              5e-10     6.2e-3    7e-3      2.3e-4    101    125
``visual_cortex_nearest``                 8.8e-11   5.3e-2    6.6e-3    3.1e-3    714    40
========================================  ========  ========  ========  ========  =====  =====

(time constants in ms; ``nearest`` presets use nearest-spike traces, ``interaction="nearest"``).
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
from spikeexp.functional.presets import fill_from_preset
from spikeexp.functional.validation import check_choice, check_dt, check_finite, check_positive

Param = float | torch.Tensor

_PRESET_FIELDS = (
    "a2_plus",
    "a3_plus",
    "a2_minus",
    "a3_minus",
    "tau_plus_inv",
    "tau_x_inv",
    "tau_minus_inv",
    "tau_y_inv",
    "interaction",
)


class TripletParameters(NamedTuple):
    """Triplet-STDP parameters; ``None`` fields come from ``preset``.

    Attributes:
        preset: a name in :data:`PRESETS`, or ``"custom"`` (every field given).
        a2_plus: pair potentiation amplitude :math:`A_2^+` (weight units).
        a3_plus: triplet potentiation amplitude :math:`A_3^+` (weight units).
        a2_minus: pair depression amplitude :math:`A_2^-` (weight units).
        a3_minus: triplet depression amplitude :math:`A_3^-` (weight units).
        tau_plus_inv: inverse time constant of :math:`r_1` (1/s).
        tau_x_inv: inverse time constant of :math:`r_2` (1/s).
        tau_minus_inv: inverse time constant of :math:`o_1` (1/s).
        tau_y_inv: inverse time constant of :math:`o_2` (1/s).
        interaction: ``all_to_all`` or ``nearest`` traces.
        w_min, w_max, weight_dependence, hard_bounds: as for pair STDP.
    """

    preset: str = "visual_cortex_all_to_all"
    a2_plus: Param | None = None
    a3_plus: Param | None = None
    a2_minus: Param | None = None
    a3_minus: Param | None = None
    tau_plus_inv: Param | None = None
    tau_x_inv: Param | None = None
    tau_minus_inv: Param | None = None
    tau_y_inv: Param | None = None
    interaction: str | None = None
    w_min: Param = 0.0
    w_max: Param = 1.0
    weight_dependence: str = "additive"
    hard_bounds: bool = True


class TripletState(NamedTuple):
    """Traces: presynaptic ``r1``, ``r2`` and postsynaptic ``o1``, ``o2``."""

    r1: torch.Tensor
    r2: torch.Tensor
    o1: torch.Tensor
    o2: torch.Tensor


def _preset(
    name: str, a2p: float, a3p: float, a2m: float, a3m: float, tau_x_ms: float, tau_y_ms: float
) -> TripletParameters:
    interaction = "nearest" if name.endswith("nearest") else "all_to_all"
    return TripletParameters(
        preset=name,
        a2_plus=a2p,
        a3_plus=a3p,
        a2_minus=a2m,
        a3_minus=a3m,
        tau_plus_inv=1e3 / 16.8,
        tau_x_inv=1e3 / tau_x_ms,
        tau_minus_inv=1e3 / 33.7,
        tau_y_inv=1e3 / tau_y_ms,
        interaction=interaction,
    )


PRESETS: dict[str, TripletParameters] = {
    preset.preset: preset
    for preset in (
        _preset("visual_cortex_all_to_all", 5e-10, 6.2e-3, 7e-3, 2.3e-4, 101.0, 125.0),
        _preset("visual_cortex_nearest", 8.8e-11, 5.3e-2, 6.6e-3, 3.1e-3, 714.0, 40.0),
    )
}
"""Pfister & Gerstner (2006), Table 4, visual cortex (module docstring)."""

PRESET_CHOICES = (*PRESETS, "custom")


def resolve_triplet(p: TripletParameters) -> TripletParameters:
    """Fill the fields left ``None`` from ``p.preset``; explicit values win."""
    return fill_from_preset(p, _PRESET_FIELDS, PRESETS)


def _decays(p: TripletParameters, dt: float) -> tuple[Param, Param, Param, Param]:
    return (
        decay_factor(p.tau_plus_inv, dt),
        decay_factor(p.tau_x_inv, dt),
        decay_factor(p.tau_minus_inv, dt),
        decay_factor(p.tau_y_inv, dt),
    )


def triplet_step(
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: TripletState,
    p: TripletParameters = TripletParameters(),
    dt: float = 1e-3,
    connection: Connection = DENSE,
) -> tuple[torch.Tensor, TripletState]:
    """One step (module docstring); returns ``(dw, state)`` with ``w + dw`` within bounds."""
    p = resolve_triplet(p)
    d_plus, d_x, d_minus, d_y = _decays(p, dt)
    r1 = trace_step(state.r1, z_pre, d_plus, p.interaction)
    o1 = trace_step(state.o1, z_post, d_minus, p.interaction)
    post_factor = z_post * (p.a2_plus + p.a3_plus * d_y * state.o2)
    pre_factor = z_pre * (p.a2_minus + p.a3_minus * d_x * state.r2)
    potentiation = correlate(post_factor, r1, w.shape, connection)
    depression = correlate(o1, pre_factor, w.shape, connection)
    r2 = trace_step(state.r2, z_pre, d_x, p.interaction)
    o2 = trace_step(state.o2, z_post, d_y, p.interaction)
    return weight_update(w, potentiation, depression, p), TripletState(r1, r2, o1, o2)


def triplet_sequence(
    z_pre: torch.Tensor,
    z_post: torch.Tensor,
    w: torch.Tensor,
    state: TripletState,
    p: TripletParameters = TripletParameters(),
    dt: float = 1e-3,
    connection: Connection = DENSE,
) -> tuple[torch.Tensor, TripletState]:
    """The summed change of a sequence ``[T, batch, ...]`` with ``w`` fixed (see
    :func:`~spikeexp.functional.plasticity.sequence.reference_weight_sequence`)."""
    p = resolve_triplet(p)
    d_plus, d_x, d_minus, d_y = _decays(p, dt)
    r1 = trace_sequence(z_pre, state.r1, d_plus, p.interaction)
    r2 = trace_sequence(z_pre, state.r2, d_x, p.interaction)
    o1 = trace_sequence(z_post, state.o1, d_minus, p.interaction)
    o2 = trace_sequence(z_post, state.o2, d_y, p.interaction)
    r2_before = d_x * torch.cat([state.r2.unsqueeze(0), r2[:-1]])
    o2_before = d_y * torch.cat([state.o2.unsqueeze(0), o2[:-1]])
    post_factor = z_post * (p.a2_plus + p.a3_plus * o2_before)
    pre_factor = z_pre * (p.a2_minus + p.a3_minus * r2_before)
    potentiation = correlate_sequence(post_factor, r1, w.shape, connection)
    depression = correlate_sequence(o1, pre_factor, w.shape, connection)
    dw = weight_update(w, potentiation, depression, p)
    return dw, TripletState(r1[-1], r2[-1], o1[-1], o2[-1])


def triplet_initial_state(
    p: TripletParameters, pre: torch.Tensor, post: torch.Tensor, w: torch.Tensor
) -> TripletState:
    """Empty traces shaped like the spikes ``pre`` and ``post``."""
    return TripletState(
        torch.zeros_like(pre), torch.zeros_like(pre), torch.zeros_like(post), torch.zeros_like(post)
    )


def validate_triplet(p: TripletParameters, dt: float) -> None:
    """Known preset, finite amplitudes, positive time constants, valid bounds."""
    check_dt(dt)
    check_choice("preset", p.preset, PRESET_CHOICES)
    p = resolve_triplet(p)
    for name in ("a2_plus", "a3_plus", "a2_minus", "a3_minus"):
        check_finite(name, getattr(p, name))
    for name in ("tau_plus_inv", "tau_x_inv", "tau_minus_inv", "tau_y_inv"):
        check_positive(name, getattr(p, name))
    check_interaction(p.interaction)
    validate_bounds(p)


RULE = PlasticityRule(
    name="triplet",
    parameters=TripletParameters,
    state=TripletState,
    step=triplet_step,
    initial_state=triplet_initial_state,
    validate=validate_triplet,
    sequence=triplet_sequence,
    resolve=resolve_triplet,
)
