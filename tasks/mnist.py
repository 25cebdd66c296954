"""MNIST and Fashion-MNIST from IDX files (gzipped or not), read with :mod:`spikeexp.tasks.idx`.

Where the four files (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each optionally ``.gz``) are looked for,
in this order:

1. ``<root>`` itself (flat layout, e.g. Debian's ``/usr/share/datasets/fashion-mnist``), then
2. ``<root>/MNIST/raw`` or ``<root>/FashionMNIST/raw`` (torchvision's layout),

with ``root`` = ``data.root``, else ``$SPIKEEXP_DATA``, else ``./data``. When ``data.root`` is not
given, Fashion-MNIST also looks in ``/usr/share/datasets/fashion-mnist`` (Debian package
``dataset-fashion-mnist``). Files are only read, never copied or written. ``download=True`` fetches
missing files with torchvision's downloader into ``<root>/<Name>/raw`` (needs internet).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import torch
from torchvision.transforms import v2

from spikeexp.tasks.idx import read_idx
from spikeexp.tasks.tensor_data import TensorDataModule

DATA_ENV = "SPIKEEXP_DATA"
DEFAULT_ROOT = Path("data")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
PIXEL_MAX = 255.0


def default_root() -> Path:
    """``$SPIKEEXP_DATA`` if set and non-empty, else ``./data``."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_ROOT)


def find_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or ``folder/name.gz``, whichever exists (uncompressed first)."""
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def check_root_readable(root: Path) -> None:
    """A ``root`` that exists must be a readable, searchable folder (``ValueError`` otherwise)."""
    if not root.exists():
        return
    if not root.is_dir():
        raise ValueError(f"data.root {root} is not a folder")
    if not os.access(root, os.R_OK | os.X_OK):
        raise ValueError(f"data.root {root} is not readable (permission denied)")


class IDXDataModule(TensorDataModule):
    """A 28x28 grey-scale, 10-class IDX dataset; batches ``(x [B, 1, 28, 28], y [B])``, with ``x``
    in [0, 1] or, with ``normalize``, standardised.

    The official training set is split into training and validation (seeded ``val_fraction``);
    the official test set is the test set.

    Args:
        root: data folder (see the module docstring); ``None``: ``$SPIKEEXP_DATA`` or ``./data``.
        download: fetch missing files with torchvision (internet needed).
        augment: random training-set augmentation (:meth:`augmentation`), seeded per sample by
            ``(seed, epoch, index)`` so runs and resumed runs see the same images.
        normalize: standardise every image with the training set's pixel mean and standard
            deviation (:attr:`pixel_mean`, :attr:`pixel_std`): ``x = (p / 255 - mean) / std``,
            as the usual ``torchvision.transforms.Normalize`` recipes (and Norse's examples) do.
        batch_size, num_workers, val_fraction, seed: see
            :class:`~spikeexp.tasks.tensor_data.TensorDataModule`.
    """

    input_shape = (1, 28, 28)
    num_classes = 10
    title: ClassVar[str]
    torchvision_name: ClassVar[str]
    pixel_mean: ClassVar[float]
    pixel_std: ClassVar[float]
    system_folders: ClassVar[tuple[Path, ...]] = ()
    install_hint: ClassVar[str] = ""

    def __init__(
        self,
        root: str | None = None,
        download: bool = False,
        augment: bool = False,
        normalize: bool = False,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, val_fraction, seed)
        self.root_given = root is not None and str(root) != ""
        self.root = Path(root).expanduser() if self.root_given else default_root()
        self.download = bool(download)
        self.augment = bool(augment)
        self.normalize = bool(normalize)

    def search_folders(self) -> list[Path]:
        """Folders searched for the IDX files, in order."""
        folders = [self.root, self.root / self.torchvision_name / "raw"]
        if not self.root_given:
            folders.extend(self.system_folders)
        return folders

    def find_files(self) -> dict[str, Path] | None:
        """The four IDX files from the first folder holding all of them, or ``None``."""
        check_root_readable(self.root)
        for folder in self.search_folders():
            found = {key: find_file(folder, name) for key, name in IDX_FILES.items()}
            if all(found.values()):
                return found  # type: ignore[return-value]
        return None

    def prepare_data(self) -> None:
        """Download the files with torchvision when ``download`` is set and they are missing."""
        if not self.download or self.find_files() is not None:
            return
        from torchvision import datasets

        getattr(datasets, self.torchvision_name)(root=str(self.root), train=True, download=True)

    def missing_data_message(self) -> str:
        folders = ", ".join(str(folder) for folder in self.search_folders())
        names = ", ".join(f"{name}[.gz]" for name in IDX_FILES.values())
        hints = [
            "data.download=true (needs internet)",
            "data.root=<folder holding the files> (or set $SPIKEEXP_DATA)",
        ]
        if self.install_hint:
            hints.append(self.install_hint)
        return (
            f"{self.title} files not found: looked in {folders} for {names}; "
            f"provide them with {', or '.join(hints)}"
        )

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        self.prepare_data()
        files = self.find_files()
        if files is None:
            raise ValueError(self.missing_data_message())
        train_x, train_y = self.read_pair(files["train_images"], files["train_labels"])
        test_x, test_y = self.read_pair(files["test_images"], files["test_labels"])
        if self.normalize:
            train_x = (train_x - self.pixel_mean) / self.pixel_std
            test_x = (test_x - self.pixel_mean) / self.pixel_std
        return train_x, train_y, test_x, test_y

    def read_pair(self, images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """Images ``[N, 1, 28, 28]`` float32 in [0, 1] and labels ``[N]`` int64, checked."""
        images = read_idx(images_path)
        labels = read_idx(labels_path)
        height, width = self.input_shape[1:]
        if images.dtype != torch.uint8 or images.dim() != 3 or images.shape[1:] != (height, width):
            raise ValueError(
                f"IDX file {images_path} must hold uint8 images [N, {height}, {width}] "
                f"(got {images.dtype} {tuple(images.shape)})"
            )
        if labels.dtype != torch.uint8 or labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(
                f"IDX file {labels_path} must hold {len(images)} uint8 labels, one per image in "
                f"{images_path.name} (got {labels.dtype} {tuple(labels.shape)})"
            )
        if len(labels) and int(labels.max()) >= self.num_classes:
            raise ValueError(
                f"IDX file {labels_path} has label {int(labels.max())} "
                f"(valid: 0..{self.num_classes - 1})"
            )
        return images.unsqueeze(1).float() / PIXEL_MAX, labels.long()

    def augmentation(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Random crop of 28x28 from the image padded by 2 pixels."""
        return v2.RandomCrop(self.input_shape[1:], padding=2)

    def train_transform(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        return self.augmentation() if self.augment else None


class MNISTDataModule(IDXDataModule):
    """Handwritten digits (LeCun et al.), 60,000 training and 10,000 test images of 28x28."""

    title = "MNIST"
    torchvision_name = "MNIST"
    pixel_mean = 0.1307  # of the 60,000 training images, pixels in [0, 1]
    pixel_std = 0.3081


class FashionMNISTDataModule(IDXDataModule):
    """Zalando's Fashion-MNIST (Xiao et al. 2017): 10 clothing classes, same format as MNIST.

    Without ``root`` it also finds Debian's ``dataset-fashion-mnist`` package by itself.
    """

    title = "Fashion-MNIST"
    torchvision_name = "FashionMNIST"
    pixel_mean = 0.2860  # of the 60,000 training images, pixels in [0, 1]
    pixel_std = 0.3530
    system_folders = (Path("/usr/share/datasets/fashion-mnist"),)
    install_hint = "apt-get install dataset-fashion-mnist"

    def augmentation(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """Random crop (padding 2) and horizontal flip (clothes are left-right symmetric)."""
        return v2.Compose(
            [v2.RandomCrop(self.input_shape[1:], padding=2), v2.RandomHorizontalFlip()]
        )
