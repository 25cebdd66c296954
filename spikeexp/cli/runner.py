"""Command-line error handling of ``spikeexp-train`` and ``spikeexp-eval``.

:func:`run_cli` runs a ``@hydra.main`` function so that bad input ends the program with one line
on stderr and exit code 1::

    $ spikeexp-train neuron=lfi
    error: neuron=lfi is not an option of neuron; valid: iaf, izhikevich, li, lif, ...

Known errors are the ones bad input raises: Hydra composition and override errors, OmegaConf
errors, ``ValueError`` (config, data and checkpoint validation:
:class:`~spikeexp.engine.schema.ConfigError`,
:class:`~spikeexp.runtime.checkpoint.CheckpointError`), ``OSError`` (missing or unreadable files)
and :class:`~spikeexp.callbacks.reliability.NonFiniteLossError`. Anything else is a bug and keeps
its full traceback. With ``HYDRA_FULL_ERROR=1`` every error shows its full traceback.

A fresh run that fails on bad input leaves nothing half-written: :func:`guarded` (called inside
the Hydra task) removes its run directory when it holds only what the run's setup writes (Hydra's
``.hydra/`` and log, the config tree, logger folders, an empty ``checkpoints/``). Resumed runs,
runs stopped by a NaN/inf loss and sweep jobs keep their directories.
"""

from __future__ import annotations

import difflib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.types import RunMode
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from spikeexp.callbacks.reliability import NonFiniteLossError
from spikeexp.cli.resume import resume_arguments

T = TypeVar("T")
KNOWN_ERRORS = (HydraException, OmegaConfBaseException, ValueError, OSError, NonFiniteLossError)
SIGTERM_EXIT_CODE = 143
CLI_MARKER = "SPIKEEXP_CLI_SET_HYDRA_FULL_ERROR"
SETUP_FILES = {
    ".hydra": None,
    "config_tree.log": None,
    "tensorboard": ("events.out.tfevents", "hparams.yaml"),
    "csv": ("metrics.csv", "hparams.yaml"),
    "checkpoints": (),
}
"""What a run writes before training: name -> allowed file name prefixes inside (None: any)."""


def _lines(error: BaseException) -> list[str]:
    return [line.strip() for line in str(error).splitlines() if line.strip()]


def _hydra_message(error: HydraException) -> str:
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options:
        group, _, option = error.missing_cfg_file.rpartition("/")
        if group:
            return (
                f"{group}={option} is not an option of {group}; "
                f"valid: {', '.join(sorted(error.options))}"
            )
    lines = _lines(error)
    if isinstance(error, OverrideParseException):
        reason = next(
            (line for line in lines if not line.startswith(("Error parsing", "See "))), ""
        )
        return f"cannot parse override {error.override!r}: {reason} (syntax: key=value, +key=value)"
    if lines and lines[0].startswith("Could not override '") and error.__cause__ is not None:
        key = lines[0].split("'")[1]
        cause = _lines(error.__cause__)
        if cause and "not in struct" in cause[0]:
            return _unknown_key_message(key, error.__cause__)
        return f"cannot override {key}: {cause[0] if cause else ''}"
    cause = _lines(error.__cause__) if error.__cause__ is not None else []
    return "; ".join([*lines[:2], *cause[:1]])


def _unknown_key_message(key: str, cause: BaseException) -> str:
    """``unknown key a.b; did you mean ...? valid keys of a: ...`` from OmegaConf's error."""
    parent = getattr(cause, "parent_node", None)
    missing = getattr(cause, "key", None)
    valid = [k for k in parent if k != "hydra"] if isinstance(parent, DictConfig) else []
    if not valid or not isinstance(missing, str):
        return f"unknown key {key} (to add a new key use +{key}=...)"
    prefix = str(getattr(cause, "full_key", key)).rpartition(".")[0]
    parts = [f"unknown key {key}"]
    guess = difflib.get_close_matches(missing, valid, n=1)
    if guess:
        parts.append(f"did you mean {prefix + '.' if prefix else ''}{guess[0]}?")
    parts.append(
        f"valid keys of {prefix or 'the config'}: {', '.join(valid)} "
        f"(to add a new key use +{key}=...)"
    )
    return "; ".join(parts)


def one_line(error: BaseException) -> str:
    """A known error as one line (see the module docstring)."""
    if isinstance(error, HydraException):
        return _hydra_message(error)
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.strerror}: {error.filename}"
    lines = _lines(error)
    return lines[0] if lines else type(error).__name__


def _only_setup_files(run_dir: Path) -> bool:
    for entry in run_dir.iterdir():
        if entry.is_file() and entry.suffix == ".log":
            continue
        if entry.name not in SETUP_FILES:
            return False
        allowed = SETUP_FILES[entry.name]
        if allowed is None:
            continue
        if not entry.is_dir():
            return False
        for file in entry.rglob("*"):
            if file.is_file() and not file.name.startswith(allowed):
                return False
    return True


def remove_half_written_run(run_dir: Path) -> bool:
    """Remove ``run_dir`` if it holds only what a run's setup writes; return whether it did."""
    if not run_dir.is_dir() or not _only_setup_files(run_dir):
        return False
    shutil.rmtree(run_dir, ignore_errors=True)
    return True


class _KnownJobError(SystemExit):
    """Carries a known error of a single run out of Hydra, which would otherwise catch it and
    print its own report (it lets ``SystemExit`` through)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(1)
        self.error = error


def guarded(task: Callable[[DictConfig], T], config: DictConfig) -> T:
    """Run the Hydra task ``task(config)`` of a single run (call it inside ``@hydra.main``).

    On a known error of a fresh run (no ``resume``), a run directory holding only what the setup
    writes is removed; the error then reaches :func:`run_cli`, which reports it in one line.
    Sweep jobs (``-m``) re-raise unchanged, so Hydra and the sweeper record the failure.
    """
    try:
        return task(config)
    except KNOWN_ERRORS as error:
        hydra = HydraConfig.get() if HydraConfig.initialized() else None
        if hydra is None or hydra.mode != RunMode.RUN:
            raise
        fresh = not config.get("resume")
        if fresh and not isinstance(error, NonFiniteLossError) and hydra.runtime.output_dir:
            remove_half_written_run(Path(hydra.runtime.output_dir))
        raise _KnownJobError(error) from error


@contextmanager
def _hydra_raises() -> Iterator[None]:
    """Make Hydra re-raise errors instead of printing its own (multi-line) report.

    Child processes (DDP ranks re-running the command) inherit the variable; the marker tells
    their :func:`run_cli` that the user did not ask for full tracebacks.
    """
    previous = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    os.environ[CLI_MARKER] = "1"
    try:
        yield
    finally:
        del os.environ[CLI_MARKER]
        if previous is None:
            del os.environ["HYDRA_FULL_ERROR"]
        else:
            os.environ["HYDRA_FULL_ERROR"] = previous


def run_cli(hydra_main: Callable[[], Any], resumable: bool = False) -> None:
    """Run ``hydra_main`` (a ``@hydra.main`` function) as a command.

    Known errors print ``error: <one line>`` to stderr and exit with code 1 (full traceback with
    ``HYDRA_FULL_ERROR=1``); SIGTERM exits with code 143 after the checkpoint is saved. With
    ``resumable``, ``resume=<run_dir>`` on the command line resumes that run
    (:mod:`spikeexp.cli.resume`).
    """
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1" and CLI_MARKER not in os.environ
    try:
        if resumable:
            rewritten = resume_arguments(sys.argv[1:])
            if rewritten is not None:
                sys.argv = [sys.argv[0], *rewritten]
        with _hydra_raises():
            hydra_main()
    except SIGTERMException:
        sys.exit(SIGTERM_EXIT_CODE)
    except (_KnownJobError, *KNOWN_ERRORS) as caught:
        error = caught.error if isinstance(caught, _KnownJobError) else caught
        if full_error:
            raise error.with_traceback(error.__traceback__) from error.__cause__
        print(f"error: {one_line(error)}", file=sys.stderr)
        sys.exit(1)
