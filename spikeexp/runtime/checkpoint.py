"""Checkpoint files: written atomically, loaded safely, checked before use.

* :func:`atomic_save` writes to a temporary file in the target's folder, flushes and ``fsync``\\ s
  it, then renames it over the target (``os.replace``, atomic on POSIX): a crash or a kill while
  saving leaves the previous checkpoint intact, never a truncated one.
* :func:`load_checkpoint_file` always uses ``torch.load(weights_only=True)``: a checkpoint may only
  hold tensors, numbers, strings and containers. A file whose pickle would import or call anything
  else (e.g. ``os.system`` through ``__reduce__``) is refused before any of it runs.
* :class:`SafeCheckpointIO` is the Lightning plugin that makes every save of a run atomic and
  every load (resume, ``trainer.test(ckpt_path=...)``) safe, whatever the caller asked for.
* :func:`verify_checkpoint` checks that a checkpoint fits a module (same parameter names and
  shapes) and turns every problem into a one-line :class:`CheckpointError`.
* :func:`check_config_targets` refuses a run config stored in a checkpoint whose ``_target_``
  entries point outside this project, torch optimisers and Lightning (a checkpoint never picks
  the code that runs).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.types import _MAP_LOCATION_TYPE, _PATH
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from spikeexp.runtime.atomic import atomic_write

MAX_LISTED = 3


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, unsafe or does not fit the model (one-line message)."""


def atomic_save(checkpoint: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Save ``checkpoint`` with ``torch.save`` so that ``path`` is either old or complete.

    The bytes go to a temporary file in the same folder, synced to disk before it replaces
    ``path`` (:func:`spikeexp.runtime.atomic.atomic_write`).
    """

    def write(temporary: Path) -> None:
        # os.open with O_EXCL (not mkstemp) so that the file gets the usual umask-based
        # permissions.
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(handle, "wb") as stream:
            torch.save(checkpoint, stream)

    atomic_write(path, write)


def load_checkpoint_file(
    path: str | os.PathLike[str], map_location: _MAP_LOCATION_TYPE = "cpu"
) -> dict[str, Any]:
    """Load a Lightning checkpoint with ``weights_only=True``; one-line :class:`CheckpointError`.

    Raises:
        CheckpointError: the file is missing, not a file, unreadable, truncated or corrupt, holds
            pickled objects other than plain data (refused without running them), or is not a
            Lightning checkpoint (no ``state_dict`` entry).
    """
    file = Path(path)
    if not file.exists():
        raise CheckpointError(f"checkpoint {file} does not exist")
    if not file.is_file():
        raise CheckpointError(f"checkpoint {file} is not a file")
    try:
        checkpoint = torch.load(file, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = str(error).strip().splitlines()
        detail = next((line for line in reason if "Unsupported global" in line), "")
        raise CheckpointError(
            f"checkpoint {file} was refused: it holds pickled objects other than tensors and plain "
            f"data, and loading it would run code from the file"
            + (f" ({detail.strip()})" if detail else "")
        ) from None
    except PermissionError as error:
        raise CheckpointError(f"checkpoint {file} is not readable ({error.strerror})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"checkpoint {file} is truncated or corrupt ({first})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise CheckpointError(f"checkpoint {file} is not a Lightning checkpoint (no state_dict)")
    return checkpoint


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_LISTED])
    return shown + (f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else "")


def check_state_dict_fits(
    state_dict: Mapping[str, Any], module: nn.Module, source: str = "checkpoint"
) -> None:
    """Raise :class:`CheckpointError` unless ``state_dict`` has exactly ``module``'s entries with
    the same shapes (the message names the first mismatches)."""
    expected = module.state_dict()
    missing = [name for name in expected if name not in state_dict]
    unexpected = [name for name in state_dict if name not in expected]
    problems = []
    if missing:
        problems.append(f"missing {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected {_listing(unexpected)}")
    shapes = [
        f"{name} {list(state_dict[name].shape)} vs model {list(value.shape)}"
        for name, value in expected.items()
        if isinstance(value, torch.Tensor)
        and isinstance(state_dict.get(name), torch.Tensor)
        and state_dict[name].shape != value.shape
    ]
    if shapes:
        problems.append(f"shape mismatch {_listing(shapes)}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit the configured model ({'; '.join(problems)}); was it written "
            f"with another neuron, encoder or topology config?"
        )


def verify_checkpoint(path: str | os.PathLike[str], module: nn.Module) -> dict[str, Any]:
    """Load ``path`` safely and check that it fits ``module``; return the checkpoint dict."""
    checkpoint = load_checkpoint_file(path)
    check_state_dict_fits(checkpoint["state_dict"], module, source=f"checkpoint {path}")
    return checkpoint


# Lightning's ddp_spawn launcher writes the trained weights of rank 0 to this file name.
SPAWN_WEIGHTS_FILE = ".temp.ckpt"


TRUSTED_TARGET_PREFIXES = ("spikeexp.", "torch.optim.", "lightning.pytorch.")
"""Modules a config stored *inside a checkpoint* may name as ``_target_`` (what the shipped
config groups use); a checkpoint is data from elsewhere and must not choose code to run."""


def check_config_targets(config: Any, source: str, key: str = "") -> None:
    """Raise :class:`CheckpointError` if the config ``config`` taken from a checkpoint names a
    ``_target_`` outside :data:`TRUSTED_TARGET_PREFIXES` (checked before anything is built)."""
    if isinstance(config, Mapping):
        target = config.get("_target_")
        if target is not None and not str(target).startswith(TRUSTED_TARGET_PREFIXES):
            raise CheckpointError(
                f"{source}: its stored config names {key or 'the root'}._target_={target!r}, "
                f"outside {', '.join(TRUSTED_TARGET_PREFIXES)}; refusing to build it (use "
                f"run_dir=<the run folder> to evaluate with the run's own config)"
            )
        for name, value in config.items():
            check_config_targets(value, source, f"{key}.{name}" if key else str(name))
    elif isinstance(config, (list, tuple)):
        for index, value in enumerate(config):
            check_config_targets(value, source, f"{key}[{index}]")


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O: atomic saves, ``weights_only=True`` loads, one-line errors.

    Pass it as ``Trainer(plugins=[SafeCheckpointIO()])``. Loading ignores a request for
    ``weights_only=False``: checkpoints of this project hold plain data only.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        atomic_save(checkpoint, path)

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: _MAP_LOCATION_TYPE = None,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        if Path(path).name == SPAWN_WEIGHTS_FILE:
            # ddp_spawn hands rank 0's weights to the main process as a bare state_dict.
            return torch.load(path, map_location=map_location, weights_only=True)
        return load_checkpoint_file(path, map_location=map_location)
