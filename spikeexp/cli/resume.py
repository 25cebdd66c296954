"""``spikeexp-train resume=<run_dir>``: continue a stopped run in its own directory.

A resumed run uses the run's saved config (``<run_dir>/.hydra/config.yaml``), writes into the same
directory (Hydra's ``hydra.run.dir``), restores model, optimiser, scheduler, loop progress, data
order and encoder generators from ``<run_dir>/checkpoints/last.ckpt``, and tells the TensorBoard
logger to hide the events the stopped run wrote after that checkpoint (``purge_step``) and drops
those rows from CSV logs, so the curves continue without duplicate steps.

Command-line overrides next to ``resume=`` are refused unless they cannot change the experiment:
see :data:`SAFE_OVERRIDES`. ``max_epochs`` and ``max_steps`` may only grow.

The command line is rewritten before Hydra sees it (:func:`resume_arguments`)::

    spikeexp-train resume=outputs/2026-01-01/12-00-00 trainer.max_epochs=20
    # becomes
    spikeexp-train --config-path <abs run_dir>/.hydra --config-name config
                   hydra.run.dir=<abs run_dir> ++resume=<abs run_dir>
                   ++trainer.num_sanity_val_steps=0
                   ++logger.tensorboard.purge_step=<step> trainer.max_epochs=20

The previous ``.hydra/*.yaml`` files are kept in ``.hydra/before_resume_<n>/``.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig, OmegaConf

from spikeexp.engine.schema import ConfigError
from spikeexp.runtime.checkpoint import CheckpointError, load_checkpoint_file, verify_checkpoint
from spikeexp.runtime.run_files import find_checkpoint

RESUME_KEY = "resume"


def _at_least_saved(key: str) -> Callable[[Any, Any], str | None]:
    def check(value: Any, saved: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{key} must be an integer (got {value!r})"
        if isinstance(saved, int) and saved >= 0 and 0 <= value < saved:
            return f"{key} may only grow on resume (saved {saved}, got {value})"
        return None

    return check


def _anything(value: Any, saved: Any) -> str | None:
    return None


SAFE_OVERRIDES: dict[str, Callable[[Any, Any], str | None]] = {
    "trainer.max_epochs": _at_least_saved("trainer.max_epochs"),
    "trainer.max_steps": _at_least_saved("trainer.max_steps"),
    "trainer.max_time": _anything,
    "trainer.accelerator": _anything,
    "trainer.devices": _anything,
    "trainer.enable_progress_bar": _anything,
    "data.num_workers": _anything,
    "test": _anything,
    "hydra.verbose": _anything,
}
"""Overrides allowed next to ``resume=``, each with its check against the saved value."""


def _resume_value(arguments: Sequence[str]) -> str | None:
    for argument in arguments:
        if argument.startswith(f"{RESUME_KEY}="):
            return argument.split("=", 1)[1]
    return None


def _saved_value(config: DictConfig, key: str) -> Any:
    return OmegaConf.select(config, key, default=None, throw_on_resolution_failure=False)


def check_safe_overrides(overrides: Sequence[Override], saved: DictConfig) -> None:
    """Raise :class:`ConfigError` on the first override that could change a resumed run."""
    valid = ", ".join(SAFE_OVERRIDES)
    for override in overrides:
        key = override.key_or_group
        if override.is_sweep_override():
            raise ConfigError(f"resume: sweeps cannot be resumed ({override.input_line})")
        check = SAFE_OVERRIDES.get(key)
        if check is None or override.is_delete() or override.is_add():
            raise ConfigError(
                f"resume: {override.input_line} would change the experiment being resumed; "
                f"allowed next to resume=: {valid}"
            )
        problem = check(override.value(), _saved_value(saved, key))
        if problem:
            raise ConfigError(f"resume: {problem}")


def next_logging_step(checkpoint: Mapping[str, Any]) -> int:
    """The logger step of the first batch a run resumed from ``checkpoint`` logs.

    Lightning stores its logging step (``_batches_that_stepped``) before counting the batch a
    checkpoint is saved in, and adds that batch back on restore unless the batch had completed
    (end-of-epoch saves); this mirrors ``_TrainingEpochLoop.reset`` of Lightning 2.x.
    """
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    step = int(loop.get("epoch_loop.state_dict", {}).get("_batches_that_stepped", 0))
    total = loop.get("epoch_loop.batch_progress", {}).get("total", {})
    counts = [total.get(key, 0) for key in ("ready", "started", "processed", "completed")]
    batch_completed = len(set(counts)) == 1
    return step if batch_completed else step + 1


def _logger_purge_overrides(saved: DictConfig, step: int) -> list[str]:
    """``purge_step`` for every TensorBoard logger: events the stopped run wrote from the resumed
    run's first logging ``step`` on are hidden (TensorBoard shows the new ones instead)."""
    loggers = saved.get("logger") or {}
    return [
        f"++logger.{name}.purge_step={step}"
        for name, node in loggers.items()
        if isinstance(node, Mapping) and str(node.get("_target_", "")).endswith("TensorBoardLogger")
    ]


def trim_csv_logs(run_dir: Path, step: int) -> None:
    """Drop the rows with ``step >= step`` from every ``metrics.csv`` of ``run_dir`` (Lightning's
    CSV logger appends; the resumed run logs those steps again)."""
    for path in run_dir.rglob("metrics.csv"):
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
        if not rows or "step" not in rows[0]:
            continue
        column = rows[0].index("step")
        kept = [rows[0]] + [row for row in rows[1:] if not row[column] or float(row[column]) < step]
        if len(kept) < len(rows):
            temporary = path.with_name(f".{path.name}.tmp")
            with temporary.open("w", newline="") as handle:
                csv.writer(handle).writerows(kept)
            os.replace(temporary, path)


def _keep_previous_hydra_files(hydra_dir: Path) -> None:
    number = 1
    while (hydra_dir / f"before_resume_{number}").exists():
        number += 1
    backup = hydra_dir / f"before_resume_{number}"
    backup.mkdir()
    for file in hydra_dir.glob("*.yaml"):
        shutil.copy2(file, backup / file.name)


def resume_arguments(arguments: Sequence[str]) -> list[str] | None:
    """The Hydra command line that resumes the run named by ``resume=<dir>`` in ``arguments``
    (``None`` when there is no ``resume=``). Checks run dir, saved config, checkpoint and overrides
    first; raises :class:`ConfigError` or :class:`CheckpointError` (one line)."""
    value = _resume_value(arguments)
    if value is None:
        return None
    if not value:
        raise ConfigError("resume must be the directory of a run (got an empty value)")
    run_dir = Path(value).expanduser().resolve()
    if not run_dir.is_dir():
        raise ConfigError(f"resume: {run_dir} is not a run directory (it does not exist)")
    saved_file = run_dir / ".hydra" / "config.yaml"
    if not saved_file.is_file():
        raise ConfigError(f"resume: {saved_file} is missing; is {run_dir} a spikeexp-train run?")
    others = [a for a in arguments if not a.startswith(f"{RESUME_KEY}=")]
    flags = [a for a in others if a.startswith("-")]
    if flags:
        raise ConfigError(f"resume: {' '.join(flags)} cannot be combined with resume=")
    saved = OmegaConf.load(saved_file)
    check_safe_overrides(OverridesParser.create().parse_overrides(others), saved)
    try:
        checkpoint = load_checkpoint_file(find_checkpoint(run_dir, "last"))
    except CheckpointError as error:
        raise CheckpointError(f"resume: {error}") from None
    _keep_previous_hydra_files(run_dir / ".hydra")
    step = next_logging_step(checkpoint)
    trim_csv_logs(run_dir, step)
    return [
        "--config-path",
        str(run_dir / ".hydra"),
        "--config-name",
        "config",
        f"hydra.run.dir={run_dir}",
        f"++{RESUME_KEY}={run_dir}",
        # Lightning skips its sanity validation when resuming mid-epoch but not at an epoch end;
        # it would draw from stochastic encoders' generators and shift the resumed stream.
        "++trainer.num_sanity_val_steps=0",
        *_logger_purge_overrides(saved, step),
        *others,
    ]


def checkpoint_to_resume(config: Mapping[str, Any], module: Any) -> str | None:
    """The checkpoint ``trainer.fit`` continues from (``None`` for a fresh run), checked to fit
    ``module`` (one-line :class:`CheckpointError` otherwise)."""
    run_dir = config.get(RESUME_KEY)
    if not run_dir:
        return None
    try:
        path = find_checkpoint(run_dir, "last")
        verify_checkpoint(path, module)
    except CheckpointError as error:
        raise CheckpointError(f"resume: {error}") from None
    return str(path)
