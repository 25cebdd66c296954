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
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper

from hydra_plugins.spikeexp_optuna_sweeper.config import SWEEPER_TARGET

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


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{cmd}:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
@pytest.mark.ci
def test_wheel_install_discovers_and_runs_the_sweeper(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    _run([*pip_wheel, "-w", str(dist), str(REPO)])
    wheel = next(dist.glob("spikeexp-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    inner_site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    # Dependencies from this environment as a plain path: its .pth files (the editable
    # spikeexp) are not processed, so the only plugin copy the venv sees is the wheel's.
    Path(inner_site, "outer_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(APP, elsewhere / APP.name)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    located = _run(
        [str(python), "-c", "import hydra_plugins.spikeexp_optuna_sweeper as m; print(m.__file__)"],
        cwd=elsewhere,
        env=env,
    ).stdout
    assert located.startswith(inner_site), located
    sweep_dir = elsewhere / "sweep"
    _run(
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
