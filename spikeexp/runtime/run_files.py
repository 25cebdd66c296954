"""The files of a finished (or stopped) run: the one place that finds its checkpoint and config.

A run directory of ``spikeexp-train`` holds ``.hydra/config.yaml`` (the composed config) and
``checkpoints/`` with ``last.ckpt`` (saved at every epoch end, every N steps and on SIGTERM) and
the best checkpoint on ``optimized_metric``, whose path the checkpoint callback records inside
``last.ckpt``. :func:`find_checkpoint` and :func:`run_config` serve ``spikeexp-eval``,
``spikeexp-plot``, ``spikeexp-export`` and ``spikeexp-train resume=...`` alike; every checkpoint
is read through the safe loader (:func:`spikeexp.runtime.checkpoint.load_checkpoint_file`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from spikeexp.runtime.checkpoint import (
    CheckpointError,
    check_config_targets,
    load_checkpoint_file,
)

CHECKPOINT_CHOICES = ("best", "last")
LAST_CHECKPOINT = "last.ckpt"
CONFIG_FILE = Path(".hydra") / "config.yaml"


def _check_choice(which: str) -> None:
    if which not in CHECKPOINT_CHOICES:
        raise CheckpointError(
            f"checkpoint must be one of {', '.join(CHECKPOINT_CHOICES)} (got {which!r})"
        )


def checkpoint_folder(run_dir: Path) -> Path:
    """``<run_dir>/checkpoints``."""
    return Path(run_dir) / "checkpoints"


def find_checkpoint(run_dir: str | Path, which: str = "best") -> Path:
    """The ``best`` or ``last`` checkpoint of ``run_dir``.

    ``last`` is ``checkpoints/last.ckpt``. ``best`` is the file the run's ``ModelCheckpoint``
    recorded as best (looked up by name in ``checkpoints/``, so a moved run folder works), and
    ``last.ckpt`` when the run recorded none.

    Raises:
        CheckpointError: ``which`` is not best/last, or the run saved no checkpoint yet.
    """
    _check_choice(which)
    folder = checkpoint_folder(Path(run_dir))
    last = folder / LAST_CHECKPOINT
    if not last.is_file():
        raise CheckpointError(
            f"{last} does not exist (the run stopped before its first checkpoint, or "
            f"{run_dir} is not a spikeexp-train run)"
        )
    if which == "last":
        return last
    for state in load_checkpoint_file(last).get("callbacks", {}).values():
        best = state.get("best_model_path") if isinstance(state, Mapping) else None
        if best and (folder / Path(best).name).is_file():
            return folder / Path(best).name
    return last


def run_config(run_dir: str | Path) -> dict[str, Any]:
    """The composed config a run saved (``<run_dir>/.hydra/config.yaml``), unresolved."""
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (is {run_dir} a spikeexp-train run?)")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


def checkpoint_config(checkpoint: str | Path) -> dict[str, Any]:
    """The resolved run config stored inside a checkpoint, refused if it names code outside this
    project (:func:`~spikeexp.runtime.checkpoint.check_config_targets`)."""
    stored = load_checkpoint_file(checkpoint).get("hyper_parameters", {}).get("config")
    if not isinstance(stored, Mapping) or not stored:
        raise CheckpointError(
            f"{checkpoint} holds no run config; use run_dir=<its run folder> instead"
        )
    check_config_targets(stored, str(checkpoint))
    return dict(stored)


def locate_run(
    run_dir: str | Path | None, ckpt_path: str | Path | None, which: str = "best"
) -> tuple[dict[str, Any], Path]:
    """The config and checkpoint selected by ``run_dir`` and/or ``ckpt_path``.

    With ``run_dir`` the run's own saved config (``.hydra/config.yaml``; for a run started from
    Python without Hydra, the config stored in the checkpoint) and its ``which`` checkpoint (or
    ``ckpt_path`` when given too); with ``ckpt_path`` alone the config stored in that checkpoint.
    """
    if run_dir is None and ckpt_path is None:
        raise CheckpointError("give run_dir=<run folder> or ckpt_path=<checkpoint file>")
    _check_choice(which)
    if run_dir is not None and not Path(run_dir).is_dir():
        raise CheckpointError(f"run_dir {run_dir} does not exist")
    if run_dir is not None:
        checkpoint = Path(ckpt_path) if ckpt_path is not None else find_checkpoint(run_dir, which)
        if (Path(run_dir) / CONFIG_FILE).is_file():
            return run_config(run_dir), checkpoint
        return checkpoint_config(checkpoint), checkpoint
    return checkpoint_config(ckpt_path), Path(ckpt_path)


def offline_config(
    config: Mapping[str, Any], output_dir: str | Path, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A run's config made ready to rebuild its model in another command, resolved to plain data:
    ``extra`` merged on top, ``paths.output_dir`` set to ``output_dir``, and the run's loggers
    and callbacks left out (they belong to the training run)."""
    merged = OmegaConf.merge(OmegaConf.create(dict(config)), OmegaConf.create(dict(extra or {})))
    merged.paths = {"output_dir": str(output_dir)}
    merged.logger = None
    merged.callbacks = None
    return OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
