"""The scripts in examples/ run as a user runs them and do what they say."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from spikeexp.engine import network_from_config
from spikeexp.nir import export_nir

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


def test_stdp_learns_the_digits_without_labels(tmp_path) -> None:
    png = tmp_path / "fields.png"
    arguments = ["--neurons", "60", "--epochs", "2", "--steps", "60", "--png", str(png)]
    output = run_example("stdp_digits.py", *arguments)
    accuracies = [float(a) for a in re.findall(r"test accuracy ([0-9.]+)", output)]
    assert len(accuracies) == 2 and accuracies[-1] > 0.6  # chance is 0.1
    assert png.stat().st_size > 1000


def test_nir_digits_runs_an_exported_network_in_spikeexp_and_norse(tmp_path: Path) -> None:
    torch.manual_seed(0)
    network = network_from_config(
        {"type": "mlp", "hidden": [32]}, {"model": "lif"}, {"model": "li"}, (1, 8, 8), 10
    )
    with torch.no_grad():
        network.layers.fc1.module.weight.mul_(4.0)  # active hidden layer without training
    export_nir(
        network.eval(), tmp_path / "model.nir", input_shape=(1, 8, 8), metadata={"seq_length": 16}
    )
    output = run_example("nir_digits.py", str(tmp_path / "model.nir"), "--norse-samples", "3")
    accuracy = float(re.search(r"spikeexp: test accuracy ([0-9.]+) on 359 images", output).group(1))
    assert 0.0 <= accuracy <= 1.0
    if importlib.util.find_spec("norse") is not None:
        assert "Norse: hidden1 identical in 3/3 samples, fc_out identical in 3/3 samples" in output
