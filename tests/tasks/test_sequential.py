"""Sequential image tasks: pixel/row order, permutation, threshold code, the experiments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import seed_everything

from spikeexp.engine.experiment import build_experiment, build_trainer
from spikeexp.functional.encode import threshold_crossing_encode, uniform_thresholds
from spikeexp.tasks.sequential import (
    SequentialDigitsDataModule,
    SequentialMNISTDataModule,
    image_sequence,
    step_permutation,
)
from tests.helpers import compose_like_cli


def test_image_sequence_orders() -> None:
    image = torch.arange(6.0).view(1, 1, 2, 3)  # rows [0 1 2], [3 4 5]
    assert image_sequence(image, "pixels")[0, :, 0].tolist() == [0, 1, 2, 3, 4, 5]
    assert image_sequence(image, "rows")[0].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_permutation_is_fixed_by_its_own_seed() -> None:
    first = step_permutation(784, 0)
    assert sorted(first.tolist()) == list(range(784))
    assert torch.equal(first, step_permutation(784, 0))
    assert not torch.equal(first, step_permutation(784, 1))


@pytest.mark.parametrize(
    ("order", "encoding", "shape"),
    [("pixels", "raw", (64, 1)), ("rows", "raw", (8, 8)), ("pixels", "threshold", (64, 80))],
)
def test_sequential_digits_batches(order: str, encoding: str, shape: tuple[int, int]) -> None:
    data = SequentialDigitsDataModule(order=order, encoding=encoding, batch_size=16)
    data.setup()
    assert data.input_shape == shape
    x, y = next(iter(data.test_dataloader()))
    assert x.shape == (16, *shape) and x.dtype == torch.float32 and y.dtype == torch.int64
    images = data.images.load()[2][:16]  # the first 16 test images
    raw = image_sequence(images, order)
    if encoding == "threshold":
        raw = threshold_crossing_encode(raw, uniform_thresholds(40))
    assert torch.equal(x, raw)


def test_permuted_digits_use_the_same_order_for_every_split() -> None:
    plain = SequentialDigitsDataModule(batch_size=8)
    permuted = SequentialDigitsDataModule(batch_size=8, permute=True, permutation_seed=3)
    plain.setup(), permuted.setup()
    order = step_permutation(64, 3)
    for split in ("train_set", "test_set"):
        x_plain = getattr(plain, split).tensors[0]
        x_permuted = getattr(permuted, split).tensors[0]
        assert torch.equal(x_permuted, x_plain[:, order])
    # the run seed changes the splits, not the permutation
    other_seed = SequentialDigitsDataModule(permute=True, permutation_seed=3, seed=5)
    assert torch.equal(other_seed.permutation, order)


@pytest.mark.parametrize("dataset", ["mnist", "fashion_mnist"])
def test_sequential_mnist_reads_idx_files(tmp_path: Path, make_dataset, dataset: str) -> None:
    arrays = make_dataset(tmp_path, train=40, test=10, gz=True)
    data = SequentialMNISTDataModule(
        dataset=dataset, root=str(tmp_path), encoding="raw", batch_size=5, val_fraction=0.25
    )
    data.setup()
    assert data.input_shape == (784, 1)
    x, y = next(iter(data.test_dataloader()))
    images = arrays["t10k-images-idx3-ubyte"][:5].astype(np.float32) / 255.0
    np.testing.assert_allclose(x[..., 0].numpy(), images.reshape(5, 784))
    assert y.tolist() == arrays["t10k-labels-idx1-ubyte"][:5].tolist()


def test_sequential_mnist_threshold_rows(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, train=20, test=10)
    data = SequentialMNISTDataModule(
        root=str(tmp_path), order="rows", encoding="threshold", thresholds=2, batch_size=4
    )
    data.setup()
    x, _ = next(iter(data.train_dataloader()))
    assert data.input_shape == (28, 28 * 4) and x.shape == (4, 28, 112)
    assert set(x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dataset": "cifar"}, "data.dataset must be one of mnist, fashion_mnist"),
        ({"order": "columns"}, "data.order must be one of pixels, rows"),
        ({"encoding": "delta"}, "data.encoding must be one of raw, threshold"),
        ({"thresholds": 0}, "data.thresholds must be an integer >= 1"),
        ({"permutation_seed": -1}, "data.permutation_seed must be an integer >= 0"),
        ({"permute": "yes"}, "data.permute must be true or false"),
    ],
)
def test_bad_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SequentialMNISTDataModule(**kwargs)


def test_missing_mnist_names_the_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="MNIST files not found: looked in"):
        SequentialMNISTDataModule(root=str(tmp_path)).setup()


SHORT = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=1",
    "logger=none",
    "callbacks=minimal",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


@pytest.mark.parametrize("experiment", ["smnist_lsnn", "smnist_lif"])
def test_smnist_experiments_train_on_synthetic_mnist(
    experiment: str, tmp_path: Path, make_dataset
) -> None:
    make_dataset(tmp_path / "data", train=40, test=8)
    config = compose_like_cli(
        [
            f"experiment={experiment}",
            f"paths.output_dir={tmp_path}",
            f"data.root={tmp_path / 'data'}",
            "data.batch_size=8",
            "topology.hidden=[16]",
            *SHORT,
        ]
    )
    try:
        run = build_experiment(config)
        hidden = run.module.network.layers.get_submodule("hidden1")
        assert (hidden.input_size, hidden.hidden_size) == (80, 16)
        before = {k: v.clone() for k, v in run.module.state_dict().items()}
        trainer = build_trainer(run.spec)
        trainer.fit(run.module, datamodule=run.datamodule)
        results = trainer.test(run.module, datamodule=run.datamodule)[0]
    finally:
        HydraConfig.instance().cfg = None
    changed = [k for k, v in run.module.state_dict().items() if not torch.equal(v, before[k])]
    assert any("hidden1" in key for key in changed)
    assert 0.0 <= results["test/acc"] <= 1.0


def test_sequential_digits_learns_row_by_row(tmp_path: Path) -> None:
    """8 row steps into a small recurrent LIF layer: far above chance (10 %) after 8 epochs."""
    config = compose_like_cli(
        [
            "task=sequential_digits",
            "data.order=rows",
            "encoder=none",
            "topology=recurrent",
            "topology.hidden=[64]",
            "neuron.v_th=0.2",
            "optimizer.lr=1e-2",
            "trainer.max_epochs=8",
            f"paths.output_dir={tmp_path}",
            "logger=none",
            "callbacks=minimal",
            "+trainer.enable_progress_bar=false",
            "+trainer.enable_model_summary=false",
        ]
    )
    try:
        seed_everything(0)
        run = build_experiment(config)
        trainer = build_trainer(run.spec)
        trainer.fit(run.module, datamodule=run.datamodule)
        results = trainer.test(run.module, datamodule=run.datamodule)[0]
    finally:
        HydraConfig.instance().cfg = None
    assert results["test/acc"] > 0.4
