"""``trainer=gpu`` with the shipped experiments, in float32 and ``bf16-mixed``: the configs
compose and build everywhere; on a CUDA machine (``gpu`` marker) a few batches of each train on
the Triton kernels."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig

from spikeexp.cli.train import train
from spikeexp.engine.experiment import build_experiment
from tests.helpers import compose_like_cli
from tests.tasks.conftest import fake_dataset

EXPERIMENTS = ["digits", "fashion_mnist_conv", "memory_lsnn"]
PRECISIONS = ["32-true", "bf16-mixed"]
FEW_BATCHES = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "callbacks=minimal",
]


def _overrides(experiment: str, precision: str, output: Path) -> list[str]:
    overrides = [
        f"experiment={experiment}",
        "trainer=gpu",
        f"trainer.precision={precision}",
        f"paths.output_dir={output}",
    ]
    if experiment == "fashion_mnist_conv":
        fake_dataset(output / "data", train=80, test=20, gz=True)
        overrides.append(f"data.root={output / 'data'}")
    return overrides


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_gpu_trainer_builds_every_experiment(experiment: str, precision: str, tmp_path: Path):
    config = compose_like_cli(_overrides(experiment, precision, tmp_path))
    try:
        built = build_experiment(config)
    finally:
        HydraConfig.instance().cfg = None
    trainer = built.spec.config["trainer"]
    assert (trainer["accelerator"], trainer["devices"], trainer["precision"]) == (
        "gpu",
        1,
        precision,
    )


@pytest.mark.gpu
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_gpu_trainer_trains_on_the_triton_kernels(
    experiment: str, precision: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = compose_like_cli([*_overrides(experiment, precision, tmp_path), *FEW_BATCHES])
    try:
        with caplog.at_level(logging.INFO, logger="spikeexp.callbacks.backends"):
            value = train(config)
    finally:
        HydraConfig.instance().cfg = None
    assert value is not None and math.isfinite(value)
    lines = [r.getMessage() for r in caplog.records if r.name == "spikeexp.callbacks.backends"]
    assert lines and all("fused, Triton kernels (cuda" in line for line in lines), lines
