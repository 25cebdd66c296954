"""``spikeexp-train resume=<run_dir>``: refused overrides, bad checkpoints, and (slow) a run killed
with SIGKILL or stopped by SIGTERM in the middle of an epoch that, resumed, ends bit-identical to
an uninterrupted run, with TensorBoard curves free of duplicate steps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback, Trainer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from spikeexp.callbacks.reliability import reliability_callbacks
from spikeexp.cli.resume import resume_arguments, trim_csv_logs
from spikeexp.cli.runner import run_cli
from spikeexp.cli.train import hydra_main
from spikeexp.engine import experiment
from spikeexp.engine.schema import ConfigError
from spikeexp.runtime import checkpoint as checkpoint_module
from spikeexp.runtime.checkpoint import CheckpointError, load_checkpoint_file

TINY = [
    "seq_length=8",
    "topology.hidden=[16]",
    "data.batch_size=32",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
    "test=false",
    "callbacks=minimal",
]


def _train(monkeypatch: pytest.MonkeyPatch, *arguments: str) -> None:
    """``spikeexp-train <arguments>`` in-process (the console script's entry point)."""
    monkeypatch.setattr(sys, "argv", ["spikeexp-train", *arguments])
    run_cli(hydra_main, resumable=True)


def _resume_in_process(monkeypatch: pytest.MonkeyPatch, run_dir: Path, *overrides: str) -> None:
    """``spikeexp-train resume=<run_dir>`` in-process, in a later wall-clock second: TensorBoard
    reads event files in name order, and names from one process in the same second order by a
    counter compared as text (``.10`` before ``.9``). A real resume is a new, later process."""
    start = int(time.time())
    while int(time.time()) == start:
        time.sleep(0.05)
    _train(monkeypatch, f"resume={run_dir}", *overrides)


@pytest.fixture
def finished_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished tiny run (2 epochs of 3 batches, TensorBoard logger)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run_dir = tmp_path / "run"
    _train(monkeypatch, f"hydra.run.dir={run_dir}", *TINY)
    return run_dir


def _resume_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str
) -> str:
    capsys.readouterr()
    with pytest.raises(SystemExit) as caught:
        _train(monkeypatch, *args)
    assert caught.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: resume: ")
    return lines[0]


def test_unsafe_overrides_are_refused(finished_run: Path) -> None:
    resume = f"resume={finished_run}"
    with pytest.raises(ConfigError, match=r"neuron\.v_th=0\.3 would change the experiment"):
        resume_arguments([resume, "neuron.v_th=0.3"])
    with pytest.raises(ConfigError, match="neuron=lsnn would change the experiment"):
        resume_arguments([resume, "neuron=lsnn"])
    with pytest.raises(ConfigError, match=r"max_epochs may only grow on resume \(saved 2, got 1\)"):
        resume_arguments([resume, "trainer.max_epochs=1"])
    with pytest.raises(ConfigError, match="sweeps cannot be resumed"):
        resume_arguments([resume, "trainer.max_epochs=3,4"])
    with pytest.raises(ConfigError, match="-m cannot be combined with resume="):
        resume_arguments(["-m", resume])
    with pytest.raises(ConfigError, match="is not a run directory"):
        resume_arguments([f"resume={finished_run / 'nothing'}"])
    assert not (finished_run / ".hydra" / "before_resume_1").exists()


def test_safe_override_rewrites_the_command_line(finished_run: Path) -> None:
    arguments = resume_arguments([f"resume={finished_run}", "trainer.max_epochs=5"])
    assert arguments == [
        "--config-path",
        str(finished_run / ".hydra"),
        "--config-name",
        "config",
        f"hydra.run.dir={finished_run}",
        f"++resume={finished_run}",
        "++trainer.num_sanity_val_steps=0",
        # 2 epochs of 3 batches were logged at steps 0..5; the resumed run logs from step 6.
        "++logger.tensorboard.purge_step=6",
        "trainer.max_epochs=5",
    ]
    assert (finished_run / ".hydra" / "before_resume_1" / "config.yaml").is_file()


def test_resume_continues_in_the_same_directory(
    finished_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _train(monkeypatch, f"resume={finished_run}", "trainer.max_epochs=3")
    checkpoint = load_checkpoint_file(finished_run / "checkpoints" / "last.ckpt")
    assert checkpoint["global_step"] == 9  # 3 epochs of 3 batches
    assert "max_epochs: 3" in (finished_run / ".hydra" / "config.yaml").read_text()
    assert [p.name for p in (finished_run / "checkpoints").glob("last*")] == ["last.ckpt"]


def test_missing_truncated_and_incompatible_checkpoints(
    finished_run: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    last = finished_run / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    last.write_bytes(good[: len(good) // 2])
    message = _resume_error(monkeypatch, capsys, f"resume={finished_run}")
    assert f"checkpoint {last} is truncated or corrupt" in message
    last.unlink()
    with pytest.raises(CheckpointError, match="stopped before its first checkpoint"):
        resume_arguments([f"resume={finished_run}"])
    # A checkpoint of another topology (16 -> 8 hidden neurons) in place of last.ckpt.
    other = tmp_path / "other"
    _train(monkeypatch, f"hydra.run.dir={other}", *TINY, "topology.hidden=[8]", "logger=none")
    shutil.copy(other / "checkpoints" / "last.ckpt", last)
    message = _resume_error(monkeypatch, capsys, f"resume={finished_run}")
    assert "does not fit the configured model" in message
    assert "network.layers.fc1.module.weight [8, 64] vs model [16, 64]" in message
    assert (finished_run / ".hydra" / "config.yaml").is_file()


def test_csv_rows_after_the_checkpoint_are_dropped(tmp_path: Path) -> None:
    metrics = tmp_path / "csv" / "metrics.csv"
    metrics.parent.mkdir()
    rows = ["epoch,step,train/loss_step", *(f"0,{step},{step / 10}" for step in range(10))]
    metrics.write_text("\n".join(rows) + "\n")
    trim_csv_logs(tmp_path, 6)
    assert metrics.read_text().splitlines() == rows[:7]


# --------------------------------------------------------------------------- SIGTERM in-process

SMALL = [
    "encoder=poisson",
    "seq_length=8",
    "topology.hidden=[16]",
    "data.batch_size=32",
    "trainer.max_epochs=2",
    "++trainer.limit_train_batches=4",
    "++trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "test=false",
    "callbacks=minimal",
]
# In the middle of the first epoch (4 batches per epoch). The training metrics aggregated over
# the interrupted epoch (train/loss_epoch, train/acc) only cover the batches run after a resume;
# the final metrics come from the second epoch, which runs entirely after the resume.
SIGTERM_STEP = 2


class _SigtermAt(Callback):
    """Sends this process SIGTERM in ``hook`` of the batch at global step ``step``."""

    def __init__(self, step: int, hook: str) -> None:
        self.step = step
        self.hook = hook

    def _maybe_signal(self, trainer: Trainer, hook: str) -> None:
        if hook == self.hook and trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)

    def on_train_batch_start(self, trainer: Trainer, *args: object) -> None:
        self._maybe_signal(trainer, "on_train_batch_start")

    def on_train_batch_end(self, trainer: Trainer, *args: object) -> None:
        self._maybe_signal(trainer, "on_train_batch_end")


@pytest.fixture(scope="module")
def small_uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("small") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HYDRA_FULL_ERROR", raising=False)
        _train(patch, f"hydra.run.dir={run_dir}", *SMALL)
    return run_dir


@pytest.mark.parametrize(
    ("hook", "step", "saved_step"),
    [
        # Signal during the batch: LastCheckpoint saves at its end (on_train_batch_end); the
        # global step counts the optimiser steps done, so the signalled batch is included.
        ("on_train_batch_start", SIGTERM_STEP, SIGTERM_STEP + 1),
        # Signal after LastCheckpoint's on_train_batch_end: it saves in on_exception.
        ("on_train_batch_end", SIGTERM_STEP, SIGTERM_STEP),
        # Signal during the epoch's last batch: no save before that epoch's validation (a resume
        # from there would skip it); the epoch-end save is the one kept.
        ("on_train_batch_start", 3, 4),
    ],
)
def test_sigterm_saves_then_resume_is_exact(
    hook: str,
    step: int,
    saved_step: int,
    small_uninterrupted: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patch:
        patch.setattr(
            experiment,
            "reliability_callbacks",
            lambda every: [*reliability_callbacks(every), _SigtermAt(step, hook)],
        )
        with pytest.raises(SystemExit) as caught:
            _train(patch, f"hydra.run.dir={run_dir}", *SMALL)
    assert caught.value.code == 143
    last = run_dir / "checkpoints" / "last.ckpt"
    assert load_checkpoint_file(last)["global_step"] == saved_step
    assert (
        f"stopped by SIGTERM at global step {saved_step}: saved {last}; "
        f"continue with: spikeexp-train resume={run_dir}"
    ) in capsys.readouterr().err
    _resume_in_process(monkeypatch, run_dir)
    weights, metrics = _final_state(run_dir)
    expected_weights, expected_metrics = _final_state(small_uninterrupted)
    assert _identical(weights, expected_weights)
    assert metrics == expected_metrics
    assert _train_loss_curve(run_dir) == _train_loss_curve(small_uninterrupted)


def test_epoch_end_resume_with_more_epochs_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One epoch, then ``resume=... trainer.max_epochs=2``: same as two epochs in one go (the
    scheduler is off here: a schedule tied to max_epochs, like cosine's T_max, keeps its saved
    state on resume)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    constant = ["scheduler=none"]
    full = tmp_path / "full"
    _train(monkeypatch, f"hydra.run.dir={full}", *SMALL, *constant)
    part = tmp_path / "part"
    _train(monkeypatch, f"hydra.run.dir={part}", *SMALL, *constant, "trainer.max_epochs=1")
    _resume_in_process(monkeypatch, part, "trainer.max_epochs=2")
    weights, metrics = _final_state(part)
    expected_weights, expected_metrics = _final_state(full)
    assert _identical(weights, expected_weights)
    assert metrics == expected_metrics
    assert _train_loss_curve(part) == _train_loss_curve(full)


# --------------------------------------------------------------------------- slow, subprocesses

STEPS_PER_EPOCH = 40
STEPS = 3 * STEPS_PER_EPOCH
STOPPED = [
    "encoder=poisson",
    "seq_length=16",
    "topology.hidden=[32]",
    "data.batch_size=16",
    "trainer.max_epochs=3",
    f"++trainer.limit_train_batches={STEPS_PER_EPOCH}",
    "++trainer.limit_val_batches=2",
    "trainer.log_every_n_steps=1",
    "last_checkpoint_every_n_steps=5",
    "test=false",
    "callbacks=minimal",
]


def _without_training(metrics: dict) -> dict:
    return {name: value for name, value in metrics.items() if not name.startswith("train/")}


def _command(cwd: Path, *arguments: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        ["spikeexp-train", *arguments],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str]:
    _, stderr = process.communicate(timeout=300)
    return process.returncode, stderr


def _stop_after_first_checkpoint(cwd: Path, run_dir: Path, signum: int) -> tuple[int, str]:
    """Start the run, wait for its first step checkpoint plus a few more steps, send ``signum``."""
    process = _command(cwd, f"hydra.run.dir={run_dir}", *STOPPED)
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.exists():
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.3)
    process.send_signal(signum)
    return _finish(process)


def _identical(first: object, second: object) -> bool:
    if isinstance(first, torch.Tensor):
        return isinstance(second, torch.Tensor) and torch.equal(first, second)
    if isinstance(first, dict):
        return first.keys() == second.keys() and all(_identical(first[k], second[k]) for k in first)
    return first == second


def _final_state(run_dir: Path) -> tuple[dict, dict]:
    checkpoint = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return checkpoint["state_dict"], metrics


def _train_loss_curve(run_dir: Path) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [(event.step, event.value) for event in events.Scalars("train/loss_step")]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("uninterrupted")
    code, stderr = _finish(_command(cwd, "hydra.run.dir=run", *STOPPED))
    assert code == 0, stderr
    return cwd / "run"


def _assert_resumes_exactly(cwd: Path, run_dir: Path, uninterrupted: Path, killed: bool) -> None:
    stopped = load_checkpoint_file(run_dir / "checkpoints" / "last.ckpt")["global_step"]
    assert 0 < stopped < STEPS
    code, stderr = _finish(_command(cwd, f"resume={run_dir}"))
    assert code == 0, stderr
    weights, metrics = _final_state(run_dir)
    expected_weights, expected_metrics = _final_state(uninterrupted)
    assert _identical(weights, expected_weights)  # includes the Poisson encoder's generator
    if stopped >= STEPS - STEPS_PER_EPOCH:
        # Stopped in the last epoch: its aggregated training metrics cover the resumed part only.
        metrics, expected_metrics = _without_training(metrics), _without_training(expected_metrics)
    assert metrics == expected_metrics
    # Lightning logs a batch's step metrics after its on_train_batch_end checkpoint; they are
    # flushed at the next hook. A SIGKILL in between loses that one step from the curves.
    lost = {stopped - 1} if killed else set()
    curve = [point for point in _train_loss_curve(run_dir) if point[0] not in lost]
    expected = [point for point in _train_loss_curve(uninterrupted) if point[0] not in lost]
    assert [step for step, _ in expected] == [s for s in range(STEPS) if s not in lost]
    assert curve == expected


@pytest.mark.slow
@pytest.mark.ci
def test_sigkill_mid_epoch_then_resume_is_bit_exact(uninterrupted: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    code, _ = _stop_after_first_checkpoint(tmp_path, run_dir, signal.SIGKILL)
    assert code == -signal.SIGKILL
    _assert_resumes_exactly(tmp_path, run_dir, uninterrupted, killed=True)


@pytest.mark.slow
@pytest.mark.ci
def test_sigterm_saves_a_checkpoint_then_resume_is_bit_exact(
    uninterrupted: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    code, stderr = _stop_after_first_checkpoint(tmp_path, run_dir, signal.SIGTERM)
    assert code == 143, stderr
    assert "stopped by SIGTERM at global step" in stderr
    assert f"continue with: spikeexp-train resume={run_dir}" in stderr
    _assert_resumes_exactly(tmp_path, run_dir, uninterrupted, killed=False)


def test_step_saves_skip_the_last_batch_of_an_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every 2 steps with 4 batches per epoch: saves at step 2 and at each epoch's end, none at the
    end of batch 4 before validation (resuming from there would skip epoch 0's validation)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    saved_steps = []
    save = checkpoint_module.atomic_save

    def recording_save(checkpoint: dict, path: Path) -> None:
        if Path(path).name == "last.ckpt":
            loop = checkpoint["loops"]["fit_loop"]
            saved_steps.append((checkpoint["global_step"], loop["epoch_progress"]["total"]))
        save(checkpoint, path)

    monkeypatch.setattr(checkpoint_module, "atomic_save", recording_save)
    run_dir = tmp_path / "run"
    _train(monkeypatch, f"hydra.run.dir={run_dir}", *SMALL, "last_checkpoint_every_n_steps=2")
    assert sorted({step for step, _ in saved_steps}) == [2, 4, 6, 8]
    # Steps 4 and 8 end an epoch: saved only in on_train_epoch_end, after validation (the epoch
    # is "processed", not yet "completed"; ModelCheckpoint's save_last may save there too).
    for step, epochs in saved_steps:
        assert epochs["processed"] == epochs["completed"] + (step % 4 == 0), (step, epochs)
