"""Grid sweeps: every job ends up in summary.csv / summary.md; a failing job does not stop the
sweep."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from spikeexp.cli.sweep_summary import (
    JOB_RECORD,
    SweepOutcome,
    SweepSummary,
    summary_rows,
    take_sweep_outcome,
)

APP = Path(__file__).parents[1] / "sweep_app.py"
SUMMARY = "+hydra.callbacks.summary._target_=spikeexp.cli.sweep_summary.SweepSummary"
TINY_TRAINING = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "logger=none",
]


def run(
    command: list[str], cwd: Path, timeout: int = 600, code: int = 0
) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )
    assert result.returncode == code, result.stdout + result.stderr
    return result


def read_summary(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def test_summary_lists_every_job_and_failures_do_not_stop_the_sweep(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run(
        [
            sys.executable,
            str(APP),
            "-m",
            SUMMARY,
            "x=0,3,1",
            "y=a,b",
            "fail_above=2",
            "tolerate_failures=true",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
    )
    rows = read_summary(sweep_dir)
    assert [row["job"] for row in rows] == [str(n) for n in range(6)]
    assert list(rows[0])[:4] == ["job", "status", "x", "y"]
    for row in rows:
        job_dir = sweep_dir / row["job"]
        result = json.loads((job_dir / "result.json").read_text())
        assert (float(row["x"]), row["y"]) == (result["x"], result["y"])
        assert float(row["wall_time_s"]) > 0
        if result["x"] > 2:
            assert row["status"] == "failed"
            assert row["error"] == "RuntimeError: x=3 is above 2"
            assert "Traceback" in (job_dir / "job_error.txt").read_text()
            assert row["value"] == ""
        else:
            assert row["status"] == "completed" and row["error"] == ""
            assert float(row["value"]) == result["value"]
            assert float(row["val/value"]) == result["value"]
            assert float(row["test/value"]) == result["value"] + 0.5
    assert "val/extra/ignored" not in rows[0]
    markdown = (sweep_dir / "summary.md").read_text().splitlines()
    assert len(markdown) == 2 + 6 and "| 2 | failed | 3 | a |" in markdown[2 + 2]


def test_summary_rows_union_of_override_keys() -> None:
    records = [
        {"job": 0, "status": "completed", "overrides": {"a": "1"}, "value": 1.0,
         "metrics": {"val/acc": 0.5}, "wall_time_s": 1.0, "error": ""},
        {"job": 1, "status": "failed", "overrides": {"b": "x"}, "value": None,
         "metrics": {}, "wall_time_s": 2.0, "error": "E: boom"},
    ]  # fmt: skip
    rows = summary_rows(records)
    assert list(rows[0]) == ["job", "status", "a", "b", "value", "val/acc", "wall_time_s", "error"]
    assert rows[1]["a"] == "" and rows[1]["b"] == "x" and rows[1]["val/acc"] is None


@pytest.mark.slow
@pytest.mark.ci
def test_spikeexp_train_grid_sweep_summary(tmp_path: Path) -> None:
    """The grid of the README (smaller): a failing job (lr < 0) is recorded, the rest train."""
    sweep_dir = tmp_path / "sweep"
    run(
        [
            "spikeexp-train",
            "-m",
            "neuron=lif,lsnn",
            "optimizer.lr=1e-3,-1",
            *TINY_TRAINING,
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=tmp_path,
        code=2,  # some jobs failed
    )
    rows = read_summary(sweep_dir)
    assert [(row["neuron"], row["optimizer.lr"]) for row in rows] == [
        ("lif", "0.001"),
        ("lif", "-1"),
        ("lsnn", "0.001"),
        ("lsnn", "-1"),
    ]
    for row in rows:
        if row["optimizer.lr"] == "-1":
            assert row["status"] == "failed" and "learning rate" in row["error"]
        else:
            metrics = json.loads((sweep_dir / row["job"] / "metrics.json").read_text())
            assert row["status"] == "completed"
            assert float(row["val/acc"]) == metrics["val/acc"]
            assert float(row["test/acc"]) == metrics["test/acc"]
            assert float(row["value"]) == metrics["val/acc"]


def _write_record(folder: Path, job: int, status: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    error = "" if status == "completed" else "E: boom"
    record = {"job": job, "status": status, "overrides": {"x": str(job)}, "value": None,
              "metrics": {}, "wall_time_s": 1.0, "error": error}  # fmt: skip
    (folder / JOB_RECORD).write_text(json.dumps(record))


def test_the_outcome_counts_the_jobs_of_this_invocation_only(tmp_path: Path) -> None:
    """A continued study or a sweep re-run into the same folder: older failed jobs stay in the
    summary but do not decide the exit code."""
    _write_record(tmp_path / "0", 0, "failed")
    _write_record(tmp_path / "1", 1, "failed")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
    callback = SweepSummary()
    callback.on_multirun_start(config)
    time.sleep(0.01)
    _write_record(tmp_path / "1", 1, "completed")  # re-run
    _write_record(tmp_path / "2", 2, "completed")  # new
    callback.on_multirun_end(config)
    assert take_sweep_outcome() == SweepOutcome(jobs=2, failed=0, summary=tmp_path / "summary.md")
    assert take_sweep_outcome() is None
    assert [row["status"] for row in read_summary(tmp_path)] == ["failed", "completed", "completed"]
