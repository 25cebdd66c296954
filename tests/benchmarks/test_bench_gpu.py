"""``benchmarks/bench_gpu.py`` runs as users run it: the CPU smoke run (no GPU needed) prints the
layer table and the ConvNet comparison; on a CUDA machine (``gpu`` marker) a short GPU run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_gpu.py"
ROW = re.compile(r"^\| (\d+) \| (.+?) \| ([\d.]+) \| ([\d.]+) \| (\S+) \| (\S+) \|$", re.MULTILINE)


def _bench(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def _rows(output: str) -> dict[str, tuple[float, float]]:
    return {name: (float(fwd), float(train)) for _, name, fwd, train, _, _ in ROW.findall(output)}


def test_cpu_smoke_run_prints_the_layer_table() -> None:
    output = _bench("--cpu", "--peers", "snntorch", "--skip-convnet")
    assert "GPU figures need a GPU" in output
    assert "Linear(n, n) + LIF, batch 2, T = 20; median of 2 rounds" in output
    rows = _rows(output)
    assert {"spikeexp", "spikeexp, bf16-mixed"} <= set(rows)
    assert all(fwd > 0 and train > 0 for fwd, train in rows.values())
    if "snnTorch Leaky" in rows:
        assert "n = 64: spikeexp forward+backward" in output


@pytest.mark.slow
@pytest.mark.ci
def test_cpu_smoke_run_with_every_peer_and_the_convnet() -> None:
    output = _bench("--cpu")
    assert "GPU figures need a GPU" in output
    assert "Fashion-MNIST ConvNet training step, batch 8, T = 8" in output
    assert re.search(r"^\| spikeexp \| [\d.]+ \|", output, re.MULTILINE)


@pytest.mark.gpu
def test_short_gpu_run() -> None:
    output = _bench("--sizes", "512", "--steps", "50", "--rounds", "2")
    assert "GPU figures need a GPU" not in output
    rows = _rows(output)
    assert "spikeexp" in rows and "Fashion-MNIST ConvNet training step" in output
