"""The scripts in examples/ run as a user runs them and do what they say."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_functional_neuron_follows_the_hand_computed_voltages() -> None:
    output = run_example("functional_neuron.py", "--steps", "9")
    voltages = [float(v) for v in re.findall(r"v = ([0-9.]+)", output)]
    assert voltages[:5] == [0.1, 0.27, 0.487, 0.7335, 0.9963]  # lif.py's docstring, 4 digits
    assert voltages[5] == 0.0 and voltages[6] == 0.3951
    assert "spikes at steps [5, 8]" in output


def test_plain_pytorch_training_learns_the_digits() -> None:
    output = run_example("plain_pytorch.py", "--epochs", "3", "--hidden", "64")
    accuracies = [float(a) for a in re.findall(r"test accuracy ([0-9.]+)", output)]
    assert len(accuracies) == 3 and accuracies[-1] > 0.7  # chance is 0.1


def test_engine_builds_and_trains_from_a_dict() -> None:
    output = run_example("engine_from_dict.py", "--epochs", "2")
    assert float(re.search(r"test accuracy ([0-9.]+)", output).group(1)) > 0.7
