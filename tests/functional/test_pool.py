"""Fused max pooling against ``torch.nn.functional.max_pool2d``: values and gradients
bit-identical (ties, NaN, -inf, windows that do not fit), one byte saved per output element."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.graph import saved_tensors_hooks

from spikeexp.functional.fused import build, ops
from spikeexp.functional.fused.pool import max_pool2d
from spikeexp.module import FusedMaxPool2d

pytestmark = pytest.mark.skipif(build.kernels() is None, reason="no C++ compiler")


def _forward_and_gradient(pool, x: torch.Tensor, grad: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    y = pool(x)
    (gx,) = torch.autograd.grad(y, x, grad)
    return y, gx


def _assert_identical_to_torch(x: torch.Tensor, size: int) -> None:
    generator = torch.Generator().manual_seed(1)
    out_shape = F.max_pool2d(x, size).shape
    grad = torch.randn(out_shape, generator=generator, dtype=x.dtype)
    y, gx = _forward_and_gradient(lambda t: max_pool2d(t, size), x, grad)
    y_ref, gx_ref = _forward_and_gradient(lambda t: F.max_pool2d(t, size), x, grad)
    assert torch.equal(y.isnan(), y_ref.isnan())
    assert torch.equal(y.nan_to_num(), y_ref.nan_to_num())
    assert torch.equal(gx, gx_ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("size", [2, 3])
def test_spike_maps_full_of_ties_match_torch(size: int, dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(6, 5, 12, 12, generator=generator) < 0.2).to(dtype)
    spikes[0] = 0.0  # all-silent windows: the gradient goes to the first element
    _assert_identical_to_torch(spikes, size)
    y, where = ops.max_pool2d(spikes, size)
    assert y.dtype == dtype and where.dtype == torch.uint8


def test_small_integers_nan_inf_and_ragged_edges_match_torch() -> None:
    generator = torch.Generator().manual_seed(3)
    x = torch.randint(-2, 3, (2, 3, 7, 9), generator=generator).float()  # many ties
    x[0, 0, 0, 0] = float("nan")
    x[0, 0, 0, 1] = float("nan")  # two NaNs in one window: the last one is picked
    x[0, 1, 2, 2] = float("-inf")
    x[1, 2, :2, :2] = float("-inf")  # a window of -inf only
    x[1, 0, 4, 4] = -0.0
    for size in (2, 3, 4):
        _assert_identical_to_torch(x, size)
    _assert_identical_to_torch(x[0], 2)  # [C, H, W]


def test_gradcheck_float64() -> None:
    x = torch.randn(2, 3, 6, 8, dtype=torch.float64, requires_grad=True)  # no ties
    assert torch.autograd.gradcheck(lambda t: max_pool2d(t, 2), (x,))


def test_saves_one_byte_per_output_element() -> None:
    x = (torch.rand(4, 8, 10, 10) < 0.3).float().requires_grad_()
    saved: list[torch.Tensor] = []
    with saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        y = max_pool2d(x, 2)
    assert [t.dtype for t in saved] == [torch.uint8]
    assert saved[0].numel() == y.numel()


def test_other_inputs_use_torch_pooling() -> None:
    x = torch.randn(2, 4, 8, 8)
    channels_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(max_pool2d(channels_last, 2), F.max_pool2d(x, 2))
    assert torch.equal(max_pool2d(x[..., ::2], 2), F.max_pool2d(x[..., ::2], 2))
    assert torch.equal(max_pool2d(x.to(torch.bfloat16), 2), F.max_pool2d(x.bfloat16(), 2))
    with pytest.raises(RuntimeError):  # a window larger than the input: PyTorch's own error
        max_pool2d(x, 9)


def test_module_matches_nn_max_pool2d_and_the_network_uses_it() -> None:
    from spikeexp.engine import network_from_config

    x = (torch.rand(3, 2, 9, 9) < 0.3).float()
    assert torch.equal(FusedMaxPool2d(3)(x), nn.MaxPool2d(3)(x))
    topology = {"type": "conv", "channels": [4], "hidden": [8], "kernel_size": 3, "pool": 2}
    readout = {"model": "li"}
    neuron = {"model": "lif"}
    for backend, expected in (("auto", FusedMaxPool2d), ("reference", nn.MaxPool2d)):
        network = network_from_config(topology, neuron, readout, (1, 10, 10), 10, backend=backend)
        assert type(network.layers.pool1.module) is expected
