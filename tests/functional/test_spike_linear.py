"""The event-driven product for spike input against ``torch.nn.functional.linear``: outputs and
gradients within 1e-6 of the largest magnitude (float32 rounding in another order), the input
and bias gradients bit-identical, the dense path where the density is high or values are not
finite, and the module as a drop-in ``nn.Linear``."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import spikeexp as snn
from spikeexp.functional.fused import build
from spikeexp.functional.fused import spike_linear as module
from spikeexp.functional.fused.spike_linear import SpikeLinearFunction, spike_linear
from spikeexp.module import Lift
from spikeexp.module.container import is_time_invariant

pytestmark = pytest.mark.skipif(build.kernels() is None, reason="no C++ compiler")

TOL = 1e-6


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual - expected).detach().abs().max() / expected.detach().abs().max())


def _case(shape, outputs, density, bias=True, values=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=generator) < density).float()
    if values is not None:
        x = x * values
    x.requires_grad_()
    inputs = shape[-1]
    w = (torch.randn(outputs, inputs, generator=generator) * 4 / inputs**0.5).requires_grad_()
    b = torch.randn(outputs, generator=generator).requires_grad_() if bias else None
    grad = torch.randn(*shape[:-1], outputs, generator=generator)
    return x, w, b, grad


def _both(x, w, b, grad):
    runs = []
    for product in (spike_linear, F.linear):
        y = product(x, w, b)
        wanted = [t for t in (x, w, b) if t is not None]
        runs.append((y, *torch.autograd.grad(y, wanted, grad)))
    return runs


@pytest.mark.parametrize(
    ("shape", "outputs", "density"),
    [
        ((2000, 784), 512, 0.2),  # blocks, tiles and slabs of the kernels, several threads
        ((25, 32, 70), 130, 0.1),  # [T, batch, in]; sizes that are not multiples of a tile
        ((300, 33), 5, 0.02),  # rows without any spike
        ((64, 300), 257, 0.45),
    ],
)
def test_spike_input_matches_the_dense_product(shape, outputs, density) -> None:
    x, w, b, grad = _case(shape, outputs, density)
    (y, gx, gw, gb), (y_ref, gx_ref, gw_ref, gb_ref) = _both(x, w, b, grad)
    assert y.shape == y_ref.shape
    assert _relative_error(y, y_ref) <= TOL
    assert _relative_error(gw, gw_ref) <= TOL
    assert torch.equal(gx, gx_ref) and torch.equal(gb, gb_ref)  # the same dense BLAS calls


def test_rounds_as_close_to_the_exact_product_as_sgemm() -> None:
    """Against the float64 product, the event-driven sums (two-level: per slab, then total)
    are no worse than the float32 GEMM."""
    x, w, b, grad = _case((4096, 784), 512, 0.2, seed=3)
    (y, _, gw, _), (y_ref, _, gw_ref, _) = _both(x, w, b, grad)
    y64 = F.linear(x.double(), w.double(), b.double())
    gw64 = grad.double().t() @ x.double()
    assert _relative_error(y.double(), y64) <= 1.5 * _relative_error(y_ref.double(), y64)
    assert _relative_error(gw.double(), gw64) <= 4 * _relative_error(gw_ref.double(), gw64)


def test_non_binary_input_and_no_bias() -> None:
    values = torch.linspace(-3.0, 5.0, 90)
    x, w, _, grad = _case((400, 90), 70, 0.15, bias=False, values=values)
    (y, gx, gw), (y_ref, gx_ref, gw_ref) = _both(x, w, None, grad)
    assert _relative_error(y, y_ref) <= TOL and _relative_error(gw, gw_ref) <= TOL
    assert torch.equal(gx, gx_ref)


def test_dense_input_takes_the_dense_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the break-even densities the result is F.linear's own, bit for bit."""
    used = []
    monkeypatch.setattr(SpikeLinearFunction, "apply", lambda *a: used.append(a) or None)
    x, w, b, _ = _case((300, 64), 40, 0.9)
    assert torch.equal(spike_linear(x, w, b), F.linear(x, w, b))
    assert not used


@pytest.mark.parametrize("forward", [True, False])
def test_each_pass_can_take_either_path(forward: bool, monkeypatch) -> None:
    """Forward event-driven with a dense weight gradient, and the other way round."""
    monkeypatch.setattr(module, "FORWARD_MAX_DENSITY", 1.0 if forward else 0.0)
    monkeypatch.setattr(module, "WEIGHT_GRAD_MAX_DENSITY", 0.0 if forward else 1.0)
    kernels_run = []
    real_kernel = module.kernel
    monkeypatch.setattr(
        module, "kernel", lambda name, dtype: kernels_run.append(name) or real_kernel(name, dtype)
    )
    x, w, b, grad = _case((500, 100), 60, 0.2)
    (y, gx, gw, gb), (y_ref, gx_ref, gw_ref, gb_ref) = _both(x, w, b, grad)
    expected = "spike_linear_forward" if forward else "spike_linear_weight_grad"
    assert kernels_run == [expected]
    assert _relative_error(y, y_ref) <= TOL and _relative_error(gw, gw_ref) <= TOL
    assert torch.equal(gx, gx_ref) and torch.equal(gb, gb_ref)


def test_non_finite_weights_and_gradients_give_the_dense_products_nan() -> None:
    """0 * inf is NaN in a dense product: an infinite weight makes every output of its row NaN
    (spike or not), an infinite gradient in a row without spikes every weight gradient of its
    column. The event-driven product would skip those terms: it hands them to the dense path."""
    x, w, b, grad = _case((200, 50), 30, 0.2)
    with torch.no_grad():
        w[3, 7] = float("inf")
        x[:, 7] = 0.0
    (y, _, gw, _), (y_ref, _, gw_ref, _) = _both(x, w, b, grad)
    assert bool(y_ref[:, 3].isnan().all())
    assert torch.equal(y.isnan(), y_ref.isnan())
    x, w, b, grad = _case((200, 50), 30, 0.2)
    with torch.no_grad():
        x[11] = 0.0
    grad[11, 4] = float("inf")
    (_, _, gw, _), (_, _, gw_ref, _) = _both(x, w, b, grad)
    assert bool(gw_ref[4].isnan().all()) and torch.equal(gw.isnan(), gw_ref.isnan())


def test_double_backward_raises() -> None:
    x, w, b, _ = _case((100, 40), 20, 0.2)
    y = spike_linear(x, w, b)
    (gw,) = torch.autograd.grad(y.pow(2).sum(), [w], create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through the event-driven"):
        torch.autograd.grad(gw.pow(2).sum(), [w])


def test_module_is_a_drop_in_linear() -> None:
    torch.manual_seed(0)
    dense = nn.Linear(70, 30)
    layer = snn.SpikeLinear(70, 30)
    layer.load_state_dict(dense.state_dict())
    lifted = Lift(layer)
    assert is_time_invariant(layer)
    spikes = (torch.rand(12, 4, 70) < 0.2).float()
    assert _relative_error(lifted(spikes), Lift(dense)(spikes)) <= TOL
    constant = spikes[0].unsqueeze(0).expand(12, -1, -1)  # time stride 0: applied once
    assert lifted(constant).stride(0) == 0
