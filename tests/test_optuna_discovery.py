"""Hydra finds the sweeper plugin in editable and in non-editable (wheel) installs.

Hydra lists plugins with ``pkgutil.walk_packages(hydra_plugins.__path__)``. A setuptools editable
install exposes packages through an import hook that pkgutil cannot list, unless the namespace
``hydra_plugins`` itself is in ``packages`` (pyproject.toml): then the editable finder adds its
real folder to ``hydra_plugins.__path__``. The test environment is an editable install, so the
fast tests check that case; the slow one installs the wheel into a fresh venv.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

from hydra_plugins.spikeexp_optuna_sweeper.config import SWEEPER_TARGET
from tests.helpers import run_ok, venv_with_wheel

REPO = Path(__file__).resolve().parents[1]
APP = Path(__file__).with_name("sweep_app.py")


def test_plugin_is_discovered() -> None:
    names = [f"{cls.__module__}.{cls.__name__}" for cls in Plugins.instance().discover(Sweeper)]
    assert SWEEPER_TARGET in names


@pytest.mark.parametrize("name", ["optuna", "spikeexp_optuna"])
def test_sweeper_config_selects_this_plugin(name: str) -> None:
    with initialize_config_module(config_module="spikeexp.conf", version_base="1.3"):
        config = compose("train", overrides=[f"hydra/sweeper={name}"], return_hydra_config=True)
    assert config.hydra.sweeper._target_ == SWEEPER_TARGET


@pytest.mark.slow
@pytest.mark.ci
def test_wheel_install_discovers_and_runs_the_sweeper(tmp_path: Path) -> None:
    python = venv_with_wheel(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(APP, elsewhere / APP.name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    located = run_ok(
        [str(python), "-c", "import hydra_plugins.spikeexp_optuna_sweeper as m; print(m.__file__)"],
        cwd=elsewhere,
        env=env,
    ).stdout
    assert located.startswith(str(python.parent.parent)), located  # the wheel's copy
    sweep_dir = elsewhere / "sweep"
    run_ok(
        [
            str(python),
            APP.name,
            "-m",
            "hydra/sweeper=optuna",
            "x=interval(-2,2)",
            "hydra.sweeper.n_trials=2",
            f"hydra.sweep.dir={sweep_dir}",
        ],
        cwd=elsewhere,
        env=env,
    )
    assert (sweep_dir / "optimization_results.yaml").is_file()
    assert len((sweep_dir / "trials.csv").read_text().splitlines()) == 3
