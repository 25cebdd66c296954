"""Launcher presets: joblib (parallel trials), submitit_local (runs here) and submitit_slurm
(composed and rendered into the sbatch script it would submit; SLURM itself is not available)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import submitit
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate

from spikeexp.runtime.processes import limit_torch_threads

APP = Path(__file__).with_name("sweep_app.py")
TINY_TRAINING = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "logger=none",
]


def compose_train(overrides: list[str]):
    with initialize_config_module(config_module="spikeexp.conf", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


class _Submitted(Exception):
    """Raised instead of submitting: carries the sbatch script."""


def test_slurm_preset_ties_tasks_to_trainer_devices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = compose_train(
        [
            "launcher=submitit_slurm",
            "trainer=ddp",
            "trainer.devices=4",
            "trainer.num_nodes=2",
            "torch_threads=6",
            "hydra.launcher.partition=gpu",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    launcher_config = config.hydra.launcher
    assert launcher_config._target_.endswith("submitit_launcher.SlurmLauncher")
    assert (launcher_config.tasks_per_node, launcher_config.gpus_per_node) == (4, 4)
    assert (launcher_config.nodes, launcher_config.cpus_per_task) == (2, 6)

    # Let the real plugin build its submitit executor and render the sbatch script.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 1\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    def capture(executor: submitit.AutoExecutor, *args: object) -> None:
        raise _Submitted(executor._executor._make_submission_file_text("python train.py", "0"))

    monkeypatch.setattr(submitit.AutoExecutor, "map_array", capture)
    launcher = instantiate(launcher_config)
    launcher.setup(hydra_context=None, task_function=lambda _: None, config=config)
    with pytest.raises(_Submitted) as submitted:
        launcher.launch([["optimizer.lr=0.01"]], initial_job_idx=0)
    script = str(submitted.value)
    for line in (
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=240",
        "#SBATCH --signal=USR2@120",
    ):
        assert line in script.splitlines(), script


def test_joblib_preset_limits_threads_per_trial() -> None:
    config = compose_train(["launcher=joblib", "hydra.launcher.n_jobs=3"])
    assert config.hydra.launcher._target_.endswith("joblib_launcher.JoblibLauncher")
    assert config.hydra.launcher.n_jobs == 3
    assert config.torch_threads == 1
    assert compose_train([]).torch_threads is None


def test_limit_torch_threads() -> None:
    before = torch.get_num_threads()
    try:
        limit_torch_threads(1)
        assert torch.get_num_threads() == 1
        limit_torch_threads(None)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_joblib_runs_trials_in_parallel_processes(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run(
        [
            sys.executable,
            str(APP),
            "-m",
            "hydra/launcher=joblib",
            "hydra.launcher.n_jobs=2",
            "x=0,1",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    pids = {json.loads((sweep_dir / job / "result.json").read_text())["pid"] for job in "01"}
    assert len(pids) == 2 and os.getpid() not in pids


@pytest.mark.slow
@pytest.mark.ci
def test_submitit_local_runs_spikeexp_jobs(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run(
        [
            "spikeexp-train",
            "-m",
            "launcher=submitit_local",
            "neuron=lif,lsnn",
            *TINY_TRAINING,
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    assert (sweep_dir / ".submitit").is_dir()
    with open(sweep_dir / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["neuron"], row["status"]) for row in rows] == [
        ("lif", "completed"),
        ("lsnn", "completed"),
    ]
    for row in rows:
        assert (sweep_dir / row["job"] / "metrics.json").is_file()
