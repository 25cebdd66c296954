"""End-of-sweep files: best parameters (YAML) and a table of every trial (CSV and Markdown)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import optuna
from omegaconf import OmegaConf
from optuna.trial import FrozenTrial, TrialState

RESULTS_FILE = "optimization_results.yaml"
TRIALS_CSV = "trials.csv"
TRIALS_MD = "trials.md"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def trial_rows(study: optuna.Study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, duration, parameters, job dir, error."""
    trials = sorted(study.get_trials(deepcopy=False), key=lambda trial: trial.number)
    names = sorted({name for trial in trials for name in trial.params})
    rows = []
    for trial in trials:
        duration = trial.duration.total_seconds() if trial.duration else None
        row: dict[str, Any] = {
            "number": trial.number,
            "state": trial.state.name,
            "value": trial.value,
            "duration_s": duration,
        }
        row.update({name: trial.params.get(name) for name in names})
        row["job_dir"] = trial.user_attrs.get("job_dir")
        row["error"] = trial.user_attrs.get("error")
        rows.append(row)
    return rows


def write_trials_table(rows: list[dict[str, Any]], directory: Path) -> None:
    """``trials.csv`` and ``trials.md`` in ``directory``."""
    if not rows:
        return
    columns = list(rows[0])
    with open(directory / TRIALS_CSV, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(
            {key: "" if value is None else value for key, value in row.items()} for row in rows
        )
    lines = [
        "| " + " | ".join(columns) + " |",
        "|" + "|".join("---" for _ in columns) + "|",
    ]
    for row in rows:
        cells = (_cell(row[key]).replace("|", "\\|").replace("\n", " ") for key in columns)
        lines.append("| " + " | ".join(cells) + " |")
    (directory / TRIALS_MD).write_text("\n".join(lines) + "\n")


def _best(study: optuna.Study) -> FrozenTrial | None:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def write_results(study: optuna.Study, storage_url: str, directory: Path) -> dict[str, Any]:
    """``optimization_results.yaml`` (best trial, counts per state) and the trials table."""
    directory.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    best = _best(study)
    results: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": storage_url,
        "direction": study.direction.name.lower(),
        "trials": {
            state.name.lower(): sum(trial.state == state for trial in trials)
            for state in TrialState
        },
        "best_trial": None if best is None else best.number,
        "best_value": None if best is None else best.value,
        "best_params": None if best is None else dict(best.params),
        "best_job_dir": None if best is None else best.user_attrs.get("job_dir"),
    }
    OmegaConf.save(OmegaConf.create(results), directory / RESULTS_FILE)
    write_trials_table(trial_rows(study), directory)
    return results
