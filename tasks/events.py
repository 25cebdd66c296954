r"""Event data (spike trains of neuromorphic sensors) binned to a time grid on the fly.

An event recording is a list of ``(time, channel)`` pairs. :func:`bin_events` counts the events
of each channel in bins of width :math:`w` starting at time 0: bin :math:`k` holds the events with
:math:`k w \le t < (k + 1) w`, for :math:`k = 0 .. T-1`; later events (and negative times) are
dropped. With ``binary`` the counts are clipped to 1 (a spike or none per bin).

:class:`EventDataModule` keeps the recordings as they are in memory (or as file paths) and bins
one sample each time the loader asks for it, so any bin width can be chosen per run without a
converted copy of the data set. Batches are ``(x [batch, T, *sample_shape] float32, y [batch]
int64)``, batch-first like every task; ``encoder=none`` hands the network the time-first view.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import Dataset

from spikeexp.tasks.tensor_data import TensorDataModule, seeded_split


def num_bins(duration: float, bin_width: float) -> int:
    """Bins of width ``bin_width`` covering ``[0, duration)`` (the last one may reach past it)."""
    return max(1, math.ceil(round(duration / bin_width, 9)))


def bin_events(
    times: np.ndarray,
    channels: np.ndarray,
    bin_width: float,
    bins: int,
    num_channels: int,
    binary: bool = False,
) -> torch.Tensor:
    r"""Event counts ``[bins, num_channels]`` float32 (module docstring).

    Args:
        times: event times, in the unit of ``bin_width`` (integers are binned exactly with
            integer division; floats with :math:`\lfloor t / w \rfloor`).
        channels: channel index of each event, in ``0 .. num_channels - 1``.
        bin_width: bin width :math:`w` (> 0).
        bins: number of bins ``T``.
        num_channels: number of channels.
        binary: clip counts to 1.
    """
    if np.issubdtype(times.dtype, np.integer) and float(bin_width).is_integer():
        index = times.astype(np.int64) // int(bin_width)
    else:
        index = np.floor(times.astype(np.float64) / bin_width).astype(np.int64)
    keep = (index >= 0) & (index < bins)
    flat = index[keep] * num_channels + channels[keep].astype(np.int64)
    counts = np.bincount(flat, minlength=bins * num_channels).reshape(bins, num_channels)
    if binary:
        counts = np.minimum(counts, 1)
    return torch.from_numpy(counts.astype(np.float32))


class EventDataModule(TensorDataModule):
    """Base of the event tasks: recordings binned per sample, seeded splits and order.

    Subclasses set :attr:`sample_shape` (per-bin shape, e.g. ``(700,)`` or ``(2, 34, 34)``),
    :attr:`num_classes` and :attr:`time_unit` (seconds per unit of the recorded times) and
    implement :meth:`read` (load the index of recordings, per split) and :meth:`events`.

    Args:
        bin_width: bin width (s), usually the run's ``dt`` (one bin per step).
        duration: length of the binned window from time 0 (s); later events are dropped.
        binary: clip counts per bin to 1.
        batch_size, num_workers, val_fraction, seed: see
            :class:`~spikeexp.tasks.tensor_data.TensorDataModule`.
    """

    sample_shape: tuple[int, ...]
    time_unit: float = 1.0

    def __init__(
        self,
        bin_width: float = 1e-3,
        duration: float = 1.0,
        binary: bool = False,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        seed: int = 0,
    ) -> None:
        super().__init__(batch_size, num_workers, val_fraction, seed)
        for name, value in (("bin_width", bin_width), ("duration", duration)):
            valid = isinstance(value, int | float) and not isinstance(value, bool)
            if not valid or not math.isfinite(value) or value <= 0:
                raise ValueError(
                    f"data.{name} must be a positive number of seconds (got {value!r})"
                )
        if bin_width > duration:
            raise ValueError(
                f"data.bin_width must be <= data.duration (got {bin_width} s > {duration} s)"
            )
        if not isinstance(binary, bool):
            raise ValueError(f"data.binary must be true or false (got {binary!r})")
        self.bin_width = float(bin_width)
        self.duration = float(duration)
        self.binary = binary

    @property
    def bins(self) -> int:
        """Time steps ``T`` per sample."""
        return num_bins(self.duration, self.bin_width)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample ``(T, *sample_shape)``."""
        return (self.bins, *self.sample_shape)

    @property
    def sequence_steps(self) -> int:
        """The samples are binned event sequences of ``T`` steps: ``encoder=none``."""
        return self.bins

    def read(self) -> dict[str, np.ndarray]:
        """Load the recordings; return the labels of each split (``train``, ``test``, optionally
        ``val``) as arrays indexed like :meth:`events`' ``(split, index)``."""
        raise NotImplementedError

    def events(self, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times in time_unit, flat channel indices)`` of recording ``index`` of ``split``."""
        raise NotImplementedError

    def bin_width_in_units(self) -> float:
        """The bin width in the unit of the recorded times (exact for integer units)."""
        width = self.bin_width / self.time_unit
        return float(round(width)) if abs(width - round(width)) < 1e-9 else width

    def binned(self, split: str, index: int) -> torch.Tensor:
        """Recording ``index`` of ``split`` binned to ``[T, *sample_shape]``."""
        times, channels = self.events(split, index)
        counts = bin_events(
            times,
            channels,
            self.bin_width_in_units(),
            self.bins,
            math.prod(self.sample_shape),
            self.binary,
        )
        return counts.view(self.bins, *self.sample_shape)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        labels = self.read()
        self.train_set, self.val_set, self.test_set = self._splits(labels)

    def _splits(self, labels: dict[str, np.ndarray]) -> tuple[Dataset, Dataset, Dataset]:
        train_labels = labels["train"]
        if "val" in labels:
            kept, held = np.arange(len(train_labels)), None
        else:
            kept_t, held_t = seeded_split(len(train_labels), self.val_fraction, self.seed, salt=0)
            kept, held = kept_t.numpy(), held_t.numpy()
        train = SplitEvents(self, "train", kept, train_labels[kept])
        if held is None:
            val_labels = labels["val"]
            val = SplitEvents(self, "val", np.arange(len(val_labels)), val_labels)
        else:
            val = SplitEvents(self, "train", held, train_labels[held])
        test_labels = labels["test"]
        test = SplitEvents(self, "test", np.arange(len(test_labels)), test_labels)
        return train, val, test


class SplitEvents(Dataset):
    """The recordings ``indices`` of split ``split`` of an :class:`EventDataModule`, binned."""

    def __init__(
        self, owner: EventDataModule, split: str, indices: np.ndarray, labels: np.ndarray
    ) -> None:
        self.owner = owner
        self.split = split
        self.indices = indices
        self.labels = labels

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.owner.binned(self.split, int(self.indices[position]))
        return x, torch.tensor(int(self.labels[position]), dtype=torch.int64)
