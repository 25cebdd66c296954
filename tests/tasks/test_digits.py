"""The digits data module: sizes, value ranges, seeded disjoint splits, kwarg validation."""

from __future__ import annotations

import pytest
import torch

from spikeexp.tasks.digits import DigitsDataModule

DIGITS_IMAGES = 1797


def _all(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return dataset.tensors


def test_sizes_and_batches() -> None:
    data = DigitsDataModule(batch_size=32)
    data.setup()
    sizes = [len(data.train_set), len(data.val_set), len(data.test_set)]
    assert sum(sizes) == DIGITS_IMAGES
    assert sizes[2] == round(0.2 * DIGITS_IMAGES)
    assert sizes[1] == round(0.1 * (DIGITS_IMAGES - sizes[2]))
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (32, *data.input_shape) == (32, 1, 8, 8)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert data.num_classes == 10


def test_values_scaled_to_unit_interval() -> None:
    data = DigitsDataModule()
    data.setup()
    x, y = _all(data.test_set)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert set(y.tolist()) == set(range(10))


def test_splits_disjoint_and_seeded() -> None:
    def fingerprints(seed: int) -> list[set[bytes]]:
        data = DigitsDataModule(seed=seed)
        data.setup()
        return [
            {row.numpy().tobytes() for row in _all(s)[0]}
            for s in (data.train_set, data.val_set, data.test_set)
        ]

    train, val, test = fingerprints(0)
    # The 1,797 images are pairwise distinct, so disjoint splits cover exactly 1,797 images.
    assert len(train | val | test) == len(train) + len(val) + len(test) == DIGITS_IMAGES
    assert fingerprints(0) == [train, val, test]
    assert fingerprints(1)[2] != test


def test_val_and_test_loaders_keep_order() -> None:
    data = DigitsDataModule(batch_size=50)
    first = torch.cat([y for _, y in data.test_dataloader()])
    second = torch.cat([y for _, y in data.test_dataloader()])
    assert torch.equal(first, second)
    assert torch.equal(first, data.test_set.tensors[1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "data.batch_size must be an integer >= 1 (got 0)"),
        ({"batch_size": 2.5}, "data.batch_size must be an integer >= 1 (got 2.5)"),
        ({"num_workers": -1}, "data.num_workers must be an integer >= 0 (got -1)"),
        ({"val_fraction": 1.0}, "data.val_fraction must be in (0, 1) exclusive (got 1.0)"),
        ({"val_fraction": 0}, "data.val_fraction must be in (0, 1) exclusive (got 0)"),
        ({"seed": -3}, "data.seed must be an integer >= 0 (got -3)"),
        ({"test_fraction": 0.0}, "data.test_fraction must be in (0, 1) exclusive (got 0.0)"),
    ],
)
def test_bad_kwargs(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError) as info:
        DigitsDataModule(**kwargs)
    assert str(info.value) == message
