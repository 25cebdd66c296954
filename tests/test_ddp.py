"""DDP presets and the guard against Lightning's `ddp` re-execution of the command line."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from lightning.pytorch import Trainer
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.strategies import SingleDeviceStrategy
from omegaconf import OmegaConf

from spikeexp.engine import build_test_trainer, plain, validate_config
from spikeexp.runtime import processes
from spikeexp.runtime.processes import guard_ddp_relaunch

# Default callbacks and TensorBoard logger on purpose: they once deadlocked DDP (SyncEpochMetrics).
SHORT = ["data.num_workers=0"]


UNUSED_DIR = "paths.output_dir=unused"


def compose_train(overrides: list[str]):
    with initialize_config_module(config_module="spikeexp.conf", version_base="1.3"):
        return compose("train", overrides=overrides)


def test_ddp_presets_compose() -> None:
    gpu = compose_train(["trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2"]).trainer
    assert (gpu.accelerator, gpu.devices, gpu.num_nodes) == ("gpu", 4, 2)
    assert gpu.strategy.process_group_backend == "nccl"
    assert gpu.strategy.start_method == "popen"
    cpu = compose_train(["trainer=ddp_cpu"]).trainer
    assert (cpu.accelerator, cpu.devices) == ("cpu", 2)
    assert (cpu.strategy.process_group_backend, cpu.strategy.start_method) == ("gloo", "spawn")


@pytest.mark.parametrize(
    ("strategy", "guarded"),
    [
        ("ddp", "ddp_spawn"),
        ("ddp_find_unused_parameters_true", "ddp_spawn_find_unused_parameters_true"),
        ("ddp_spawn", "ddp_spawn"),
        ("auto", "auto"),
    ],
)
def test_guard_translates_ddp_outside_the_cli(strategy: str, guarded: str) -> None:
    # Under pytest the command line is pytest's: re-running it would re-run the tests.
    config = plain(compose_train([f"+trainer.strategy={strategy}", UNUSED_DIR]))
    assert guard_ddp_relaunch(config)["trainer"]["strategy"] == guarded
    assert config["trainer"]["strategy"] == strategy


def test_guard_sets_spawn_on_a_popen_ddp_node() -> None:
    config = plain(compose_train(["trainer=ddp", UNUSED_DIR]))
    strategy = guard_ddp_relaunch(config)["trainer"]["strategy"]
    assert strategy["start_method"] == "spawn"
    assert strategy["process_group_backend"] == "nccl"
    assert config["trainer"]["strategy"]["start_method"] == "popen"


def test_guard_keeps_ddp_for_a_single_cli_run(monkeypatch: pytest.MonkeyPatch) -> None:
    config = plain(compose_train(["trainer=ddp", UNUSED_DIR]))
    monkeypatch.setattr(processes, "_started_from_cli", lambda: True)
    assert guard_ddp_relaunch(config) == config
    guarded = guard_ddp_relaunch(config, multirun=True)
    assert guarded["trainer"]["strategy"]["start_method"] == "spawn"


def test_guard_keeps_ddp_when_slurm_starts_the_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_JOB_NAME", "train")
    config = plain(compose_train(["trainer=ddp", UNUSED_DIR]))
    assert guard_ddp_relaunch(config, multirun=True) == config


def test_multi_process_fit_tests_on_one_device_with_the_same_loggers(tmp_path: Path) -> None:
    # A multi-process test would pad the test set (DistributedSampler) and count samples twice.
    config = compose_train(["trainer=ddp_cpu", f"paths.output_dir={tmp_path}"])
    logger = CSVLogger(tmp_path)
    fitted = Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=logger)
    assert fitted.world_size == 2
    tester = build_test_trainer(validate_config(plain(config)), fitted)
    assert tester is not fitted and isinstance(tester.strategy, SingleDeviceStrategy)
    assert tester.world_size == 1 and tester.loggers == [logger]


def test_one_process_fit_tests_with_its_own_trainer(tmp_path: Path) -> None:
    config = compose_train([f"paths.output_dir={tmp_path}"])
    fitted = Trainer(accelerator="cpu", devices=1, logger=False)
    assert build_test_trainer(validate_config(plain(config)), fitted) is fitted


def _train(tmp_path: Path, name: str, *overrides: str) -> dict[str, float]:
    run_dir = tmp_path / name
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        ["spikeexp-train", *SHORT, *overrides, f"hydra.run.dir={run_dir}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=1500,
    )
    # stderr first: a crashed rank's message must survive the truncation of long failure reports.
    assert result.returncode == 0, result.stderr[-6000:] + result.stdout[-2000:]
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.ci
def test_two_process_cpu_ddp_matches_single_process(tmp_path: Path) -> None:
    epochs = "trainer.max_epochs=4"
    single = _train(tmp_path, "single", epochs, "data.batch_size=32")
    # Each rank sees half of every epoch and gradients are averaged: with half the batch per
    # rank, both runs make the same optimiser steps on the same global batch size.
    ddp = _train(tmp_path, "ddp", epochs, "data.batch_size=16", "trainer=ddp_cpu")
    assert single["test/acc"] > 0.85
    assert abs(ddp["test/acc"] - single["test/acc"]) < 0.05
    run_dir = tmp_path / "ddp"
    # Only rank 0 writes: one config tree, one best and one last checkpoint, one metrics file.
    assert len(list(run_dir.glob("config_tree.log"))) == 1
    assert len(list((run_dir / "checkpoints").glob("last*.ckpt"))) == 1
    assert len(list((run_dir / "checkpoints").glob("best*.ckpt"))) == 1


@pytest.mark.slow
@pytest.mark.ci
def test_multirun_with_popen_ddp_does_not_replay_the_sweep(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [
            "spikeexp-train",
            "-m",
            *SHORT,
            "trainer=ddp_cpu",
            "trainer.strategy.start_method=popen",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_val_batches=1",
            "+trainer.limit_test_batches=1",
            "seed=1,2",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=1500,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "using the spawn start method instead" in result.stdout + result.stderr
    sweeps = [p for p in (tmp_path / "outputs" / "multirun").glob("*/*") if p.is_dir()]
    assert len(sweeps) == 1, sweeps
    jobs = sorted(p.name for p in sweeps[0].iterdir() if p.is_dir() and p.name.isdigit())
    assert jobs == ["0", "1"]
    summary = (sweeps[0] / "summary.csv").read_text().splitlines()
    assert len(summary) == 3 and all(",completed," in line for line in summary[1:])
    assert OmegaConf.load(sweeps[0] / "0" / ".hydra" / "config.yaml").seed == 1
