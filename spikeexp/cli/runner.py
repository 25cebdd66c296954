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

Sweeps (``-m``): a failing job does not stop the sweep. :func:`record_job_failure` prints one line
for it on stderr, naming the job, its overrides, the one-line error and the job's log file, which
gets the traceback::

    error: job 1 (seed=1 trainer.max_epochs=abc) failed: trainer.max_epochs must be an integer
    (got 'abc'); ... [traceback: outputs/multirun/2026-01-01/12-00-00/1/train.log]

When the sweep ends, the summary is written (:mod:`spikeexp.cli.sweep_summary`) and the exit code
says how the jobs of this invocation ended (:data:`SWEEP_EXIT_CODES`): 0 when every job
completed, 1 when every job failed, 2 when some failed; with failures, a last line
``error: 1 of 4 jobs failed; summary: <sweep dir>/summary.md``.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import sys
import traceback
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
from spikeexp.cli.sweep_summary import (
    HIDDEN_OVERRIDE_KEYS,
    JOB_ERROR,
    SweepOutcome,
    take_sweep_outcome,
)

T = TypeVar("T")
KNOWN_ERRORS = (HydraException, OmegaConfBaseException, ValueError, OSError, NonFiniteLossError)
SIGTERM_EXIT_CODE = 143
SWEEP_EXIT_CODES = {"all failed": 1, "some failed": 2}
"""Exit codes of a sweep with failed jobs (jobs of this invocation only; 0 when none failed)."""
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
    first = lines[0] if lines else type(error).__name__
    key = getattr(error, "full_key", None) if isinstance(error, OmegaConfBaseException) else None
    if key and not first.startswith(str(key)):
        return f"{key}: {first}"  # where OmegaConf met the problem, e.g. an unknown interpolation
    return first


def job_error_line(error: BaseException) -> str:
    """The one line of a job's error: :func:`one_line` for known errors, prefixed with the
    error's type for anything else (a bug)."""
    line = one_line(error)
    return line if isinstance(error, KNOWN_ERRORS) else f"{type(error).__name__}: {line}"


def _job_overrides() -> str:
    hidden = tuple(HIDDEN_OVERRIDE_KEYS)
    overrides = [
        override
        for override in HydraConfig.get().overrides.task
        if not override.lstrip("+~").startswith(hidden)
    ]
    return " ".join(overrides)


def _log_to_files(record: logging.LogRecord) -> list[str]:
    """Hand ``record`` to the file handlers of the root logger only (the job's log file under
    Hydra's job logging); return their paths."""
    paths = []
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
            paths.append(handler.baseFilename)
    return paths


def record_job_failure(error: BaseException) -> None:
    """Report the failure of a sweep job (call it in the job, in place of raising).

    The traceback goes to the job's log file (and ``job_error.txt``, whose last line is the
    one-line error, read by the sweep summary and the Optuna sweeper); stderr gets one line
    naming the job, its overrides, the error and where the traceback is.
    """
    hydra = HydraConfig.get()
    output_dir = Path(hydra.runtime.output_dir)
    line = job_error_line(error)
    output_dir.mkdir(parents=True, exist_ok=True)
    details = "".join(traceback.format_exception(error))
    (output_dir / JOB_ERROR).write_text(f"{details}{line}\n")
    record = logging.getLogger(__name__).makeRecord(
        __name__, logging.ERROR, __file__, 0, "job failed: %s", (line,), None
    )
    record.exc_text = details.rstrip()
    logs = _log_to_files(record)
    where = logs[0] if logs else str(output_dir / JOB_ERROR)
    write_whole_line(
        f"error: job {hydra.job.num} ({_job_overrides()}) failed: {line} [traceback: {where}]"
    )


def write_whole_line(text: str) -> None:
    """Write ``text`` and its newline to stderr in one ``write`` call.

    Parallel launchers (joblib) run jobs in processes sharing one stderr pipe. Python's stderr
    writes through, so ``print`` would send the text and its newline as two writes and lines of
    different jobs could interleave; one write of at most ``PIPE_BUF`` bytes (4096 on Linux)
    reaches the pipe whole.
    """
    sys.stderr.write(f"{text}\n")
    sys.stderr.flush()


def sweep_exit(outcome: SweepOutcome) -> None:
    """End a finished sweep with the exit code of :data:`SWEEP_EXIT_CODES`."""
    if outcome.failed == 0:
        return
    print(
        f"error: {outcome.failed} of {outcome.jobs} jobs failed; summary: {outcome.summary}",
        file=sys.stderr,
    )
    sys.exit(SWEEP_EXIT_CODES["all failed" if outcome.failed == outcome.jobs else "some failed"])


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
    ``HYDRA_FULL_ERROR=1``); SIGTERM exits with code 143 after the checkpoint is saved; a sweep
    exits as :func:`sweep_exit` says. With ``resumable``, ``resume=<run_dir>`` on the command
    line resumes that run (:mod:`spikeexp.cli.resume`).
    """
    full_error = os.environ.get("HYDRA_FULL_ERROR") == "1" and CLI_MARKER not in os.environ
    try:
        if resumable:
            rewritten = resume_arguments(sys.argv[1:])
            if rewritten is not None:
                sys.argv = [sys.argv[0], *rewritten]
        take_sweep_outcome()
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
    outcome = take_sweep_outcome()
    if outcome is not None:
        sweep_exit(outcome)
