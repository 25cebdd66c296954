"""`hydra/sweeper=optuna`: search spaces, failures, resume, pruning, results files."""

from __future__ import annotations

import csv
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from omegaconf import OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.spikeexp_optuna_sweeper._search_space import (
    override_value,
    parse_search_space,
)
from hydra_plugins.spikeexp_optuna_sweeper.optuna_sweeper import OptunaSweeper

APP = Path(__file__).with_name("sweep_app.py")
sys.path.insert(0, str(APP.parent))
from sweep_app import objective  # noqa: E402


def run_app(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the test app as a multirun with the Optuna sweeper; fail the test on a non-zero exit."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    result = subprocess.run(
        [sys.executable, str(APP), "-m", "hydra/sweeper=optuna", *overrides],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def read_trials(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "trials.csv") as handle:
        return list(csv.DictReader(handle))


def job_result(row: dict[str, str]) -> dict:
    return json.loads(Path(row["job_dir"], "result.json").read_text())


def test_search_space_maps_sweep_grammar_to_optuna_distributions() -> None:
    space = parse_search_space(
        {
            "lr": "tag(log, interval(1e-4, 1e-1))",
            "dropout": "interval(0, 0.5)",
            "hidden": "tag(int, interval(16, 256))",
            "neuron": "choice(lif, lsnn)",
            "encoder": "poisson,constant_current",
            "steps": "range(8, 40, 8)",
            "topology.hidden": "choice([64],[64,64])",
            "seed": 3,
        },
        ["dropout=0.1", "+extra=range(0.1,0.4,0.1)"],
    )
    dists = space.distributions
    assert dists["lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert dists["hidden"] == IntDistribution(16, 256)
    assert dists["neuron"] == CategoricalDistribution(["lif", "lsnn"])
    assert dists["encoder"] == CategoricalDistribution(["poisson", "constant_current"])
    assert dists["steps"] == IntDistribution(8, 32, step=8)
    assert dists["extra"].step == pytest.approx(0.1) and dists["extra"].high == pytest.approx(0.3)
    assert dists["topology.hidden"] == CategoricalDistribution(["[64]", "[64,64]"])
    # A plain command-line value replaces the configured search space of that key.
    assert "dropout" not in dists
    assert space.fixed == ["seed=3", "dropout=0.1"]
    overrides = space.overrides({"lr": 1e-3, "topology.hidden": "[64,64]", "extra": 0.2})
    assert overrides == [
        "seed=3",
        "dropout=0.1",
        "lr=0.001",
        "topology.hidden=[64,64]",
        "+extra=0.2",
    ]


@pytest.mark.parametrize(
    "value",
    ["lif", "1e-3", "a b", "it's", "true", "null", "x=y", 1e-5, 3, True, None, [1, 2], {"a": 1}],
)
def test_override_value_reads_back_unchanged(value: object) -> None:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_override(f"key={override_value(value)}")
    assert parsed.value() == value
    assert type(parsed.value()) is type(value)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"x": "tag(exp, interval(1, 2))"}, "hydra.sweeper.params.x: unknown tag(s) ['exp']"),
        ({"x": "range(5, 1)"}, "hydra.sweeper.params.x: range(5,1,1) must have start < stop"),
        ({"x": "glob(*)"}, "is not a supported search space; valid: interval(a,b)"),
    ],
)
def test_bad_search_space_names_the_key(params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_search_space(params, [])


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("direction", "up", "hydra.sweeper.direction must be one of minimize, min, maximize, max"),
        ("n_trials", 0, "hydra.sweeper.n_trials must be an integer >= 1 (got 0)"),
        ("n_jobs", "2", "hydra.sweeper.n_jobs must be an integer >= 1 (got '2')"),
    ],
)
def test_bad_sweeper_setting_names_the_key(key: str, value: object, message: str) -> None:
    settings = {
        "direction": "min",
        "n_trials": 2,
        "n_jobs": 1,
        "storage": None,
        "study_name": "s",
        "sampler": None,
        "pruner": None,
        "params": {},
        "trial_key": None,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        OptunaSweeper(**{**settings, key: value}).check_settings()


def test_study_records_failures_and_resumes(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    common = [
        "x=interval(-4,4)",
        "y=a,b",
        "fail_above=2",
        "nan_below=-2",
        f"hydra.sweep.dir={sweep_dir}",
        "hydra.sweeper.study_name=quad",
    ]
    run_app(*common, "hydra.sweeper.n_trials=6", cwd=tmp_path)
    first = read_trials(sweep_dir)
    assert [row["number"] for row in first] == [str(n) for n in range(6)]

    for row in first:
        job = job_result(row)
        assert float(row["x"]) == job["x"] and row["y"] == job["y"]
        if job["x"] > 2:
            assert row["state"] == "FAIL" and "RuntimeError: x=" in row["error"]
        elif job["x"] < -2:
            assert row["state"] == "FAIL" and row["error"] == "job returned nan"
        else:
            assert row["state"] == "COMPLETE"
            assert float(row["value"]) == pytest.approx(objective(job["x"], job["y"]))
    assert {row["state"] for row in first} >= {"FAIL", "COMPLETE"}

    # Same storage (the SQLite file in the sweep dir) and study: the second run adds 2 trials.
    run_app(*common, "hydra.sweeper.n_trials=8", cwd=tmp_path)
    second = read_trials(sweep_dir)
    assert second[:6] == first
    assert [row["number"] for row in second[6:]] == ["6", "7"]
    assert all(Path(row["job_dir"]) == sweep_dir / row["number"] for row in second)

    study = optuna.load_study(study_name="quad", storage=f"sqlite:///{sweep_dir}/optuna.db")
    assert len(study.trials) == 8
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    complete = [row for row in second if row["state"] == "COMPLETE"]
    best = min(complete, key=lambda row: float(row["value"]))
    assert results.best_trial == int(best["number"])
    assert results.best_value == pytest.approx(objective(**results.best_params))
    assert results.trials.complete == len(complete)
    assert results.trials.fail == 8 - len(complete)
    markdown = (sweep_dir / "trials.md").read_text().splitlines()
    assert markdown[0].startswith("| number | state | value | duration_s | x | y |")
    assert len(markdown) == 2 + 8


def test_pruner_stops_poor_trials_early(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run_app(
        "x=interval(-4,4)",
        "y=a,b",
        "steps=5",
        "hydra.sweeper.n_trials=8",
        "+hydra.sweeper.pruner._target_=optuna.pruners.MedianPruner",
        "+hydra.sweeper.pruner.n_startup_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    rows = read_trials(sweep_dir)
    states = [row["state"] for row in rows]
    assert "PRUNED" in states and "COMPLETE" in states
    for row in rows:
        steps_run = job_result(row)["steps_run"]
        if row["state"] == "PRUNED":
            assert steps_run < 5
        else:
            assert steps_run == 5
    # Pruned trials never make the best trial.
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert rows[results.best_trial]["state"] == "COMPLETE"
    assert not math.isnan(results.best_value)


def test_maximize_direction_and_config_params(tmp_path: Path) -> None:
    sweep_dir = tmp_path / "sweep"
    run_app(
        "+hydra.sweeper.params.x='interval(0,2)'",
        "hydra.sweeper.direction=max",
        "hydra.sweeper.n_trials=4",
        f"hydra.sweep.dir={sweep_dir}",
        cwd=tmp_path,
    )
    rows = read_trials(sweep_dir)
    assert all(0 <= float(row["x"]) <= 2 for row in rows)
    results = OmegaConf.load(sweep_dir / "optimization_results.yaml")
    assert results.direction == "maximize"
    assert results.best_value == max(float(row["value"]) for row in rows)


@pytest.mark.parametrize("preset", ["digits_optuna", "fashion_mnist_optuna"])
def test_hparams_search_presets_compose(preset: str) -> None:
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="spikeexp.conf", version_base="1.3"):
        config = compose("train", overrides=[f"hparams_search={preset}"], return_hydra_config=True)
    sweeper = config.hydra.sweeper
    assert sweeper._target_.endswith("spikeexp_optuna_sweeper.optuna_sweeper.OptunaSweeper")
    assert sweeper.direction == "max" and config.optimized_metric == "val/acc"
    assert config.callbacks.optuna_pruning.monitor == "val/acc"
    space = parse_search_space(OmegaConf.to_container(sweeper.params), [])
    assert space.distributions["optimizer.lr"].log
    assert set(space.distributions) == set(sweeper.params)
