"""Helpers shared by test modules: compose a config as the CLI does, a venv with the built wheel."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

REPO = Path(__file__).resolve().parents[1]


def compose_like_cli(overrides: list[str]) -> DictConfig:
    """The training config as ``spikeexp-train`` composes it, Hydra's runtime info set (reset it
    with ``HydraConfig.instance().cfg = None`` afterwards)."""
    with initialize_config_module("spikeexp.conf", version_base="1.3"):
        config = compose("train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(config)
    with open_dict(config):
        del config["hydra"]
    return config


def run_ok(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run ``cmd``; fail the test with its output if it fails."""
    result = subprocess.run(cmd, capture_output=True, text=True, **{"timeout": 600, **kwargs})
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


def venv_with_wheel(tmp_path: Path) -> Path:
    """Build spikeexp's wheel, install it NON-editable into a fresh venv; return its python.

    The heavy dependencies (torch, lightning, ...) come from this test's environment through a
    plain path entry: `.pth` files there (e.g. an editable spikeexp) are NOT processed, so the
    only spikeexp the new venv can import is the wheel's.
    """
    dist = tmp_path / "dist"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
    run_ok([*pip_wheel, "-w", str(dist), str(REPO)])
    wheel = next(dist.glob("spikeexp-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    inner_site = run_ok(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    Path(inner_site, "outer_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run_ok([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])
    return python
