r"""Spike functions: Heaviside forward, surrogate derivative backward.

A spike is :math:`z = H(x)` with :math:`x = v - v_{th}` and :math:`H(x) = 1` for :math:`x > 0`
(strictly greater), else 0. Its true derivative is zero almost everywhere, so the backward pass
uses a smooth surrogate :math:`\partial z / \partial x \approx \sigma'(x)` chosen by name, with
sharpness ``alpha`` (units of 1/voltage):

================  ========================================================================
name              surrogate derivative :math:`\sigma'(x)`
================  ========================================================================
super             :math:`1 / (\alpha |x| + 1)^2` (SuperSpike, Zenke & Ganguli 2018; Norse)
sigmoid           :math:`\alpha\, s (1 - s)`, :math:`s = \mathrm{sigmoid}(\alpha x)`
fast_sigmoid      :math:`\alpha / (2 (1 + \alpha |x|)^2)` (derivative of the normalised
                  fast sigmoid :math:`\tfrac12 + \tfrac12\, \alpha x / (1 + \alpha |x|)`)
triangle          :math:`\alpha \max(0, 1 - \alpha |x|)`
arctan            :math:`\alpha / (2 (1 + (\tfrac{\pi}{2} \alpha x)^2))` (SpikingJelly ATan)
tanh              :math:`\tfrac{\alpha}{2} (1 - \tanh^2(\alpha x))`
erfc              :math:`\alpha / \sqrt{\pi}\, \exp(-(\alpha x)^2)`
straight_through  :math:`1`
================  ========================================================================

All but ``super`` integrate to 1 over :math:`x`, i.e. they are derivatives of a smooth step.
The one registry :data:`SURROGATES` maps names to derivative functions; fused kernels use the same
functions, so every backend computes identical gradients. The feed-forward LIF kernel evaluates
``super``, ``fast_sigmoid``, ``triangle`` and ``straight_through`` itself, in the operation order
of the functions below (``tests/functional/test_fused.py`` checks that they round identically):
change one, change ``kernels.cpp`` with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from spikeexp.functional.validation import check_choice, check_positive

SurrogateDerivative = Callable[[torch.Tensor, float], torch.Tensor]


def _super(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return 1.0 / (alpha * x.abs() + 1.0) ** 2


def _sigmoid(x: torch.Tensor, alpha: float) -> torch.Tensor:
    s = torch.sigmoid(alpha * x)
    return alpha * s * (1.0 - s)


def _fast_sigmoid(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha / (2.0 * (1.0 + alpha * x.abs()) ** 2)


def _triangle(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha * torch.clamp(1.0 - alpha * x.abs(), min=0.0)


def _arctan(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha / (2.0 * (1.0 + (0.5 * math.pi * alpha * x) ** 2))


def _tanh(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return 0.5 * alpha * (1.0 - torch.tanh(alpha * x) ** 2)


def _erfc(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return alpha / math.sqrt(math.pi) * torch.exp(-((alpha * x) ** 2))


def _straight_through(x: torch.Tensor, alpha: float) -> torch.Tensor:
    return torch.ones_like(x)


SURROGATES: dict[str, SurrogateDerivative] = {
    "super": _super,
    "sigmoid": _sigmoid,
    "fast_sigmoid": _fast_sigmoid,
    "triangle": _triangle,
    "arctan": _arctan,
    "tanh": _tanh,
    "erfc": _erfc,
    "straight_through": _straight_through,
}


def check_surrogate(method: str, alpha: float) -> None:
    """Raise ``ValueError`` for an unknown surrogate name or a non-positive ``alpha``."""
    check_choice("method", method, tuple(SURROGATES))
    check_positive("alpha", alpha)


def surrogate_derivative(x: torch.Tensor, method: str, alpha: float) -> torch.Tensor:
    r""":math:`\sigma'(x)` of the named surrogate (see the module table)."""
    try:
        derivative = SURROGATES[method]
    except KeyError:
        check_surrogate(method, alpha)
        raise
    return derivative(x, alpha)


class _SpikeFunction(torch.autograd.Function):
    """Heaviside forward, named surrogate backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, method: str, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.method = method
        ctx.alpha = alpha
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (x,) = ctx.saved_tensors
        return grad_output * surrogate_derivative(x, ctx.method, ctx.alpha), None, None


def spike(x: torch.Tensor, method: str = "super", alpha: float = 100.0) -> torch.Tensor:
    r"""Spikes :math:`z = H(x)` (1 where ``x > 0``), differentiable through the named surrogate.

    Args:
        x: distance to threshold, :math:`v - v_{th}` (any shape).
        method: surrogate name, one of :data:`SURROGATES`.
        alpha: surrogate sharpness (1/voltage).
    """
    if method not in SURROGATES:
        check_surrogate(method, alpha)
    return _SpikeFunction.apply(x, method, float(alpha))


def spike_and_reset_factor(
    x: torch.Tensor, method: str, alpha: float, detach_reset: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Spikes :math:`z = H(x)` and the factor that resets the neuron state.

    The reset factor is :math:`z` itself, or :math:`z` detached from the graph when
    ``detach_reset`` (recurrent layers, as in Norse: no gradient through the reset). A model then
    resets with e.g. :math:`v \leftarrow (1 - z_r)\, v + z_r\, v_{reset}`.
    """
    z = spike(x, method, alpha)
    return z, z.detach() if detach_reset else z
