"""Checkpoint files: atomic writes, weights-only loads (malicious pickles refused), clear errors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn

from spikeexp.cli.eval import hydra_main as eval_main
from spikeexp.cli.runner import run_cli
from spikeexp.cli.train import hydra_main as train_main
from spikeexp.runtime.atomic import atomic_write
from spikeexp.runtime.checkpoint import (
    CheckpointError,
    SafeCheckpointIO,
    atomic_save,
    check_state_dict_fits,
    load_checkpoint_file,
    verify_checkpoint,
)


class _RunsShellCommand:
    """A pickled object whose unpickling runs a shell command (what an attacker would ship)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def _lightning_checkpoint(module: nn.Module) -> dict:
    return {"epoch": 0, "global_step": 3, "state_dict": module.state_dict(), "hyper_parameters": {}}


@pytest.fixture
def malicious(tmp_path: Path) -> tuple[Path, Path]:
    """A checkpoint whose pickle creates ``marker`` when loaded unsafely, and that marker."""
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.ckpt"
    module = nn.Linear(2, 2)
    torch.save(
        {**_lightning_checkpoint(module), "payload": _RunsShellCommand(f"touch {marker}")}, path
    )
    return path, marker


def test_malicious_pickle_is_refused_and_never_runs(malicious: tuple[Path, Path]) -> None:
    path, marker = malicious
    with pytest.raises(CheckpointError, match=r"was refused: .*would run code") as caught:
        load_checkpoint_file(path)
    assert "\n" not in str(caught.value)
    assert not marker.exists()
    # The plugin Lightning uses refuses it too, even when asked for weights_only=False.
    with pytest.raises(CheckpointError, match="was refused"):
        SafeCheckpointIO().load_checkpoint(path, weights_only=False)
    assert not marker.exists()


def test_the_malicious_fixture_really_runs_code_when_loaded_unsafely(
    malicious: tuple[Path, Path],
) -> None:
    path, marker = malicious
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_trainer_refuses_a_malicious_checkpoint(
    malicious: tuple[Path, Path], tmp_path: Path
) -> None:
    path, marker = malicious

    class Model(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = nn.Linear(2, 2)

        def test_step(self, batch: torch.Tensor, index: int) -> None:
            self.layer(batch)

    trainer = pl.Trainer(
        plugins=[SafeCheckpointIO()],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    with pytest.raises(CheckpointError, match="was refused"):
        trainer.test(Model(), dataloaders=[torch.zeros(1, 2)], ckpt_path=path, weights_only=False)
    assert not marker.exists()


def test_atomic_save_roundtrip_leaves_no_temporary_file(tmp_path: Path) -> None:
    module = nn.Linear(3, 2)
    path = tmp_path / "sub" / "last.ckpt"
    atomic_save(_lightning_checkpoint(module), path)
    loaded = load_checkpoint_file(path)
    assert torch.equal(loaded["state_dict"]["weight"], module.weight.detach())
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_interrupted_save_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "last.ckpt"
    old = nn.Linear(3, 2)
    atomic_save(_lightning_checkpoint(old), path)

    def dies_halfway(obj: object, stream: object) -> None:
        stream.write(b"PK\x03\x04 half a zip file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(_lightning_checkpoint(nn.Linear(3, 2)), path)
    monkeypatch.undo()
    loaded = load_checkpoint_file(path)
    assert torch.equal(loaded["state_dict"]["weight"], old.weight.detach())
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_missing_truncated_and_foreign_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"missing\.ckpt does not exist"):
        load_checkpoint_file(tmp_path / "missing.ckpt")
    with pytest.raises(CheckpointError, match="is not a file"):
        load_checkpoint_file(tmp_path)
    good = tmp_path / "good.ckpt"
    atomic_save(_lightning_checkpoint(nn.Linear(30, 20)), good)
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"truncated\.ckpt is truncated or corrupt") as caught:
        load_checkpoint_file(truncated)
    assert "\n" not in str(caught.value)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a Lightning checkpoint"):
        load_checkpoint_file(foreign)


def test_incompatible_checkpoint_names_the_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "other.ckpt"
    atomic_save(_lightning_checkpoint(nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2))), path)
    with pytest.raises(CheckpointError, match=r"0\.weight \[8, 4\] vs model \[16, 4\]"):
        verify_checkpoint(path, nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 2)))
    with pytest.raises(CheckpointError, match=r"missing 2\.weight, 2\.bias"):
        check_state_dict_fits(
            load_checkpoint_file(path)["state_dict"],
            nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2), nn.Linear(2, 2)),
        )
    verify_checkpoint(path, nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)))


# --------------------------------------------------------------------------- spikeexp-eval

TINY_RUN = [
    "seq_length=8",
    "topology.hidden=[16]",
    "data.batch_size=32",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "test=false",
    "logger=none",
    "callbacks=minimal",
]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished ``spikeexp-train`` run."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("HYDRA_FULL_ERROR", raising=False)
        patch.setattr(sys, "argv", ["spikeexp-train", f"hydra.run.dir={run_dir}", *TINY_RUN])
        run_cli(train_main, resumable=True)
    return run_dir


@pytest.fixture
def eval_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``eval_cli(*arguments)`` runs ``spikeexp-eval <arguments>`` in-process into
    ``tmp_path/eval``; returns ``(exit code or None, stderr)``."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)

    def run(*arguments: str) -> tuple[int | None, str]:
        command = ["spikeexp-eval", f"hydra.run.dir={tmp_path / 'eval'}", *arguments]
        monkeypatch.setattr(sys, "argv", command)
        capsys.readouterr()
        try:
            run_cli(eval_main)
        except SystemExit as exit_:
            return exit_.code, capsys.readouterr().err
        return None, capsys.readouterr().err

    return run


def _eval_error(result: tuple[int | None, str], tmp_path: Path) -> str:
    code, stderr = result
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert not (tmp_path / "eval").exists()
    return lines[0]


def test_eval_refuses_missing_truncated_incompatible_and_malicious_checkpoints(
    trained_run: Path, eval_cli, tmp_path: Path
) -> None:
    run = f"run_dir={trained_run}"
    missing = tmp_path / "missing.ckpt"
    assert f"checkpoint {missing} does not exist" in _eval_error(
        eval_cli(run, f"ckpt_path={missing}"), tmp_path
    )
    good = trained_run / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:1000])
    assert "truncated.ckpt is truncated or corrupt" in _eval_error(
        eval_cli(run, f"ckpt_path={truncated}"), tmp_path
    )
    checkpoint = load_checkpoint_file(good)
    weight = "network.layers.fc1.module.weight"
    checkpoint["state_dict"][weight] = checkpoint["state_dict"][weight][:8]
    other = tmp_path / "other.ckpt"
    atomic_save(checkpoint, other)
    assert f"{weight} [8, 64] vs model [16, 64]" in _eval_error(
        eval_cli(run, f"ckpt_path={other}"), tmp_path
    )
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save(
        {**load_checkpoint_file(good), "payload": _RunsShellCommand(f"touch {marker}")}, evil
    )
    assert "was refused" in _eval_error(eval_cli(f"ckpt_path={evil}"), tmp_path)
    assert "was refused" in _eval_error(eval_cli(run, f"ckpt_path={evil}"), tmp_path)
    # Plain data, but its stored run config would make the eval call os.system.
    config_attack = load_checkpoint_file(good)
    encoder = config_attack["hyper_parameters"]["config"]["encoder"]
    encoder.clear()
    encoder.update({"_target_": "os.system", "_args_": [f"touch {marker}"]})
    attack = tmp_path / "attack.ckpt"
    atomic_save(config_attack, attack)
    assert "names encoder._target_='os.system'" in _eval_error(
        eval_cli(f"ckpt_path={attack}"), tmp_path
    )
    assert not marker.exists()


def test_eval_of_a_good_run_works(trained_run: Path, eval_cli, tmp_path: Path) -> None:
    code, _ = eval_cli(f"run_dir={trained_run}", "checkpoint=last")
    assert code is None
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert 0.0 <= report["metrics"]["test/acc"] <= 1.0


def test_atomic_write_leaves_nothing_when_the_writer_fails(tmp_path: Path) -> None:
    def failing(temporary: Path) -> None:
        temporary.write_bytes(b"half")
        raise RuntimeError("disk full")

    target = tmp_path / "model.bin"
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, failing)
    assert list(tmp_path.iterdir()) == []
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        atomic_write(target, failing)
    assert target.read_bytes() == b"old" and list(tmp_path.iterdir()) == [target]
    atomic_write(target, lambda temporary: temporary.write_bytes(b"new"))
    assert target.read_bytes() == b"new" and list(tmp_path.iterdir()) == [target]
