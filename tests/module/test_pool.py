"""SumPool2d sums each window exactly; Scale takes a number or a per-feature tensor."""

from __future__ import annotations

import torch
from torch.nn import functional

from spikeexp.module import Lift, Scale, SumPool2d
from spikeexp.module.container import is_time_invariant


def test_sum_pool_sums_each_window_with_zero_padding() -> None:
    x = torch.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    assert torch.equal(SumPool2d(2)(x), torch.tensor([[[[14.0, 22.0], [46.0, 54.0]]]]))
    padded = SumPool2d(3, stride=2, padding=1)(x)
    expected = functional.conv2d(x, torch.ones(1, 1, 3, 3), stride=2, padding=1)
    assert torch.equal(padded, expected)
    spikes = (torch.rand(5, 3, 8, 8) > 0.7).float()
    assert torch.equal(SumPool2d(2)(spikes), functional.avg_pool2d(spikes, 2) * 4)


def test_sum_pool_is_time_invariant_under_lift() -> None:
    assert is_time_invariant(SumPool2d(2))
    x = torch.rand(1, 2, 3, 4, 4).expand(6, 2, 3, 4, 4)
    out = Lift(SumPool2d(2))(x)
    assert out.shape == (6, 2, 3, 2, 2) and out.stride(0) == 0


def test_scale_by_number_and_by_feature() -> None:
    x = torch.ones(2, 3)
    assert torch.equal(Scale(2.5)(x), torch.full((2, 3), 2.5))
    per_feature = Scale(torch.tensor([1.0, 2.0, 3.0]))
    assert torch.equal(per_feature(x), torch.tensor([[1.0, 2.0, 3.0]] * 2))
    assert "factor" in dict(per_feature.named_buffers())
    assert "shape [3]" in repr(per_feature)
