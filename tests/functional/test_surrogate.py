"""Surrogate derivatives against hand-written antiderivatives (gradcheck) and spike()."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from spikeexp.functional.surrogate import (
    SURROGATES,
    check_surrogate,
    spike,
    surrogate_derivative,
)

ALPHA = 2.0


def _triangle_primitive(x: torch.Tensor, alpha: float) -> torch.Tensor:
    u = x.clamp(-1.0 / alpha, 1.0 / alpha)
    return alpha * u - 0.5 * alpha**2 * u * u.abs()


# Smooth steps whose derivative each surrogate claims to be, written independently of the
# implementation: d/dx primitive(x) must equal surrogate_derivative(x).
PRIMITIVES: dict[str, Callable[[torch.Tensor, float], torch.Tensor]] = {
    "super": lambda x, a: x / (a * x.abs() + 1.0),
    "sigmoid": lambda x, a: torch.sigmoid(a * x),
    "fast_sigmoid": lambda x, a: 0.5 + 0.5 * a * x / (1.0 + a * x.abs()),
    "triangle": _triangle_primitive,
    "arctan": lambda x, a: torch.atan(0.5 * math.pi * a * x) / math.pi + 0.5,
    "tanh": lambda x, a: 0.5 * torch.tanh(a * x) + 0.5,
    "erfc": lambda x, a: 0.5 * torch.erfc(-a * x),
    "straight_through": lambda x, a: x,
}
KINKS = {"triangle": (-1.0 / ALPHA, 0.0, 1.0 / ALPHA), "super": (0.0,)}


def test_every_registered_surrogate_has_a_primitive_here() -> None:
    assert set(PRIMITIVES) == set(SURROGATES)


def _function(name: str) -> type[torch.autograd.Function]:
    class PrimitiveWithSurrogateBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x: torch.Tensor) -> torch.Tensor:
            ctx.save_for_backward(x)
            return PRIMITIVES[name](x, ALPHA)

        @staticmethod
        def backward(ctx, grad_output: torch.Tensor) -> torch.Tensor:
            (x,) = ctx.saved_tensors
            return grad_output * surrogate_derivative(x, name, ALPHA)

    return PrimitiveWithSurrogateBackward


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_backward_is_the_derivative_of_its_primitive(name: str) -> None:
    x = torch.linspace(-1.5, 1.5, 41, dtype=torch.float64)
    for kink in KINKS.get(name, ()):
        x = x[(x - kink).abs() > 1e-3]
    x.requires_grad_(True)
    assert torch.autograd.gradcheck(_function(name).apply, (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_spike_forward_is_strict_heaviside(name: str) -> None:
    x = torch.tensor([-1.0, -1e-9, 0.0, 1e-9, 0.7], dtype=torch.float64)
    assert spike(x, name, ALPHA).tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]


@pytest.mark.parametrize("name", sorted(SURROGATES))
def test_spike_backward_is_the_surrogate_derivative(name: str) -> None:
    x = torch.linspace(-1.0, 1.0, 9, dtype=torch.float64, requires_grad=True)
    grad_output = torch.linspace(0.5, 2.0, 9, dtype=torch.float64)
    spike(x, name, ALPHA).backward(grad_output)
    expected = grad_output * surrogate_derivative(x.detach(), name, ALPHA)
    torch.testing.assert_close(x.grad, expected)


def test_super_at_default_alpha_by_hand() -> None:
    x = torch.tensor([0.0, 0.01, -0.03])
    expected = torch.tensor([1.0, 1.0 / 4.0, 1.0 / 16.0])
    torch.testing.assert_close(surrogate_derivative(x, "super", 100.0), expected)


def test_unknown_surrogate_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="method must be one of super, sigmoid") as error:
        spike(torch.zeros(1), "nope")
    assert "'nope'" in str(error.value)
    with pytest.raises(ValueError, match="method must be one of"):
        surrogate_derivative(torch.zeros(1), "nope", 1.0)


def test_non_positive_alpha_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"alpha must be > 0 \(got -1\)"):
        check_surrogate("super", -1.0)
