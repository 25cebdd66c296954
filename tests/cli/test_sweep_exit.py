"""A sweep says how its jobs ended: exit code 0 when every job completed, 1 when every job failed,
2 when some failed, the summary written either way; one line per failed job on stderr (job,
overrides, one-line error, log file), the traceback only in the job's log file. Real
``spikeexp-train -m`` processes with the basic sweeper, the joblib launcher and the Optuna sweeper,
started together (each spends most of its time importing)."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spikeexp.cli.runner import write_whole_line

JOB_LINE = re.compile(
    r"^error: job (?P<job>\d+) \((?P<overrides>.*)\) failed: (?P<error>.*) "
    r"\[traceback: (?P<log>.*)\]$"
)
BAD_EPOCHS = "trainer.max_epochs must be an integer (got 'abc'); "
TINY_TRAINING = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "seq_length=4",
    "test=false",
    "logger=none",
    "callbacks=minimal",
]


def _start(arguments: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["OMP_NUM_THREADS"] = "1"
    return subprocess.Popen(
        ["spikeexp-train", "-m", *arguments],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error: ")]


def _check_failed_jobs(
    stderr: str, jobs: dict[int, str], error: str, *, parallel: bool = False
) -> None:
    """One whole line per failed job (``jobs``: number -> an override it names), each naming a
    log file that holds the traceback; in job order unless the jobs ran in ``parallel``."""
    lines = [JOB_LINE.match(line) for line in _error_lines(stderr)[:-1]]
    numbers = [int(m["job"]) for m in lines] if all(lines) else []
    assert (sorted(numbers) if parallel else numbers) == list(jobs), stderr
    for match in lines:
        assert jobs[int(match["job"])] in match["overrides"].split(), match[0]
        assert match["error"].startswith(error), match[0]
        log = Path(match["log"]).read_text()
        assert "Traceback (most recent call last)" in log and match["error"] in log


def _summary(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "summary.csv") as handle:
        return list(csv.DictReader(handle))


def _run_together(sweeps: dict[str, list[str]], folder: Path) -> dict[str, tuple[int, str]]:
    """Start every sweep at once; ``name -> (exit code, stderr)``; no traceback on the console."""
    processes = {
        name: _start([*arguments, f"hydra.sweep.dir={folder / name}"], folder)
        for name, arguments in sweeps.items()
    }
    results = {}
    for name, process in processes.items():
        stdout, stderr = process.communicate(timeout=600)
        assert "Traceback" not in stdout + stderr, (name, stdout, stderr)
        results[name] = (process.returncode, stderr)
    return results


def _check_all_failed(
    folder: Path, name: str, code: int, stderr: str, jobs: dict, *, parallel: bool = False
) -> None:
    assert code == 1, stderr
    _check_failed_jobs(stderr, jobs, BAD_EPOCHS, parallel=parallel)
    summary = folder / name / "summary.md"
    assert _error_lines(stderr)[-1] == f"error: 2 of 2 jobs failed; summary: {summary}"
    rows = _summary(folder / name)
    assert [row["status"] for row in rows] == ["failed", "failed"]
    assert rows[0]["error"].startswith(BAD_EPOCHS)


class _Writes:
    """A stand-in for stderr that records each ``write`` call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, text: str) -> int:
        self.calls.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_a_failed_job_line_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parallel jobs share one stderr pipe: a line and its newline in one ``write`` cannot be
    split by another job's line (``print`` writes them separately)."""
    stderr = _Writes()
    monkeypatch.setattr(sys, "stderr", stderr)
    line = "error: job 1 (seed=1) failed: bad value [traceback: 1/train.log]"
    write_whole_line(line)
    assert stderr.calls == [f"{line}\n"]


def test_basic_sweeper_exit_codes_and_one_line_per_failed_job(tmp_path: Path) -> None:
    results = _run_together(
        {
            "basic": ["seed=0,1", "trainer.max_epochs=abc"],
            "partial": ["seed=0,-1", *TINY_TRAINING],
            "sampler seed": ["hparams_search=digits_optuna", "seed=abc"],
            "direction": ["hparams_search=digits_optuna", "optimized_mode=up"],
        },
        tmp_path,
    )
    # Every job failed: exit code 1, the summary lists them.
    _check_all_failed(tmp_path, "basic", *results["basic"], {0: "seed=0", 1: "seed=1"})

    # Some jobs failed: exit code 2, the completed job's results kept.
    code, stderr = results["partial"]
    assert code == 2, stderr
    _check_failed_jobs(stderr, {1: "seed=-1"}, "seed must be in [0, 4294967295] (got -1)")
    rows = _summary(tmp_path / "partial")
    assert [row["status"] for row in rows] == ["completed", "failed"]
    assert (tmp_path / "partial" / "0" / "metrics.json").is_file()

    # Settings of the Optuna sweeper itself, before any job: one line naming the key typed.
    for name, line in (
        (
            "sampler seed",
            "error: seed must be an integer or null (got 'abc'); "
            "hydra.sweeper.sampler.seed = ${seed}",
        ),
        (
            "direction",
            "error: optimized_mode must be one of minimize, min, maximize, max (got 'up'); "
            "hydra.sweeper.direction = ${optimized_mode}",
        ),
    ):
        code, stderr = results[name]
        assert code == 1 and _error_lines(stderr) == [line], stderr


@pytest.mark.slow
@pytest.mark.ci
def test_joblib_and_optuna_sweeps_that_fail(tmp_path: Path) -> None:
    results = _run_together(
        {
            "joblib": ["launcher=joblib", "seed=0,1", "trainer.max_epochs=abc"],
            "optuna": [
                "hparams_search=digits_optuna",
                "hydra.sweeper.n_trials=2",
                "trainer.max_epochs=abc",
            ],
        },
        tmp_path,
    )
    _check_all_failed(
        tmp_path, "joblib", *results["joblib"], {0: "seed=0", 1: "seed=1"}, parallel=True
    )

    code, stderr = results["optuna"]
    assert code == 1, stderr
    trial = "trainer.max_epochs=abc"
    _check_failed_jobs(stderr, {0: trial, 1: trial}, BAD_EPOCHS)
    assert len(_error_lines(stderr)) == 3, stderr  # no second line per trial from the sweeper
    with open(tmp_path / "optuna" / "trials.csv") as handle:
        trials = list(csv.DictReader(handle))
    assert [trial["state"] for trial in trials] == ["FAIL", "FAIL"]
    assert trials[0]["error"].startswith(BAD_EPOCHS)
