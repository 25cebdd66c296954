"""MNIST / Fashion-MNIST data modules on small IDX files in both layouts, and the real data."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeexp.tasks import mnist
from spikeexp.tasks.mnist import FashionMNISTDataModule, MNISTDataModule

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    ("module", "layout"),
    [
        (MNISTDataModule, ""),
        (MNISTDataModule, "MNIST/raw"),
        (FashionMNISTDataModule, ""),
        (FashionMNISTDataModule, "FashionMNIST/raw"),
    ],
    ids=["mnist_flat", "mnist_torchvision", "fashion_flat", "fashion_torchvision"],
)
def test_reads_both_layouts(tmp_path: Path, make_dataset, module, layout: str, gz: bool) -> None:
    arrays = make_dataset(tmp_path / layout, train=60, test=20, gz=gz)
    data = module(root=str(tmp_path), batch_size=8, val_fraction=0.25)
    data.setup()
    assert (len(data.train_set), len(data.val_set), len(data.test_set)) == (45, 15, 20)
    test_x, test_y = data.test_set.tensors
    expected = arrays["t10k-images-idx3-ubyte"].astype(np.float32)[:, None] / 255.0
    np.testing.assert_allclose(test_x.numpy(), expected)
    assert test_y.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (8, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10


def test_root_from_environment(tmp_path: Path, make_dataset, monkeypatch) -> None:
    make_dataset(tmp_path / "MNIST" / "raw")
    monkeypatch.setenv("SPIKEEXP_DATA", str(tmp_path))
    data = MNISTDataModule()
    data.setup()
    assert data.root == tmp_path and len(data.test_set) == 20


def test_default_root_is_data_folder(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SPIKEEXP_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    assert MNISTDataModule().root == Path("data")


def test_missing_data_error_lists_places_and_remedies(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(FashionMNISTDataModule, "system_folders", (tmp_path / "debian",))
    monkeypatch.setenv("SPIKEEXP_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError) as info:
        FashionMNISTDataModule().setup()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("Fashion-MNIST files not found: looked in ")
    for place in ("nowhere", "nowhere/FashionMNIST/raw", "debian"):
        assert str(tmp_path / place) in message
    for hint in ("data.download=true", "data.root=", "apt-get install dataset-fashion-mnist"):
        assert hint in message
    assert "train-images-idx3-ubyte[.gz]" in message


def test_given_root_does_not_fall_back_to_system_folder(tmp_path: Path, make_dataset, monkeypatch):
    make_dataset(tmp_path / "debian")
    monkeypatch.setattr(FashionMNISTDataModule, "system_folders", (tmp_path / "debian",))
    monkeypatch.setenv("SPIKEEXP_DATA", str(tmp_path / "empty"))
    assert len(_setup(FashionMNISTDataModule()).test_set) == 20
    with pytest.raises(ValueError, match="files not found"):
        FashionMNISTDataModule(root=str(tmp_path / "empty")).setup()


def _setup(data):
    data.setup()
    return data


def test_corrupt_file_names_the_file(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path, gz=True)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-8])
    with pytest.raises(ValueError, match=f"IDX file {labels}"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_label_count_mismatch(tmp_path: Path, make_dataset, write_idx) -> None:
    make_dataset(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(5, dtype=np.uint8))
    with pytest.raises(ValueError, match="must hold 20 uint8 labels, one per image"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_image_shape_mismatch(tmp_path: Path, make_dataset, write_idx) -> None:
    make_dataset(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((20, 8, 8), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"must hold uint8 images \[N, 28, 28\] \(got torch.uint8"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_root_that_is_a_file(tmp_path: Path) -> None:
    file = tmp_path / "file"
    file.write_text("x")
    with pytest.raises(ValueError, match=f"data.root {file} is not a folder"):
        MNISTDataModule(root=str(file)).setup()


def test_unreadable_root(tmp_path: Path, monkeypatch) -> None:
    # Simulated: the tests may run as root, for whom chmod 000 denies nothing.
    monkeypatch.setattr(mnist.os, "access", lambda path, mode: False)
    with pytest.raises(ValueError, match=f"data.root {tmp_path} is not readable"):
        MNISTDataModule(root=str(tmp_path)).setup()


def test_augmentation_is_seeded_per_sample(tmp_path: Path, make_dataset) -> None:
    make_dataset(tmp_path)

    def first_epoch(seed: int) -> torch.Tensor:
        data = FashionMNISTDataModule(root=str(tmp_path), augment=True, batch_size=64, seed=seed)
        return next(iter(data.train_dataloader()))[0]

    plain = FashionMNISTDataModule(root=str(tmp_path), batch_size=64)
    plain_batch = next(iter(plain.train_dataloader()))[0]
    augmented = first_epoch(0)
    torch.manual_seed(1234)
    assert torch.equal(first_epoch(0), augmented)
    assert not torch.equal(augmented, plain_batch)
    assert augmented.shape == plain_batch.shape
    assert float(augmented.min()) >= 0.0 and float(augmented.max()) <= 1.0
    assert not torch.equal(first_epoch(1), augmented)


@pytest.mark.parametrize("module", [MNISTDataModule, FashionMNISTDataModule])
def test_normalize_standardises_with_the_dataset_statistics(
    tmp_path: Path, make_dataset, module
) -> None:
    arrays = make_dataset(tmp_path)
    data = _setup(module(root=str(tmp_path), normalize=True))
    pixels = arrays["t10k-images-idx3-ubyte"].astype(np.float32)[:, None] / 255.0
    expected = (pixels - module.pixel_mean) / module.pixel_std
    np.testing.assert_allclose(data.test_set.tensors[0].numpy(), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not DEBIAN_FOLDER.is_dir(), reason="Debian's dataset-fashion-mnist missing")
def test_fashion_mnist_statistics_are_those_of_its_training_images(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SPIKEEXP_DATA", str(tmp_path))
    data = _setup(FashionMNISTDataModule(val_fraction=0.0001))
    train_x = data.train_set.tensors[0]
    all_x = torch.cat([train_x, data.val_set.tensors[0]])
    assert float(all_x.mean()) == pytest.approx(FashionMNISTDataModule.pixel_mean, abs=1e-4)
    assert float(all_x.std()) == pytest.approx(FashionMNISTDataModule.pixel_std, abs=1e-4)


def test_download_is_skipped_when_files_exist(tmp_path: Path, make_dataset, monkeypatch) -> None:
    """``download=True`` cannot be exercised offline; with the files present it must not try."""
    make_dataset(tmp_path)
    monkeypatch.setattr("torchvision.datasets.MNIST", None)
    data = MNISTDataModule(root=str(tmp_path), download=True)
    data.prepare_data()
    assert len(_setup(data).test_set) == 20


@pytest.mark.skipif(not DEBIAN_FOLDER.is_dir(), reason="Debian's dataset-fashion-mnist missing")
def test_real_fashion_mnist_found_by_itself(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPIKEEXP_DATA", str(tmp_path))
    start = time.perf_counter()
    data = _setup(FashionMNISTDataModule())
    seconds = time.perf_counter() - start
    train_x, train_y = data.train_set.tensors
    val_x, _ = data.val_set.tensors
    test_x, test_y = data.test_set.tensors
    assert len(train_x) + len(val_x) == 60000 and len(val_x) == 6000 and len(test_x) == 10000
    assert test_y.bincount().tolist() == [1000] * 10
    assert int(train_y.min()) == 0 and int(train_y.max()) == 9
    assert float(test_x.min()) == 0.0 and float(test_x.max()) == 1.0
    assert os.access(DEBIAN_FOLDER, os.R_OK) and not list(tmp_path.iterdir())  # nothing written
    print(f"Fashion-MNIST loaded in {seconds:.2f} s")
