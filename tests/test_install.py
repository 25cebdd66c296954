"""A NON-editable wheel install runs `spikeexp-train` from an unrelated directory."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.mark.slow
@pytest.mark.ci
def test_wheel_install_runs_training_from_another_directory(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(dist),
            str(REPO),
        ]
    )
    wheel = next(dist.glob("spikeexp-*.whl"))

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    inner_site = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    # The heavy dependencies (torch, lightning, ...) come from this test's environment through a
    # plain path entry: `.pth` files there (e.g. an editable spikeexp) are NOT processed, so the
    # only spikeexp the new venv can import is the wheel installed below.
    Path(inner_site, "outer_site.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    located = _run(
        [
            str(python),
            "-c",
            "import spikeexp, spikeexp.conf, spikeexp.tasks; print(spikeexp.__file__)",
        ],
        cwd=elsewhere,
        env=env,
    ).stdout
    assert str(env_dir) in located, located

    _run(
        [
            str(env_dir / "bin" / "spikeexp-train"),
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=3",
            "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=2",
        ],
        cwd=elsewhere,
        env=env,
        timeout=600,
    )
    runs = list((elsewhere / "outputs").glob("*/*/.hydra/config.yaml"))
    assert len(runs) == 1, list((elsewhere / "outputs").rglob("*"))
