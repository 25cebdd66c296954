r"""Izhikevich neuron (Izhikevich 2003, "Simple model of spiking neurons"), in seconds.

The published model runs in milliseconds: :math:`dv/dt' = 0.04 v^2 + 5 v + 140 - u + I`,
:math:`du/dt' = a' (b v - u)` with :math:`t'` in ms, :math:`v` in mV and spike-and-reset
:math:`v \ge 30` mV :math:`\Rightarrow v \leftarrow c,\ u \leftarrow u + d`. Here time is in
seconds like every other model: with :math:`\kappa = 1000` 1/s (one per millisecond) and
:math:`a = 1000\, a'` in 1/s, one forward-Euler step of length :math:`\Delta t` (s) with input
:math:`x` (the paper's :math:`I`, in mV per ms of drive) is

.. math::
    v &\leftarrow v + \Delta t\, \kappa\, (0.04 v^2 + 5 v + 140 - u + x) \\
    u &\leftarrow u + \Delta t\, a\, (b v_{old} - u) \\
    z &= H(v - v_{peak}) \quad (\text{strictly greater}) \\
    v &\leftarrow (1 - z)\, v + z\, c, \qquad u \leftarrow u + z\, d

:math:`v`, :math:`u`, :math:`c`, :math:`d`, :math:`v_{peak}` are in mV, :math:`b` is
dimensionless, :math:`a` in 1/s. ``dt`` must be at most 1 ms (the step the model was published
with). The state starts at :math:`v = c`, :math:`u = b c`.

Named presets (the paper's :math:`a'` times 1000): ``preset`` names one of :data:`PRESETS`
(Izhikevich 2004, "Which model to use for cortical spiking neurons?", Fig. 1, and Izhikevich 2003,
Fig. 2). Fields ``a``, ``b``, ``c``, ``d`` left ``None`` come from the preset; a value given
explicitly overrides the preset's; ``preset="custom"`` takes all four from the fields (all must be
set). :func:`izhikevich_preset` returns a complete parameter tuple. In YAML::

    preset: tonic_bursting   # a, b, c, d: null -> from the preset

The surrogate acts on :math:`v - v_{peak}` in mV, hence the small default
:math:`\alpha = 0.1` 1/mV.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.presets import fill_from_preset
from spikeexp.functional.surrogate import check_surrogate, spike_and_reset_factor
from spikeexp.functional.validation import (
    check_choice,
    check_dt,
    check_finite,
    check_rate_constant,
)

Param = float | torch.Tensor

PER_MS = 1000.0
"""The model's time scale :math:`\\kappa`: one per millisecond, in 1/s."""

_COEFFICIENTS = ("a", "b", "c", "d")


class IzhikevichParameters(NamedTuple):
    """Izhikevich parameters; numeric fields may be floats or per-neuron tensors.

    Attributes:
        preset: a name in :data:`PRESETS` supplying ``a, b, c, d`` left ``None``, or
            ``"custom"`` (all four given).
        a: recovery rate (1/s; the paper's value in 1/ms times 1000).
        b: sensitivity of the recovery variable ``u`` to ``v`` (dimensionless).
        c: voltage after a spike (mV).
        d: jump of ``u`` per spike (mV).
        v_peak: spike cut-off (mV).
        method: surrogate gradient name (see :mod:`spikeexp.functional.surrogate`).
        alpha: surrogate sharpness (1/mV).
    """

    preset: str = "tonic_spiking"
    a: Param | None = None
    b: Param | None = None
    c: Param | None = None
    d: Param | None = None
    v_peak: Param = 30.0
    method: str = "super"
    alpha: float = 0.1


class IzhikevichState(NamedTuple):
    """Izhikevich state: membrane voltage ``v`` (mV) and recovery variable ``u`` (mV)."""

    v: torch.Tensor
    u: torch.Tensor


def _preset(name: str, a_per_ms: float, b: float, c: float, d: float) -> IzhikevichParameters:
    return IzhikevichParameters(preset=name, a=a_per_ms * PER_MS, b=b, c=c, d=d)


PRESETS: dict[str, IzhikevichParameters] = {
    preset.preset: preset
    for preset in (
        # Izhikevich 2004, Fig. 1 (A-F)
        _preset("tonic_spiking", 0.02, 0.2, -65.0, 6.0),
        _preset("phasic_spiking", 0.02, 0.25, -65.0, 6.0),
        _preset("tonic_bursting", 0.02, 0.2, -50.0, 2.0),
        _preset("phasic_bursting", 0.02, 0.25, -55.0, 0.05),
        _preset("mixed_mode", 0.02, 0.2, -55.0, 4.0),
        _preset("spike_frequency_adaptation", 0.01, 0.2, -65.0, 8.0),
        # Izhikevich 2003, Fig. 2 (cortical and thalamic classes)
        _preset("regular_spiking", 0.02, 0.2, -65.0, 8.0),
        _preset("intrinsically_bursting", 0.02, 0.2, -55.0, 4.0),
        _preset("chattering", 0.02, 0.2, -50.0, 2.0),
        _preset("fast_spiking", 0.1, 0.2, -65.0, 2.0),
        _preset("low_threshold_spiking", 0.02, 0.25, -65.0, 2.0),
        _preset("thalamo_cortical", 0.02, 0.25, -65.0, 0.05),
        _preset("resonator", 0.1, 0.26, -65.0, 2.0),
    )
}
"""Named parameter sets, complete ``IzhikevichParameters`` (``a`` in 1/s)."""

PRESET_CHOICES = (*PRESETS, "custom")


def izhikevich_preset(name: str) -> IzhikevichParameters:
    """The complete parameters of a named preset; unknown names raise listing the valid ones."""
    check_choice("preset", name, tuple(PRESETS))
    return PRESETS[name]


def resolve_izhikevich(p: IzhikevichParameters) -> IzhikevichParameters:
    """Fill ``a, b, c, d`` left ``None`` from ``p.preset``; explicit values win."""
    return fill_from_preset(p, _COEFFICIENTS, PRESETS)


def izhikevich_step(
    x: torch.Tensor,
    state: IzhikevichState,
    p: IzhikevichParameters = IzhikevichParameters(),
    dt: float = 1e-3,
    detach_reset: bool = False,
) -> tuple[torch.Tensor, IzhikevichState]:
    """One Euler step (module docstring); returns ``(spikes, state)``."""
    p = resolve_izhikevich(p)
    v_old = state.v
    v = v_old + dt * PER_MS * (0.04 * v_old * v_old + 5.0 * v_old + 140.0 - state.u + x)
    u = state.u + dt * p.a * (p.b * v_old - state.u)
    z, z_reset = spike_and_reset_factor(v - p.v_peak, p.method, p.alpha, detach_reset)
    v = (1 - z_reset) * v + z_reset * p.c
    u = u + z_reset * p.d
    return z, IzhikevichState(v, u)


def izhikevich_initial_state(p: IzhikevichParameters, like: torch.Tensor) -> IzhikevichState:
    """Start at ``v = c``, ``u = b c``, shaped like ``like``."""
    p = resolve_izhikevich(p)
    v = torch.zeros_like(like) + p.c
    return IzhikevichState(v=v, u=p.b * v)


def validate_izhikevich(p: IzhikevichParameters, dt: float) -> None:
    """Known preset, ``dt <= 1 ms``, stable recovery step, finite values, known surrogate."""
    check_dt(dt)
    if dt * PER_MS > 1.0:
        raise ValueError(
            f"dt must be <= 0.001 s for the Izhikevich model (got dt={dt:g}); "
            "its equations are in milliseconds"
        )
    check_choice("preset", p.preset, PRESET_CHOICES)
    p = resolve_izhikevich(p)
    check_rate_constant("a", p.a, dt)
    for name in ("b", "c", "d", "v_peak"):
        check_finite(name, getattr(p, name))
    if float(torch.as_tensor(p.c).max()) >= float(torch.as_tensor(p.v_peak).min()):
        raise ValueError(f"v_peak must be > c (got v_peak={p.v_peak}, c={p.c})")
    check_surrogate(p.method, p.alpha)


MODEL = NeuronModel(
    name="izhikevich",
    prefix="Izhikevich",
    parameters=IzhikevichParameters,
    state=IzhikevichState,
    step=izhikevich_step,
    initial_state=izhikevich_initial_state,
    validate=validate_izhikevich,
    rate_constants=("a",),
    resolve=resolve_izhikevich,
)

__all__ = ["izhikevich_preset"]
