"""A tiny Hydra app for the sweep tests: a known objective of `x` and `y`, optional failures,
optional intermediate values reported to the Optuna trial (for pruning).

    python sweep_app.py -m hydra/sweeper=optuna 'hydra.sweeper.params.x=interval(-4,4)'

The objective is ``(x - 1)^2 + (0 if y == "a" else 3)``; each run writes ``result.json`` (its
parameters, value, the number of steps it ran and its process id) into its Hydra output directory.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import hydra
import optuna
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from spikeexp.cli.runner import record_job_failure
from spikeexp.cli.sweep_summary import is_multirun
from spikeexp.runtime.optuna_study import TrialReporter

ConfigStore.instance().store(
    name="sweep_app",
    node={
        "x": 0.0,
        "y": "a",
        # Raise for x above this value (null: never).
        "fail_above": None,
        # Return NaN for x below this value (null: never).
        "nan_below": None,
        # Intermediate values reported per step; the last one equals the objective.
        "steps": 0,
        # Catch the job's exception in a multirun like spikeexp-train (recorded, returns None).
        "tolerate_failures": False,
        "optuna_trial": None,
    },
)


def objective(x: float, y: str) -> float:
    """The value the sweep minimises."""
    return (x - 1.0) ** 2 + (0.0 if y == "a" else 3.0)


@hydra.main(version_base="1.3", config_path=None, config_name="sweep_app")
def main(config: DictConfig) -> float | None:
    """Run :func:`job`; with ``tolerate_failures`` record its exception and return None."""
    try:
        return job(config)
    except Exception as error:
        if not (config.tolerate_failures and is_multirun()):
            raise
        record_job_failure(error)
        return None


def job(config: DictConfig) -> float:
    """Compute the objective; report ``steps`` intermediate values; fail on request."""
    output_dir = Path(HydraConfig.get().runtime.output_dir)
    value = objective(config.x, config.y)
    steps_run = 0
    reporter = TrialReporter.from_config(config.optuna_trial) if config.optuna_trial else None
    for step in range(config.steps):
        steps_run = step + 1
        intermediate = value + (config.steps - 1 - step)
        if reporter is not None and reporter.report(intermediate, step):
            break
    result = {
        "x": config.x,
        "y": config.y,
        "value": value,
        "steps_run": steps_run,
        "pid": os.getpid(),
    }
    (output_dir / "result.json").write_text(json.dumps(result))
    metrics = {"val/value": value, "test/value": value + 0.5, "val/extra/ignored": 0.0}
    (output_dir / "metrics.json").write_text(json.dumps(metrics))
    if config.fail_above is not None and config.x > config.fail_above:
        raise RuntimeError(f"x={config.x} is above {config.fail_above}")
    if config.nan_below is not None and config.x < config.nan_below:
        return math.nan
    return value


if __name__ == "__main__":
    # Keep the pruned trials quiet and the module importable without running.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    main()
