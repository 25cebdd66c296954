"""Wall time of ``spikeexp-export`` for every experiment preset, as a user runs it.

For each ``conf/experiment/*.yaml`` a run is trained for one batch (the network has its full
size; the export does not depend on how long it was trained) in a temporary folder, with small
MNIST-format files written here for the tasks that read IDX files. Then ``spikeexp-export
run_dir=<run>`` runs as a fresh process, rounds interleaved over the experiments; the table
gives the median wall time over rounds (process start and imports included), the graph's size,
or the one-line refusal for networks NIR cannot express.

Usage::

    python benchmarks/bench_nir_export.py              # 3 rounds
    python benchmarks/bench_nir_export.py --rounds 5 --keep /tmp/runs
"""

from __future__ import annotations

import argparse
import gzip
import os
import platform
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "experiment"
IDX_TASKS = ("mnist", "fashion")
ONE_BATCH = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=1",
    "++trainer.limit_val_batches=1",
    "test=false",
    "logger=none",
    "callbacks=minimal",
]


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def write_idx(folder: Path, count: int = 64) -> None:
    """Random 28x28 images and labels under the four MNIST file names (gzipped IDX)."""
    rng = np.random.default_rng(0)
    names = (
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    )
    folder.mkdir(parents=True, exist_ok=True)
    for images_name, labels_name in names:
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        for name, array in ((images_name, images), (labels_name, labels)):
            header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
            header += struct.pack(f">{array.ndim}I", *array.shape)
            (folder / f"{name}.gz").write_bytes(gzip.compress(header + array.tobytes()))


def train_one_batch(name: str, folder: Path, idx_root: Path) -> Path:
    run_dir = folder / name
    overrides = [f"experiment={name}", f"hydra.run.dir={run_dir}", *ONE_BATCH]
    text = (CONFIG / f"{name}.yaml").read_text()
    if any(f"/task: {task}" in text for task in IDX_TASKS):
        overrides.append(f"data.root={idx_root}")
    done = subprocess.run(
        [sys.executable, "-m", "spikeexp.cli.train", *overrides],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"training {name} failed:\n{done.stderr[-2000:]}")
    return run_dir


def export_once(run_dir: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "spikeexp.cli.export", f"run_dir={run_dir}"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    message = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()[-1]
    return elapsed, message


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="folder for the trained runs")
    arguments = parser.parse_args()
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="bench_nir_"))
    names = sorted(path.stem for path in CONFIG.glob("*.yaml"))
    print(
        f"CPU: {cpu_model()}; torch threads: {torch.get_num_threads()}; torch {torch.__version__}"
    )
    write_idx(folder / "idx")
    runs = {name: train_one_batch(name, folder, folder / "idx") for name in names}
    times: dict[str, list[float]] = {name: [] for name in runs}
    results: dict[str, str] = {}
    for _ in range(arguments.rounds):
        for name, run_dir in runs.items():
            elapsed, results[name] = export_once(run_dir)
            times[name].append(elapsed)
    print(f"\n| experiment | export wall time (median of {arguments.rounds}) | result |")
    print("|---|---:|---|")
    for name in runs:
        result = results[name].replace(str(runs[name]) + "/", "")
        print(f"| {name} | {statistics.median(times[name]):.2f} s | {result} |")


if __name__ == "__main__":
    main()
