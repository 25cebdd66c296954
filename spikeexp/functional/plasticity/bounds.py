r"""Weight dependence and bounds, shared by the weight rules (STDP, triplet, reward-modulated).

A rule computes a potentiation term :math:`P \ge 0` and a depression term :math:`D \ge 0`
(amplitudes included); the weight change is

.. math::
    \Delta w = \eta_+(w)\, P - \eta_-(w)\, D

* ``additive``: :math:`\eta_\pm = 1` (Song, Miller & Abbott 2000), usually with hard bounds;
* ``multiplicative`` (soft bounds): :math:`\eta_+ = [w_{max} - w]_+`,
  :math:`\eta_- = [w - w_{min}]_+` (Rubin, Lee & Sompolinsky 2001; Gütig et al. 2003 with
  :math:`\mu = 1`): potentiation fades near :math:`w_{max}`, depression near :math:`w_{min}`.

With ``hard_bounds`` the change is cut so that :math:`w + \Delta w \in [w_{min}, w_{max}]`.
"""

from __future__ import annotations

from typing import Any

import torch

from spikeexp.functional.validation import check_choice, check_finite

WEIGHT_DEPENDENCES = ("additive", "multiplicative")


def weight_factors(w: torch.Tensor, p: Any) -> tuple[Any, Any]:
    """:math:`(\\eta_+(w), \\eta_-(w))` of ``p.weight_dependence`` (module docstring)."""
    if p.weight_dependence == "multiplicative":
        return (p.w_max - w).clamp(min=0), (w - p.w_min).clamp(min=0)
    return 1.0, 1.0


def bound_update(w: torch.Tensor, dw: torch.Tensor, p: Any) -> torch.Tensor:
    """``dw`` cut so that ``w + dw`` stays in ``[w_min, w_max]`` when ``p.hard_bounds``."""
    if not p.hard_bounds:
        return dw
    low = torch.as_tensor(p.w_min, dtype=w.dtype, device=w.device)
    high = torch.as_tensor(p.w_max, dtype=w.dtype, device=w.device)
    return torch.minimum(torch.maximum(w + dw, low), high) - w


def weight_update(
    w: torch.Tensor, potentiation: torch.Tensor, depression: torch.Tensor, p: Any
) -> torch.Tensor:
    """:math:`\\eta_+(w) P - \\eta_-(w) D`, then the hard bounds (module docstring)."""
    eta_plus, eta_minus = weight_factors(w, p)
    return bound_update(w, eta_plus * potentiation - eta_minus * depression, p)


def validate_bounds(p: Any) -> None:
    """Finite ``w_min < w_max``, a known weight dependence, ``hard_bounds`` a boolean."""
    check_finite("w_min", p.w_min)
    check_finite("w_max", p.w_max)
    gap = torch.as_tensor(p.w_max, dtype=torch.float64) - torch.as_tensor(
        p.w_min, dtype=torch.float64
    )
    if float(gap.min()) <= 0:
        raise ValueError(f"w_max must be > w_min (got w_min={p.w_min}, w_max={p.w_max})")
    check_choice("weight_dependence", p.weight_dependence, WEIGHT_DEPENDENCES)
    if not isinstance(p.hard_bounds, bool):
        raise ValueError(f"hard_bounds must be true or false (got {p.hard_bounds!r})")
