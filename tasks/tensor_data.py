"""In-memory image classification data: seeded splits and a resumable, seeded training order.

The datasets of this project are small (at most 70,000 images of 28x28 pixels), so each data module
loads its whole dataset once as tensors (``x`` float32 in [0, 1], ``y`` int64) and the loaders only
index into them; ``num_workers=0`` is the sensible default.

Data order is reproducible and resumable: the training order of epoch ``e`` is a pure function of
``(seed, e)`` (:class:`EpochShuffleSampler`), never of the global RNG. Lightning calls the sampler's
``set_epoch`` at the start of every training epoch and saves/restores the loader's
``state_dict`` (:class:`ResumableDataLoader`) in its checkpoints, so a run resumed in the middle of
an epoch continues with the very next batch of the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset, default_collate


def derived_seed(*keys: int) -> int:
    """A 63-bit seed mixing the non-negative integers ``keys`` (NumPy's ``SeedSequence``)."""
    state = np.random.SeedSequence(list(keys)).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def check_loader_kwargs(batch_size: int, num_workers: int, val_fraction: float, seed: int) -> None:
    """The keyword arguments shared by every data module; one-line ``ValueError`` otherwise."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"data.batch_size must be an integer >= 1 (got {batch_size!r})")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
        raise ValueError(f"data.num_workers must be an integer >= 0 (got {num_workers!r})")
    if not isinstance(val_fraction, int | float) or not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"data.val_fraction must be in (0, 1) exclusive (got {val_fraction!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"data.seed must be an integer >= 0 (got {seed!r})")


def seeded_split(size: int, fraction: float, seed: int, salt: int) -> tuple[torch.Tensor, ...]:
    """Split ``range(size)`` into ``(kept, held_out)`` index tensors; ``held_out`` has
    ``round(fraction * size)`` elements (at least 1 and at most ``size - 1``)."""
    generator = torch.Generator().manual_seed(derived_seed(seed, salt))
    order = torch.randperm(size, generator=generator)
    held = min(max(round(fraction * size), 1), size - 1)
    return order[held:].sort().values, order[:held].sort().values


class SampleKey(NamedTuple):
    """What the training sampler yields when the dataset needs the epoch (seeded augmentation)."""

    epoch: int
    index: int


class EpochShuffleSampler(Sampler):
    """A random permutation of ``range(size)`` per epoch, a pure function of ``(seed, epoch)``.

    Lightning calls :meth:`set_epoch` at the start of every training epoch. After
    :meth:`load_state_dict` with ``{"epoch": e, "consumed": k}`` the next iteration of epoch ``e``
    skips its first ``k`` indices (a resumed run continues where it stopped).

    Args:
        size: number of samples.
        seed: base seed (>= 0).
        with_epoch: yield :class:`SampleKey` ``(epoch, index)`` instead of plain indices.
    """

    def __init__(self, size: int, seed: int, with_epoch: bool = False) -> None:
        self.size = size
        self.seed = seed
        self.with_epoch = with_epoch
        self.epoch = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the order of ``epoch``; a pending resume offset survives only the same epoch."""
        if epoch != self.epoch:
            self._skip = 0
        self.epoch = epoch

    def order(self, epoch: int) -> torch.Tensor:
        """The full order of ``epoch`` (a permutation of ``range(size)``)."""
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch))
        return torch.randperm(self.size, generator=generator)

    def __iter__(self) -> Iterator[Any]:
        skip, self._skip = self._skip, 0
        epoch = self.epoch
        for index in self.order(epoch)[skip:].tolist():
            yield SampleKey(epoch, index) if self.with_epoch else index

    def __len__(self) -> int:
        return self.size

    def resume(self, epoch: int, consumed: int) -> None:
        """Continue ``epoch`` after its first ``consumed`` samples at the next iteration."""
        self.epoch = epoch
        self._skip = consumed


class ResumableDataLoader(DataLoader):
    """A :class:`~torch.utils.data.DataLoader` whose position Lightning saves in checkpoints.

    ``state_dict()`` holds the epoch of its :class:`EpochShuffleSampler` and how many samples of it
    the consumer has taken; Lightning (2.x) stores it with the fit loop and hands it back through
    :meth:`load_state_dict` before it iterates again when a run resumes. (Lightning does not fetch
    ahead from loaders with a length, so batches yielded are batches trained on.) With a sampler of
    another kind (Lightning substitutes a distributed one under DDP) there is no state to save.
    """

    def __iter__(self) -> Iterator[Any]:
        self._batches_yielded = 0
        for batch in super().__iter__():
            self._batches_yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        if not isinstance(self.sampler, EpochShuffleSampler):
            return {}
        consumed = getattr(self, "_batches_yielded", 0) * (self.batch_size or 1)
        return {"epoch": self.sampler.epoch, "consumed": min(consumed, self.sampler.size)}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if not state_dict or not isinstance(self.sampler, EpochShuffleSampler):
            return
        epoch, consumed = int(state_dict["epoch"]), int(state_dict["consumed"])
        if consumed >= self.sampler.size:
            epoch, consumed = epoch + 1, 0
        self.sampler.resume(epoch, consumed)


class SeededTransformDataset(Dataset):
    """Images and labels with a random transform seeded by ``(seed, epoch, index)``.

    Each sample's augmentation is a pure function of the run seed, the epoch and the sample index
    (independent of workers, batch order and the global RNG), so resumed runs see identical data.
    Keys are :class:`SampleKey` from an :class:`EpochShuffleSampler` with ``with_epoch=True``.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor],
        seed: int,
    ) -> None:
        self.x = x
        self.y = y
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key: SampleKey) -> tuple[torch.Tensor, torch.Tensor]:
        epoch, index = key
        # Seed only the CPU generator the transforms draw from (torch.manual_seed would also touch
        # accelerators and costs ~100 us per call), and give the caller its RNG state back.
        outer_state = torch.get_rng_state()
        try:
            torch.default_generator.manual_seed(derived_seed(self.seed, 1, epoch, index))
            image = self.transform(self.x[index])
        finally:
            torch.set_rng_state(outer_state)
        return image, self.y[index]


class TensorDataModule(LightningDataModule):
    """Base of the image data modules: whole dataset as tensors, seeded splits and order.

    Subclasses set :attr:`input_shape` and implement :meth:`load` returning
    ``(train_x, train_y, test_x, test_y)`` with ``x`` float32 in [0, 1] shaped
    ``[N, *input_shape]`` and ``y`` int64 class indices. Validation samples are a seeded
    ``val_fraction`` of the training set.

    Args:
        batch_size: samples per batch (>= 1).
        num_workers: loader worker processes (>= 0; 0 loads in the main process).
        val_fraction: fraction of the training set held out for validation, in (0, 1).
        seed: seed of the split, of the training order and of augmentation (>= 0).
    """

    input_shape: tuple[int, ...]
    num_classes: int = 10

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        check_loader_kwargs(batch_size, num_workers, val_fraction, seed)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_fraction = float(val_fraction)
        self.seed = seed
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def load(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(train_x, train_y, test_x, test_y)``; see the class docstring."""
        raise NotImplementedError

    def train_transform(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        """Per-sample augmentation of training images, or ``None`` (the default)."""
        return None

    def collate(self, batch: list[Any]) -> Any:
        """Turn a list of samples into a batch (default: stack them); subclasses may encode the
        whole batch here at once (e.g. threshold crossings of sequential images)."""
        return default_collate(batch)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        train_x, train_y, test_x, test_y = self.load()
        kept, held = seeded_split(len(train_x), self.val_fraction, self.seed, salt=0)
        transform = self.train_transform()
        if transform is None:
            self.train_set = TensorDataset(train_x[kept], train_y[kept])
        else:
            self.train_set = SeededTransformDataset(
                train_x[kept], train_y[kept], transform, self.seed
            )
        self.val_set = TensorDataset(train_x[held], train_y[held])
        self.test_set = TensorDataset(test_x, test_y)

    def train_dataloader(self) -> ResumableDataLoader:
        self.setup()
        sampler = EpochShuffleSampler(
            len(self.train_set),
            self.seed,
            with_epoch=isinstance(self.train_set, SeededTransformDataset),
        )
        return ResumableDataLoader(
            self.train_set,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=self.collate,
        )

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(
            self.val_set,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collate,
        )

    def test_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(
            self.test_set,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collate,
        )

    def calibration_dataloader(self) -> DataLoader:
        """The training samples in their stored order, without augmentation (for tasks that
        calibrate on the training set, e.g. label assignment)."""
        self.setup()
        data = self.train_set
        if isinstance(data, SeededTransformDataset):
            data = TensorDataset(data.x, data.y)
        return DataLoader(
            data,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=self.collate,
        )
