"""scikit-learn's bundled 8x8 handwritten digits: 1,797 images, 10 classes, no download.

Pixel values 0..16 are scaled to [0, 1]. scikit-learn has no official test split, so a seeded
``test_fraction`` (default 20 %) of the images is held out as the test set; ``val_fraction`` of the
rest is the validation set. Both splits depend only on ``seed``. ``augment`` shifts each training
image by up to one pixel (random crop of the image padded by 1), seeded per sample.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from sklearn.datasets import load_digits
from torchvision.transforms import v2

from spikeexp.tasks.tensor_data import TensorDataModule, seeded_split

DIGITS_MAX_VALUE = 16.0


class DigitsDataModule(TensorDataModule):
    """The 8x8 digits as batches ``(x [B, 1, 8, 8] float32 in [0, 1], y [B] int64)``.

    Args:
        batch_size: samples per batch (>= 1).
        num_workers: loader worker processes (>= 0).
        val_fraction: fraction of the non-test images used for validation, in (0, 1).
        seed: seed of the test/validation splits and of the training order (>= 0).
        test_fraction: fraction of all images held out as the test set, in (0, 1).
        augment: shift training images by up to one pixel (random 8x8 crop of the image padded
            by 1 pixel), seeded by ``(seed, epoch, index)`` so resumed runs see the same images.
    """

    input_shape = (1, 8, 8)
    num_classes = 10

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
        test_fraction: float = 0.2,
        augment: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, val_fraction, seed)
        if not isinstance(test_fraction, int | float) or not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(
                f"data.test_fraction must be in (0, 1) exclusive (got {test_fraction!r})"
            )
        self.test_fraction = float(test_fraction)
        if not isinstance(augment, bool):
            raise ValueError(f"data.augment must be true or false (got {augment!r})")
        self.augment = augment

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        digits = load_digits()
        x = torch.as_tensor(digits.images, dtype=torch.float32).unsqueeze(1) / DIGITS_MAX_VALUE
        y = torch.as_tensor(digits.target, dtype=torch.int64)
        train, test = seeded_split(len(x), self.test_fraction, self.seed, salt=1)
        return x[train], y[train], x[test], y[test]

    def train_transform(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Random 8x8 crop of the image padded by one pixel, if ``augment``."""
        return v2.RandomCrop(self.input_shape[1:], padding=1) if self.augment else None
