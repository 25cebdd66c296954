r"""Store-recall working memory task (Bellec et al. 2018, "Long short-term memory and
learning-to-learn in networks of spiking neurons", NeurIPS).

Input: 4 populations of ``population_size`` Poisson channels, in this order: value "0",
value "1", STORE, RECALL (20 channels by default). A sequence is ``periods`` periods of
``period_steps`` steps of ``dt`` seconds (12 x 200 x 1 ms by default). In every period one random
bit is shown: the population of that value fires at ``value_rate_hz`` (100 Hz), the other is
silent. Exactly one STORE period, uniform in ``store_range`` (periods 0-5), and one RECALL period,
uniform in ``recall_range`` (periods 6-11); the command populations fire at ``command_rate_hz``
(50 Hz) during their period and are silent otherwise; both value populations are silent during
RECALL. Target: at RECALL, the bit shown in the STORE period. A channel with rate :math:`f` (Hz)
spikes at each step independently with probability :math:`f\,\Delta t`.

Long test variant (``long_test_blocks`` = 2 by default): the sequence is ``blocks`` repetitions of
the 12-period block (4,800 steps), values drawn in every period; the STORE period is drawn in the
first block's ``store_range`` and the RECALL period in the last block's ``recall_range`` (periods
18-23), so every delay (13-23 periods, 2.6-4.6 s) is longer than any delay seen in training
(1-11 periods). One store-recall pair per sequence in both variants.

Data are generated on the fly, one whole batch at a time, as a pure function of a seed:
training batch ``i`` of epoch ``e`` from ``(seed, e, i)`` (new data every epoch; the loader's
position is saved in checkpoints, so a resumed run, even in the middle of an epoch, sees exactly
the batches it would have seen), validation batches from ``val_seed``,
test batches from ``test_seed`` (fixed, independent of the training seed, so runs with different
seeds are tested on the same sequences).

Readout and loss (:class:`MemoryTask`): the LI readout voltages :math:`v_t \in \mathbb{R}^2` are
averaged over the RECALL period :math:`R` to logits :math:`y = \frac{1}{|R|} \sum_{t \in R} v_t`;
the loss is the cross-entropy of these logits with the stored bit, the accuracy the fraction of
RECALL periods whose bit is right (``<stage>/acc``; ``test/acc_long`` on the long variant).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset
from torchmetrics.classification import BinaryAccuracy

from spikeexp.tasks.base import Task, TaskOutput
from spikeexp.tasks.tensor_data import (
    EpochShuffleSampler,
    ResumableDataLoader,
    SampleKey,
    derived_seed,
)

POPULATIONS = ("value0", "value1", "store", "recall")
STAGES = ("train", "val", "test")
_TRAIN_SALT, _VAL_SALT, _TEST_SALT, _LONG_SALT = 11, 12, 13, 14


class MemoryBatch(NamedTuple):
    """One batch of store-recall sequences.

    Attributes:
        spikes: input spikes ``[batch, T, 4 * population_size]`` float32 (0/1). Batch-first like
            every task's batches (generic code slices samples on dim 0); ``encoder=none``
            (:class:`~spikeexp.module.encode.PreEncoded`) hands the network the time-first view.
        labels: the stored bit ``[batch]`` int64.
        recall_mask: ``[batch, T]`` bool, true during the RECALL period.
        store_mask: ``[batch, T]`` bool, true during the STORE period (for plots).
        long: whether the batch is the long test variant (its accuracy is logged as
            ``acc_long``).
    """

    spikes: torch.Tensor
    labels: torch.Tensor
    recall_mask: torch.Tensor
    store_mask: torch.Tensor
    long: bool = False


@dataclass(frozen=True)
class StoreRecall:
    """The task's parameters (see the module docstring); checked at construction.

    Attributes:
        periods: periods per block (>= 2).
        period_steps: steps per period (>= 1).
        population_size: channels per population (>= 1).
        value_rate_hz: rate of the active value population (Hz).
        command_rate_hz: rate of the STORE/RECALL populations in their period (Hz).
        dt: step length (s); every rate times ``dt`` must be <= 1.
        store_range: first and last period (inclusive) where STORE may fall.
        recall_range: first and last period (inclusive) where RECALL may fall; after
            ``store_range``.
    """

    periods: int = 12
    period_steps: int = 200
    population_size: int = 5
    value_rate_hz: float = 100.0
    command_rate_hz: float = 50.0
    dt: float = 1e-3
    store_range: tuple[int, int] = (0, 5)
    recall_range: tuple[int, int] = (6, 11)

    def __post_init__(self) -> None:
        for name in ("periods", "period_steps", "population_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{name} must be an integer >= 1 (got {value!r})")
        if self.dt <= 0:
            raise ValueError(f"data.dt must be > 0 seconds (got {self.dt})")
        for name in ("value_rate_hz", "command_rate_hz"):
            rate = getattr(self, name)
            if not 0 <= rate * self.dt <= 1:
                raise ValueError(
                    f"data.{name} must be in [0, 1/dt] = [0, {1 / self.dt:g}] Hz (got {rate})"
                )
        store, recall = tuple(self.store_range), tuple(self.recall_range)
        for name, (low, high) in (("store_range", store), ("recall_range", recall)):
            if not 0 <= low <= high < self.periods:
                raise ValueError(
                    f"data.{name} must be [first, last] periods with 0 <= first <= last < "
                    f"periods={self.periods} (got {[low, high]})"
                )
        if store[1] >= recall[0]:
            raise ValueError(
                f"data.store_range must end before data.recall_range starts "
                f"(got store_range={list(store)}, recall_range={list(recall)})"
            )

    @property
    def channels(self) -> int:
        """Input channels: 4 populations of ``population_size``."""
        return len(POPULATIONS) * self.population_size

    def steps(self, blocks: int = 1) -> int:
        """Sequence length (steps) of ``blocks`` blocks."""
        return blocks * self.periods * self.period_steps

    def sample(self, batch_size: int, generator: torch.Generator, blocks: int = 1) -> MemoryBatch:
        """A batch of ``batch_size`` sequences of ``blocks`` blocks drawn from ``generator``."""
        total = blocks * self.periods
        bits = torch.randint(0, 2, (total, batch_size), generator=generator)
        store = torch.randint(
            self.store_range[0], self.store_range[1] + 1, (batch_size,), generator=generator
        )
        last_block = (blocks - 1) * self.periods
        recall = last_block + torch.randint(
            self.recall_range[0], self.recall_range[1] + 1, (batch_size,), generator=generator
        )
        period = torch.arange(total).unsqueeze(1)  # [periods, 1]
        is_store, is_recall = period == store, period == recall  # [periods, batch]
        showing = ~is_recall
        rates = torch.stack(
            [
                (showing & (bits == 0)) * self.value_rate_hz,
                (showing & (bits == 1)) * self.value_rate_hz,
                is_store * self.command_rate_hz,
                is_recall * self.command_rate_hz,
            ],
            dim=-1,
        ).float()  # [periods, batch, 4]
        probability = rates.mul_(self.dt).repeat_interleave(self.population_size, dim=-1)
        probability = probability.transpose(0, 1).unsqueeze(2)  # [batch, periods, 1, channels]
        uniform = torch.rand(
            batch_size, total, self.period_steps, self.channels, generator=generator
        )
        spikes = (uniform < probability).float().flatten(1, 2)
        recall_mask = is_recall.t().repeat_interleave(self.period_steps, dim=1)
        store_mask = is_store.t().repeat_interleave(self.period_steps, dim=1)
        labels = bits.gather(0, store.unsqueeze(0)).squeeze(0)
        return MemoryBatch(spikes, labels, recall_mask, store_mask, blocks > 1)


class MemoryBatches(Dataset):
    """``num_batches`` whole batches, each a pure function of ``(seed, epoch, index)``.

    Items are looked up by index (epoch 0) or by :class:`SampleKey` ``(epoch, index)``.
    """

    def __init__(
        self, task: StoreRecall, num_batches: int, batch_size: int, seed: int, blocks: int = 1
    ) -> None:
        self.task = task
        self.num_batches = num_batches
        self.batch_size = batch_size
        self.seed = seed
        self.blocks = blocks

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, key: int | SampleKey) -> MemoryBatch:
        epoch, index = (key.epoch, key.index) if isinstance(key, SampleKey) else (0, key)
        generator = torch.Generator().manual_seed(derived_seed(self.seed, epoch, index))
        return self.task.sample(self.batch_size, generator, self.blocks)


def _batch_count(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"data.{name} must be an integer >= {minimum} (got {value!r})")
    return value


class MemoryDataModule(LightningDataModule):
    """Store-recall batches :class:`MemoryBatch` generated on the fly (module docstring).

    Args:
        batch_size: sequences per batch.
        train_batches: training batches per epoch (new sequences every epoch).
        val_batches: validation batches (fixed by ``val_seed``).
        test_batches: test batches (fixed by ``test_seed``).
        long_test_batches: batches of the long test variant (0 disables it).
        long_test_blocks: blocks per long test sequence (>= 2).
        seed: seed of the training data.
        val_seed, test_seed: seeds of the validation and test data.
        num_workers: loader worker processes.
        periods, period_steps, population_size, value_rate_hz, command_rate_hz, dt, store_range,
            recall_range: the task (:class:`StoreRecall`).
    """

    num_classes = 2

    def __init__(
        self,
        batch_size: int = 128,
        train_batches: int = 20,
        val_batches: int = 4,
        test_batches: int = 8,
        long_test_batches: int = 4,
        long_test_blocks: int = 2,
        seed: int = 0,
        val_seed: int = 1,
        test_seed: int = 2,
        num_workers: int = 0,
        periods: int = 12,
        period_steps: int = 200,
        population_size: int = 5,
        value_rate_hz: float = 100.0,
        command_rate_hz: float = 50.0,
        dt: float = 1e-3,
        store_range: Sequence[int] = (0, 5),
        recall_range: Sequence[int] = (6, 11),
    ) -> None:
        super().__init__()
        self.batch_size = _batch_count("batch_size", batch_size)
        self.train_batches = _batch_count("train_batches", train_batches)
        self.val_batches = _batch_count("val_batches", val_batches)
        self.test_batches = _batch_count("test_batches", test_batches)
        self.long_test_batches = _batch_count("long_test_batches", long_test_batches, 0)
        self.long_test_blocks = _batch_count("long_test_blocks", long_test_blocks, 2)
        for name, value in (("seed", seed), ("val_seed", val_seed), ("test_seed", test_seed)):
            _batch_count(name, value, 0)
        self.num_workers = _batch_count("num_workers", num_workers, 0)
        self.seed, self.val_seed, self.test_seed = seed, val_seed, test_seed
        for name, value in (("store_range", store_range), ("recall_range", recall_range)):
            if len(value) != 2:
                raise ValueError(f"data.{name} must be [first, last] (got {list(value)})")
        self.task = StoreRecall(
            periods=periods,
            period_steps=period_steps,
            population_size=population_size,
            value_rate_hz=float(value_rate_hz),
            command_rate_hz=float(command_rate_hz),
            dt=float(dt),
            store_range=(int(store_range[0]), int(store_range[1])),
            recall_range=(int(recall_range[0]), int(recall_range[1])),
        )

    @property
    def input_shape(self) -> tuple[int, int]:
        """Per-sample input ``(T, channels)`` of the standard variant."""
        return (self.task.steps(), self.task.channels)

    @property
    def sequence_steps(self) -> int:
        """The samples are spike trains of ``T`` steps (the standard variant): ``encoder=none``."""
        return self.task.steps()

    def _loader(self, data: Dataset) -> DataLoader:
        return DataLoader(
            data,
            batch_size=None,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def dataset(self, stage: str) -> MemoryBatches:
        """The batches of ``stage``: ``train``, ``val``, ``test`` or ``long_test``."""
        settings = {
            "train": (self.train_batches, derived_seed(self.seed, _TRAIN_SALT), 1),
            "val": (self.val_batches, derived_seed(self.val_seed, _VAL_SALT), 1),
            "test": (self.test_batches, derived_seed(self.test_seed, _TEST_SALT), 1),
            "long_test": (
                self.long_test_batches,
                derived_seed(self.test_seed, _LONG_SALT),
                self.long_test_blocks,
            ),
        }
        if stage not in settings:
            raise ValueError(f"stage must be one of {', '.join(settings)} (got {stage!r})")
        count, seed, blocks = settings[stage]
        return MemoryBatches(self.task, count, self.batch_size, seed, blocks)

    def train_dataloader(self) -> DataLoader:
        """Batches keyed ``(epoch, index)``; the loader's position is saved in checkpoints, so a
        run resumed in the middle of an epoch continues with the very next batch."""
        sampler = EpochShuffleSampler(self.train_batches, self.seed, with_epoch=True)
        return ResumableDataLoader(
            self.dataset("train"),
            batch_size=None,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        """The test batches followed by the long test batches (one loader, metrics apart)."""
        parts: list[Dataset] = [self.dataset("test")]
        if self.long_test_batches:
            parts.append(self.dataset("long_test"))
        return self._loader(ConcatDataset(parts))


def recall_logits(
    readout: torch.Tensor, recall_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Readout averaged over each sequence's RECALL steps.

    Args:
        readout: ``[T, batch, classes]`` readout voltages.
        recall_mask: ``[T, batch]`` true at RECALL steps.

    Returns:
        ``(logits [batch, classes], present [batch] bool)``: :math:`\frac{1}{|R_b|}
        \sum_{t \in R_b} v_{t,b}`, and whether sequence ``b`` has RECALL steps at all (rows
        without any are zero and must be ignored).
    """
    weights = recall_mask.to(readout.dtype)
    counts = weights.sum(dim=0)
    logits = torch.einsum("tb,tbc->bc", weights, readout) / counts.clamp(min=1).unsqueeze(1)
    return logits, counts > 0


class MemoryTask(Task):
    """Store-recall readout, loss and accuracy (module docstring).

    The loss is the cross-entropy of the RECALL-averaged readout (logits, no softmax before it).
    Under truncated BPTT ``step`` sees one time ``window``; sequences whose RECALL period lies
    (partly) in the window contribute the average over the steps inside it, and a window without
    any RECALL step gives a zero loss (still attached to the graph).

    Args:
        datamodule: a :class:`MemoryDataModule`.
    """

    readout_spiking = False

    def __init__(self, datamodule: MemoryDataModule) -> None:
        super().__init__(datamodule)
        self.accuracy = nn.ModuleDict(
            {f"{stage}_acc": BinaryAccuracy() for stage in STAGES}
            | {"test_acc_long": BinaryAccuracy()}
        )

    def periods(self, batch: MemoryBatch) -> dict[str, torch.Tensor]:
        """STORE and RECALL steps as time-first ``[T, batch]`` masks (shaded in readout plots)."""
        return {"store": batch.store_mask.t(), "recall": batch.recall_mask.t()}

    def inputs(self, batch: MemoryBatch) -> torch.Tensor:
        """The input spikes ``[batch, T, channels]`` (``encoder=none`` makes them time-first)."""
        return batch.spikes

    def step(
        self, readout: torch.Tensor, batch: MemoryBatch, stage: str, window: slice = slice(None)
    ) -> TaskOutput:
        logits, present = recall_logits(readout, batch.recall_mask.t()[window])
        if not bool(present.any()):
            return TaskOutput(loss=readout.sum() * 0.0)
        logits, labels = logits[present], batch.labels[present]
        name = "acc_long" if batch.long else "acc"
        accuracy = self.accuracy[f"{stage}_{name}"]
        accuracy.update((logits[:, 1] > logits[:, 0]).long(), labels)
        return TaskOutput(loss=F.cross_entropy(logits, labels), metrics={name: accuracy})
