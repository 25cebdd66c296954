"""Parameter checks shared by every neuron model and encoder.

Every check raises :class:`ValueError` with a one-line message that names the parameter, the bad
value and the valid range, e.g. ``tau_mem_inv must be > 0 (got -1.0)``.
"""

from __future__ import annotations

import torch

Number = float | int | torch.Tensor


def _describe(value: Number) -> str:
    """Short text for a float or a tensor (its worst element is what matters)."""
    if isinstance(value, torch.Tensor):
        if value.numel() == 1:
            return f"{value.item():g}"
        return f"tensor with min {value.min().item():g}, max {value.max().item():g}"
    return f"{value:g}" if isinstance(value, float) else repr(value)


def _min(value: Number) -> float:
    return float(value.min()) if isinstance(value, torch.Tensor) else float(value)


def _max(value: Number) -> float:
    return float(value.max()) if isinstance(value, torch.Tensor) else float(value)


def check_finite(name: str, value: Number) -> None:
    """``value`` has no NaN or infinite element."""
    tensor = torch.as_tensor(value, dtype=torch.float64)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} must be finite (got {_describe(value)})")


def check_positive(name: str, value: Number) -> None:
    """``value > 0`` everywhere."""
    check_finite(name, value)
    if _min(value) <= 0:
        raise ValueError(f"{name} must be > 0 (got {_describe(value)})")


def check_non_negative(name: str, value: Number) -> None:
    """``value >= 0`` everywhere."""
    check_finite(name, value)
    if _min(value) < 0:
        raise ValueError(f"{name} must be >= 0 (got {_describe(value)})")


def check_in_range(name: str, value: Number, low: float, high: float) -> None:
    """``low <= value <= high`` everywhere."""
    check_finite(name, value)
    if _min(value) < low or _max(value) > high:
        raise ValueError(f"{name} must be in [{low:g}, {high:g}] (got {_describe(value)})")


def check_dt(dt: float) -> None:
    """The integration step ``dt`` (seconds) is a positive finite number."""
    check_positive("dt", dt)


def check_rate_constant(name: str, rate_inv: Number, dt: float) -> None:
    """An inverse time constant (1/s) is positive and explicit Euler with ``dt`` is stable.

    Forward Euler multiplies the decaying variable by ``1 - dt * rate_inv`` each step; it stays a
    decay only while ``dt * rate_inv < 1``.
    """
    check_positive(name, rate_inv)
    if _max(rate_inv) * dt >= 1.0:
        raise ValueError(
            f"dt * {name} must be < 1 for a stable Euler step (got dt={dt:g}, "
            f"{name}={_describe(rate_inv)}; use {name} < {1.0 / dt:g} or dt < "
            f"{1.0 / _max(rate_inv):g})"
        )


def check_threshold(v_th: Number, v_reset: Number) -> None:
    """The firing threshold lies above the reset potential everywhere."""
    check_finite("v_th", v_th)
    check_finite("v_reset", v_reset)
    gap = torch.as_tensor(v_th, dtype=torch.float64) - torch.as_tensor(v_reset, dtype=torch.float64)
    if float(gap.min()) <= 0:
        raise ValueError(
            f"v_th must be > v_reset (got v_th={_describe(v_th)}, v_reset={_describe(v_reset)})"
        )


def check_choice(name: str, value: str, valid: list[str] | tuple[str, ...]) -> None:
    """``value`` is one of ``valid``."""
    if value not in valid:
        raise ValueError(f"{name} must be one of {', '.join(valid)} (got {value!r})")
