"""Sweep summaries: one row per job (overrides, final metrics, wall time, status).

``SweepSummary`` is a Hydra callback (``hydra.callbacks`` in ``conf/train.yaml``). In a multirun,
each job writes ``sweep_job.json`` into its own output directory when it ends (this works with
every launcher: jobs may run in other processes or on other machines), and when the sweep ends
the records under the sweep directory become ``summary.csv`` and ``summary.md``.

A failing job must not abort the sweep: Hydra's basic sweeper re-raises the first job exception
after the batch, which would also skip the summary. ``spikeexp-train`` therefore catches the
exception of a job in a multirun (:func:`is_multirun`), reports it with
:func:`spikeexp.cli.runner.record_job_failure` (one line on stderr, the traceback in the job's log
and in ``job_error.txt``, whose last line is the one-line error) and returns ``None``; the job
appears as ``failed`` with its error. A job that returns no finite value of the optimized metric
counts as failed too.

The callback also keeps the outcome of the jobs this invocation ran (records written since the
sweep started: a continued Optuna study or a sweep re-run into the same directory lists older jobs
in its summary too) for the command's exit code (:func:`take_sweep_outcome`,
:func:`spikeexp.cli.runner.sweep_exit`).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

log = logging.getLogger(__name__)

JOB_RECORD = "sweep_job.json"
JOB_ERROR = "job_error.txt"
METRICS_FILE = "metrics.json"
SUMMARY_CSV = "summary.csv"
SUMMARY_MD = "summary.md"
# Overrides under these keys are plumbing, not hyper-parameters (the Optuna trial handle).
HIDDEN_OVERRIDE_KEYS = ("optuna_trial",)


def is_multirun() -> bool:
    """Whether the current Hydra job is one job of a multirun (``-m``)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


@dataclass(frozen=True)
class SweepOutcome:
    """How the jobs of one sweep invocation ended.

    Attributes:
        jobs: jobs this invocation ran.
        failed: those of them that failed.
        summary: the summary file (``summary.md`` in the sweep directory).
    """

    jobs: int
    failed: int
    summary: Path


_last_outcome: SweepOutcome | None = None


def take_sweep_outcome() -> SweepOutcome | None:
    """The outcome of the sweep that ended last in this process (None if none), forgotten once
    taken."""
    global _last_outcome
    outcome, _last_outcome = _last_outcome, None
    return outcome


def _overrides(lines: list[str]) -> dict[str, str]:
    parser = OverridesParser.create()
    parsed = {}
    for override in parser.parse_overrides(lines):
        key = override.key_or_group
        if key.split(".")[0] in HIDDEN_OVERRIDE_KEYS:
            continue
        parsed[key] = override.input_line.split("=", 1)[1] if "=" in override.input_line else ""
    return parsed


def _final_metrics(output_dir: Path) -> dict[str, float]:
    """``val/<name>`` and ``test/<name>`` from the job's ``metrics.json`` (no per-layer ones)."""
    path = output_dir / METRICS_FILE
    if not path.is_file():
        return {}
    metrics = json.loads(path.read_text())
    return {
        key: value
        for key, value in sorted(metrics.items())
        if key.split("/")[0] in ("val", "test") and key.count("/") == 1
    }


def _outcome(job_return: JobReturn, output_dir: Path) -> tuple[str, float | None, str]:
    """``(status, value, error)`` of a finished job."""
    try:
        value = job_return.return_value
    except Exception as error:
        return "failed", None, f"{type(error).__name__}: {error}"
    error_file = output_dir / JOB_ERROR
    if error_file.is_file():
        lines = error_file.read_text().strip().splitlines()
        return "failed", None, lines[-1] if lines else "unknown error"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "failed", None, f"returned {value!r} (no optimized metric)"
    if not math.isfinite(number):
        return "failed", None, f"returned {number} (no finite optimized metric)"
    return "completed", number, ""


class SweepSummary(Callback):
    """Hydra callback writing ``summary.csv`` and ``summary.md`` at the end of a multirun."""

    def __init__(self) -> None:
        self._started: float | None = None
        self._before: dict[Path, int] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._before = _record_times(Path(config.hydra.sweep.dir))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.perf_counter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        hydra_config = job_return.hydra_cfg.hydra
        if hydra_config.mode != RunMode.MULTIRUN:
            return
        output_dir = Path(hydra_config.runtime.output_dir)
        status, value, error = _outcome(job_return, output_dir)
        wall = time.perf_counter() - self._started if self._started is not None else None
        record = {
            "job": hydra_config.job.num,
            "status": status,
            "wall_time_s": None if wall is None else float(f"{wall:.4g}"),
            "overrides": _overrides(list(job_return.overrides or [])),
            "value": value,
            "metrics": _final_metrics(output_dir),
            "error": error,
            "job_dir": str(output_dir),
        }
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / JOB_RECORD).write_text(json.dumps(record, indent=2))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        global _last_outcome
        sweep_dir = Path(config.hydra.sweep.dir)
        records = collect_records(sweep_dir)
        if not records:
            return
        rows = summary_rows(records)
        write_summary(rows, sweep_dir)
        failed = sum(row["status"] != "completed" for row in rows)
        log.info(
            "sweep summary: %d jobs, %d failed -> %s", len(rows), failed, sweep_dir / SUMMARY_MD
        )
        now = _record_times(sweep_dir)
        ran = [
            json.loads(path.read_text())
            for path, written in now.items()
            if self._before.get(path) != written
        ]
        _last_outcome = SweepOutcome(
            jobs=len(ran),
            failed=sum(record["status"] != "completed" for record in ran),
            summary=sweep_dir / SUMMARY_MD,
        )


def _record_times(sweep_dir: Path) -> dict[Path, int]:
    """The job records under ``sweep_dir`` and their modification times (ns)."""
    return {path: path.stat().st_mtime_ns for path in sweep_dir.glob(f"**/{JOB_RECORD}")}


def collect_records(sweep_dir: Path) -> list[dict[str, Any]]:
    """The job records under ``sweep_dir``, ordered by job number."""
    records = [json.loads(path.read_text()) for path in sweep_dir.glob(f"**/{JOB_RECORD}")]
    return sorted(records, key=lambda record: record["job"])


def summary_rows(records: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows: job, status, one column per override key and per metric, wall time, error."""
    override_keys = list(dict.fromkeys(k for r in records for k in r["overrides"]))
    metric_keys = sorted({k for r in records for k in r["metrics"]})
    rows = []
    for record in records:
        row: dict[str, Any] = {"job": record["job"], "status": record["status"]}
        row.update({key: record["overrides"].get(key, "") for key in override_keys})
        row["value"] = record["value"]
        row.update({key: record["metrics"].get(key) for key in metric_keys})
        row["wall_time_s"] = record["wall_time_s"]
        row["error"] = record["error"]
        rows.append(row)
    return rows


def _markdown_cell(value: Any) -> str:
    if value is None:
        return ""
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def write_summary(rows: list[dict[str, Any]], directory: Path) -> None:
    """``summary.csv`` (full precision) and ``summary.md`` (4 significant digits)."""
    columns = list(rows[0])
    with open(directory / SUMMARY_CSV, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_markdown_cell(row[c]) for c in columns) + " |" for row in rows]
    (directory / SUMMARY_MD).write_text("\n".join(lines) + "\n")
