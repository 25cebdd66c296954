"""Seeded, resumable training order; seeded augmentation; exact mid-epoch resume in Lightning."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from spikeexp.tasks.digits import DigitsDataModule
from spikeexp.tasks.tensor_data import (
    EpochShuffleSampler,
    SampleKey,
    SeededTransformDataset,
    seeded_split,
)


def test_order_is_function_of_seed_and_epoch() -> None:
    sampler = EpochShuffleSampler(100, seed=7)
    sampler.set_epoch(3)
    torch.manual_seed(123)  # the global RNG must not matter
    first = list(sampler)
    torch.manual_seed(456)
    assert list(sampler) == first
    assert list(EpochShuffleSampler(100, seed=7).order(3)) == first
    assert sorted(first) == list(range(100))
    sampler.set_epoch(4)
    assert list(sampler) != first
    assert list(EpochShuffleSampler(100, seed=8).order(3)) != first


def test_resume_skips_consumed_samples_once() -> None:
    sampler = EpochShuffleSampler(10, seed=0)
    full = sampler.order(2).tolist()
    sampler.resume(epoch=2, consumed=4)
    sampler.set_epoch(2)  # Lightning calls set_epoch for the resumed epoch: the offset survives
    assert list(sampler) == full[4:]
    assert list(sampler) == full  # only the first iteration is shortened
    sampler.resume(epoch=2, consumed=4)
    sampler.set_epoch(3)  # another epoch drops the offset
    assert list(sampler) == sampler.order(3).tolist()


def test_sampler_with_epoch_keys() -> None:
    sampler = EpochShuffleSampler(5, seed=0, with_epoch=True)
    sampler.set_epoch(9)
    keys = list(sampler)
    assert all(isinstance(k, SampleKey) and k.epoch == 9 for k in keys)
    assert [k.index for k in keys] == sampler.order(9).tolist()


def test_seeded_split_sizes_and_disjoint() -> None:
    kept, held = seeded_split(50, 0.2, seed=1, salt=0)
    assert len(held) == 10 and len(kept) == 40
    assert sorted(torch.cat([kept, held]).tolist()) == list(range(50))
    assert torch.equal(seeded_split(50, 0.2, seed=1, salt=0)[1], held)
    assert not torch.equal(seeded_split(50, 0.2, seed=2, salt=0)[1], held)


def test_seeded_transform_is_pure_and_keeps_global_rng() -> None:
    x = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    shift = SeededTransformDataset(x, torch.tensor([0, 1]), lambda i: i + torch.rand(()), seed=5)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = shift[SampleKey(1, 0)][0]
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)
    assert torch.equal(shift[SampleKey(1, 0)][0], first)
    assert not torch.equal(shift[SampleKey(2, 0)][0], first)


def test_loader_state_dict_counts_consumed_samples() -> None:
    loader = DigitsDataModule(batch_size=100).train_dataloader()
    iterator = iter(loader)
    next(iterator)
    next(iterator)
    assert loader.state_dict() == {"epoch": 0, "consumed": 200}
    fresh = DigitsDataModule(batch_size=100).train_dataloader()
    fresh.load_state_dict(loader.state_dict())
    resumed = torch.cat([y for _, y in fresh])
    expected = torch.cat([y for _, y in DigitsDataModule(batch_size=100).train_dataloader()])
    assert torch.equal(resumed, expected[200:])


def test_epoch_end_state_moves_to_next_epoch() -> None:
    loader = DigitsDataModule(batch_size=100).train_dataloader()
    loader.load_state_dict({"epoch": 1, "consumed": len(loader.sampler)})
    assert loader.sampler.epoch == 2
    assert len(list(loader.sampler)) == len(loader.sampler)


class _Recorder(pl.LightningModule):
    """A linear classifier that records the epoch, batch index and a fingerprint of each batch."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(64, 10)
        self.seen: list[tuple[int, int, float]] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        self.seen.append((self.current_epoch, batch_idx, float((x.sum((1, 2, 3)) * y).sum())))
        return nn.functional.cross_entropy(self.linear(x.flatten(1)), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(model: _Recorder, steps: int = -1, ckpt_path: str | None = None, **kwargs) -> None:
    trainer = pl.Trainer(
        max_epochs=2,
        max_steps=steps,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator="cpu",
        **kwargs,
    )
    trainer.fit(model, DigitsDataModule(batch_size=100, seed=3), ckpt_path=ckpt_path)


@pytest.mark.filterwarnings("ignore:Be aware that when using `ckpt_path`")
@pytest.mark.filterwarnings("ignore:You passed in a `val_dataloader` but have no")
@pytest.mark.parametrize("stop_step", [5, 13, 16], ids=["mid_epoch0", "epoch_end", "mid_epoch1"])
def test_lightning_resume_continues_the_same_order(tmp_path: Path, stop_step: int) -> None:
    """1,294 training images in batches of 100: 13 batches per epoch."""
    uninterrupted = _Recorder()
    _fit(uninterrupted, enable_checkpointing=False)
    first = _Recorder()
    every = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=stop_step, save_top_k=-1)
    _fit(first, steps=stop_step, callbacks=[every])
    (checkpoint,) = tmp_path.glob("*.ckpt")
    second = _Recorder()
    _fit(second, ckpt_path=str(checkpoint), enable_checkpointing=False)
    assert len(uninterrupted.seen) == 26
    # Lightning called set_epoch: epoch 1 has an order of its own
    by_epoch = [[fp for epoch, _, fp in uninterrupted.seen if epoch == e] for e in (0, 1)]
    assert by_epoch[0] != by_epoch[1]
    assert first.seen + second.seen == uninterrupted.seen
