"""The one lookup of a run's checkpoint and config (eval, plot, export and resume use it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from spikeexp.runtime.checkpoint import CheckpointError
from spikeexp.runtime.run_files import find_checkpoint, locate_run, offline_config


def _save(path: Path, best: str | None = None, config: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    callbacks = {"ModelCheckpoint{'monitor': 'val/acc'}": {"best_model_path": best}} if best else {}
    hyper = {"config": config} if config is not None else {}
    torch.save({"state_dict": {}, "callbacks": callbacks, "hyper_parameters": hyper}, path)


def test_best_is_the_recorded_file_found_by_name_and_last_is_last_ckpt(tmp_path: Path) -> None:
    folder = tmp_path / "run" / "checkpoints"
    _save(folder / "best-epoch003.ckpt")
    # The run was moved: the recorded path points elsewhere, the file name still matches.
    _save(folder / "last.ckpt", best="/old/place/checkpoints/best-epoch003.ckpt")
    assert find_checkpoint(tmp_path / "run", "best") == folder / "best-epoch003.ckpt"
    assert find_checkpoint(tmp_path / "run", "last") == folder / "last.ckpt"


def test_best_falls_back_to_last_when_none_was_recorded(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    _save(folder / "last.ckpt", best=str(folder / "best-epoch009.ckpt"))  # recorded, but gone
    assert find_checkpoint(tmp_path) == folder / "last.ckpt"


def test_missing_checkpoints_and_bad_choices_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"last\.ckpt does not exist"):
        find_checkpoint(tmp_path, "last")
    with pytest.raises(
        CheckpointError, match=r"checkpoint must be one of best, last \(got 'top'\)"
    ):
        find_checkpoint(tmp_path, "top")
    with pytest.raises(CheckpointError, match="give run_dir=<run folder> or ckpt_path="):
        locate_run(None, None)


def test_a_run_dir_config_comes_from_hydra_else_from_the_checkpoint(tmp_path: Path) -> None:
    stored = {"seed": 3, "optimizer": {"_target_": "torch.optim.SGD", "lr": 0.1}}
    _save(tmp_path / "checkpoints" / "last.ckpt", config=stored)
    assert locate_run(tmp_path, None, "last") == (stored, tmp_path / "checkpoints" / "last.ckpt")
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": "${other}"}))
    config, _ = locate_run(tmp_path, None, "last")
    assert config == {"seed": "${other}"}  # unresolved: overrides may still change `other`


def test_a_checkpoint_config_naming_foreign_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.ckpt"
    _save(path, config={"data": {"_target_": "os.system"}})
    with pytest.raises(CheckpointError, match=r"data\._target_='os.system'"):
        locate_run(None, path)


def test_offline_config_redirects_outputs_and_drops_run_callbacks(tmp_path: Path) -> None:
    config = {
        "seq_length": 4,
        "encoder": {"seq_length": "${seq_length}"},
        "paths": {"output_dir": "${hydra:runtime.output_dir}"},
        "trainer": {"default_root_dir": "${paths.output_dir}"},
        "logger": {"tensorboard": {}},
        "callbacks": {"spike_plots": {}},
    }
    ready = offline_config(config, tmp_path, {"seq_length": 9})
    assert ready["encoder"]["seq_length"] == 9
    assert ready["trainer"]["default_root_dir"] == str(tmp_path)
    assert ready["logger"] is None and ready["callbacks"] is None
