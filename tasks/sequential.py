r"""Sequential image classification: an image read one pixel (or one row) per time step.

The classic long-memory benchmarks of recurrent spiking networks: sequential MNIST (784 steps,
one pixel each, Bellec et al. 2018; Yin et al. 2021), its permuted variant, and the same on the
8x8 digits (64 pixel steps or 8 row steps).

Sequence of an image :math:`x` of ``H x W`` pixels in [0, 1]:

* ``order: pixels``: :math:`T = HW` steps, one feature, pixel :math:`(i, j)` at step
  :math:`iW + j` (row-major, "pixel by pixel");
* ``order: rows``: :math:`T = H` steps of :math:`W` features ("row by row").

``permute: true`` shuffles the time steps with one fixed permutation drawn from
``permutation_seed`` (the same for every image and split, independent of ``seed``: the permuted
sequential MNIST benchmark).

Encoding of each step (``encoding``):

* ``raw``: the pixel values themselves, an analog input current (1 channel per feature);
* ``threshold``: up/down spikes at crossings of ``thresholds`` levels :math:`\theta_k = (k + 1) /
  (K + 1)` between consecutive steps
  (:func:`~spikeexp.functional.encode.threshold_crossing_encode`): :math:`2K` channels per
  feature; with ``K = 40`` the 80 input channels of Bellec et al. 2018.

Batches are ``(x [batch, T, channels] float32, y [batch] int64)``, batch-first like every task;
``encoder=none`` hands the network the time-first view. The threshold code is computed per batch
when the loader collates it (no dataset-sized spike tensor is kept).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import default_collate

from spikeexp.functional.encode import threshold_crossing_encode, uniform_thresholds
from spikeexp.tasks.digits import DigitsDataModule
from spikeexp.tasks.mnist import FashionMNISTDataModule, IDXDataModule, MNISTDataModule
from spikeexp.tasks.tensor_data import TensorDataModule, derived_seed

ORDERS = ("pixels", "rows")
ENCODINGS = ("raw", "threshold")
IMAGE_DATASETS: dict[str, type[IDXDataModule]] = {
    "mnist": MNISTDataModule,
    "fashion_mnist": FashionMNISTDataModule,
}
_PERMUTATION_SALT = 21


def image_sequence(images: torch.Tensor, order: str) -> torch.Tensor:
    """Images ``[N, 1, H, W]`` as sequences ``[N, T, features]`` (module docstring)."""
    if order not in ORDERS:
        raise ValueError(f"data.order must be one of {', '.join(ORDERS)} (got {order!r})")
    rows = images.flatten(1, 2)  # [N, H, W]
    return rows.flatten(1).unsqueeze(-1) if order == "pixels" else rows


def step_permutation(steps: int, seed: int) -> torch.Tensor:
    """The fixed permutation of ``steps`` time steps drawn from ``seed`` (>= 0)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, _PERMUTATION_SALT))
    return torch.randperm(steps, generator=generator)


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"data.{name} must be an integer >= {minimum} (got {value!r})")
    return value


class SequentialImageDataModule(TensorDataModule):
    """Base of the sequential image tasks (module docstring); subclasses implement
    :meth:`load_images` returning images ``[N, 1, H, W]`` in [0, 1] and labels.

    Args:
        order: ``pixels`` or ``rows``.
        encoding: ``raw`` or ``threshold``.
        thresholds: threshold levels ``K`` of the ``threshold`` encoding (>= 1).
        permute: shuffle the time steps with the permutation of ``permutation_seed``.
        permutation_seed: seed of that permutation (>= 0).
        batch_size, num_workers, val_fraction, seed: see
            :class:`~spikeexp.tasks.tensor_data.TensorDataModule`.
    """

    image_shape: tuple[int, int, int]

    def __init__(
        self,
        order: str = "pixels",
        encoding: str = "raw",
        thresholds: int = 40,
        permute: bool = False,
        permutation_seed: int = 0,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, val_fraction, seed)
        if order not in ORDERS:
            raise ValueError(f"data.order must be one of {', '.join(ORDERS)} (got {order!r})")
        if encoding not in ENCODINGS:
            raise ValueError(
                f"data.encoding must be one of {', '.join(ENCODINGS)} (got {encoding!r})"
            )
        if not isinstance(permute, bool):
            raise ValueError(f"data.permute must be true or false (got {permute!r})")
        self.order = order
        self.encoding = encoding
        self.thresholds = uniform_thresholds(_check_int("thresholds", thresholds, 1))
        self.permute = permute
        self.permutation_seed = _check_int("permutation_seed", permutation_seed, 0)
        steps = self.sequence_shape[0]
        self.permutation = step_permutation(steps, permutation_seed) if permute else None

    @property
    def sequence_shape(self) -> tuple[int, int]:
        """``(T, features)`` of the raw sequence."""
        _, height, width = self.image_shape
        return (height * width, 1) if self.order == "pixels" else (height, width)

    @property
    def sequence_steps(self) -> int:
        """The samples are sequences of ``T`` steps already: ``encoder=none``."""
        return self.sequence_shape[0]

    @property
    def input_shape(self) -> tuple[int, int]:
        """Per-sample ``(T, channels)`` of a batch's ``x`` (after encoding)."""
        steps, features = self.sequence_shape
        per_feature = 2 * len(self.thresholds) if self.encoding == "threshold" else 1
        return (steps, features * per_feature)

    def load_images(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(train_images, train_labels, test_images, test_labels)``, images ``[N, 1, H, W]``."""
        raise NotImplementedError

    def sequences(self, images: torch.Tensor) -> torch.Tensor:
        """Images as (permuted) raw sequences ``[N, T, features]``."""
        sequence = image_sequence(images, self.order)
        if self.permutation is not None:
            sequence = sequence[:, self.permutation]
        return sequence.contiguous()

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        train_x, train_y, test_x, test_y = self.load_images()
        return self.sequences(train_x), train_y, self.sequences(test_x), test_y

    def collate(self, batch: list[Any]) -> Any:
        x, y = default_collate(batch)
        if self.encoding == "threshold":
            x = threshold_crossing_encode(x, self.thresholds)
        return x, y


class SequentialDigitsDataModule(SequentialImageDataModule):
    """scikit-learn's 8x8 digits as sequences: 64 pixel steps or 8 row steps.

    Splits as :class:`~spikeexp.tasks.digits.DigitsDataModule` (seeded ``test_fraction``).

    The other keyword arguments are those of :class:`SequentialImageDataModule`.

    Args:
        test_fraction: fraction of all images held out as the test set, in (0, 1).
    """

    image_shape = DigitsDataModule.input_shape

    def __init__(self, *args: Any, test_fraction: float = 0.2, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.images = DigitsDataModule(
            batch_size=self.batch_size, seed=self.seed, test_fraction=test_fraction
        )

    def load_images(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.images.load()


class SequentialMNISTDataModule(SequentialImageDataModule):
    """MNIST or Fashion-MNIST (``dataset``) as sequences: 784 pixel steps or 28 row steps.

    The IDX files are found as for ``task=mnist`` / ``task=fashion_mnist``
    (:mod:`spikeexp.tasks.mnist`: ``root``, ``$SPIKEEXP_DATA``, ``./data``, Debian's Fashion-MNIST
    package).

    The other keyword arguments are those of :class:`SequentialImageDataModule`.

    Args:
        dataset: ``mnist`` or ``fashion_mnist``.
        root: folder with the IDX files (``None``: the default places).
    """

    image_shape = MNISTDataModule.input_shape

    def __init__(
        self, *args: Any, dataset: str = "mnist", root: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if dataset not in IMAGE_DATASETS:
            raise ValueError(
                f"data.dataset must be one of {', '.join(IMAGE_DATASETS)} (got {dataset!r})"
            )
        self.dataset = dataset
        self.images = IMAGE_DATASETS[dataset](root=root, batch_size=self.batch_size, seed=self.seed)

    def load_images(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.images.load()
