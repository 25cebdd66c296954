"""A NON-editable wheel install runs `spikeexp-train` from an unrelated directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.helpers import run_ok, venv_with_wheel


@pytest.mark.slow
@pytest.mark.ci
def test_wheel_install_runs_training_from_another_directory(tmp_path: Path) -> None:
    python = venv_with_wheel(tmp_path)
    env_dir = python.parent.parent
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    located = run_ok(
        [
            str(python),
            "-c",
            "import spikeexp, spikeexp.conf, spikeexp.tasks; print(spikeexp.__file__)",
        ],
        cwd=elsewhere,
        env=env,
    ).stdout
    assert str(env_dir) in located, located

    run_ok(
        [
            str(env_dir / "bin" / "spikeexp-train"),
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=3",
            "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=2",
        ],
        cwd=elsewhere,
        env=env,
    )
    runs = list((elsewhere / "outputs").glob("*/*/.hydra/config.yaml"))
    assert len(runs) == 1, list((elsewhere / "outputs").rglob("*"))
