"""Numerical faults (NaN/inf loss or gradient), gradient clipping from config, determinism."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, open_dict
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spikeexp.callbacks.reliability import LastCheckpoint, NonFiniteGuard, NonFiniteLossError
from spikeexp.cli.train import train
from spikeexp.engine.experiment import build_experiment, build_trainer
from spikeexp.runtime.checkpoint import SafeCheckpointIO, load_checkpoint_file

TINY = [
    "seq_length=8",
    "topology.hidden=[16]",
    "data.batch_size=32",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=2",
    "++trainer.limit_test_batches=1",
    "logger=none",
    "callbacks=minimal",
]


class _Regression(pl.LightningModule):
    """A linear model whose loss (or gradient) turns non-finite at training batch ``bad_batch``."""

    def __init__(self, bad_batch: int, fault: str) -> None:
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self.bad_batch = bad_batch
        self.fault = fault

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], index: int) -> torch.Tensor:
        x, y = batch
        loss = (self.layer(x).squeeze(1) - y).pow(2).mean()
        self.log("train/loss", loss)
        if index == self.bad_batch and self.fault == "loss":
            loss = loss * float("nan")
        if index == self.bad_batch and self.fault == "gradient":
            # sqrt'(0) = inf: the loss stays finite, the weight gradient becomes NaN.
            loss = loss + (self.layer.weight.abs().sum() * 0.0).sqrt()
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit_until_fault(tmp_path: Path, fault: str) -> tuple[_Regression, NonFiniteLossError]:
    data = TensorDataset(torch.randn(40, 4), torch.randn(40))
    model = _Regression(bad_batch=5, fault=fault)
    trainer = pl.Trainer(
        max_epochs=1,
        callbacks=[
            NonFiniteGuard(),
            LastCheckpoint(every_n_train_steps=2),
            ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True),
        ],
        plugins=[SafeCheckpointIO()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(NonFiniteLossError) as caught:
        trainer.fit(model, DataLoader(data, batch_size=4))
    return model, caught.value


@pytest.mark.parametrize("fault", ["loss", "gradient"])
def test_non_finite_stops_before_the_weights_change(tmp_path: Path, fault: str) -> None:
    model, error = _fit_until_fault(tmp_path, fault)
    message = str(error)
    assert "\n" not in message
    what = "training loss is nan" if fault == "loss" else "gradient of layer.weight is not finite"
    assert message.startswith(f"{what} at global step 5 (epoch 0)")
    step = 4 if fault == "loss" else 5  # a gradient fault comes with a finite loss
    assert "last finite metrics: loss " in message
    assert f" at global step {step}, train/loss=" in message
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"last good checkpoint kept: {last}" in message
    # The weights never saw the fault, and the last checkpoint (step 4) is finite and loadable.
    assert all(torch.isfinite(p).all() for p in model.parameters())
    checkpoint = load_checkpoint_file(last)
    assert checkpoint["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in checkpoint["state_dict"].values())


def _compose(overrides: list[str], output_dir: Path) -> DictConfig:
    """The config ``spikeexp-train <overrides>`` composes, Hydra's runtime info set."""
    with initialize_config_module("spikeexp.conf", version_base="1.3"):
        config = compose(
            "train",
            overrides=[*overrides, f"paths.output_dir={output_dir}"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(config)
    with open_dict(config):
        del config["hydra"]
    return config


@pytest.fixture
def hydra_runtime() -> Iterator[None]:
    yield
    HydraConfig.instance().cfg = None


def _weights_after_one_sgd_step(tmp_path: Path, clip: str) -> tuple[float, float]:
    """(norm of the weight change, its bound lr * clip) for one SGD step with ``clip``."""
    config = _compose(
        [
            *TINY,
            "optimizer=sgd",
            "optimizer.lr=1.0",
            "trainer.max_epochs=1",
            "++trainer.limit_train_batches=1",
            "++trainer.num_sanity_val_steps=0",
            "++trainer.limit_val_batches=0",
            f"trainer.gradient_clip_val={clip}",
        ],
        tmp_path / clip,
    )
    experiment = build_experiment(config)
    before = [p.detach().clone() for p in experiment.module.parameters()]
    build_trainer(experiment.spec).fit(experiment.module, datamodule=experiment.datamodule)
    change = torch.stack(
        [
            (p.detach() - b).norm()
            for p, b in zip(experiment.module.parameters(), before, strict=True)
        ]
    ).norm()
    return float(change), 1.0 * (float(clip) if clip != "null" else math.inf)


def test_gradient_clipping_from_config(tmp_path: Path, hydra_runtime: None) -> None:
    clipped, bound = _weights_after_one_sgd_step(tmp_path, "0.001")
    assert 0 < clipped <= bound * (1 + 1e-4)
    unclipped, _ = _weights_after_one_sgd_step(tmp_path, "null")
    assert unclipped > 10 * bound


def _run(tmp_path: Path, name: str, seed: int) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    output = tmp_path / name
    config = _compose([*TINY, "encoder=poisson", f"seed={seed}", "trainer.max_epochs=2"], output)
    metrics = train(config)
    weights = load_checkpoint_file(output / "checkpoints" / "last.ckpt")["state_dict"]
    return metrics, weights


def _identical(first: object, second: object) -> bool:
    """Equal nested state (tensors compared exactly, e.g. weights and generator states)."""
    if isinstance(first, torch.Tensor):
        return isinstance(second, torch.Tensor) and torch.equal(first, second)
    if isinstance(first, dict):
        return (
            isinstance(second, dict)
            and first.keys() == second.keys()
            and all(_identical(first[key], second[key]) for key in first)
        )
    return first == second


def test_same_seed_same_metrics_on_cpu(tmp_path: Path, hydra_runtime: None) -> None:
    first_metrics, first_weights = _run(tmp_path, "first", seed=3)
    second_metrics, second_weights = _run(tmp_path, "second", seed=3)
    assert first_metrics == second_metrics
    assert _identical(first_weights, second_weights)
    other_metrics, _ = _run(tmp_path, "other", seed=4)
    assert other_metrics != first_metrics
