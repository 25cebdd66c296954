"""Wall time of ``spikeexp-export`` for every experiment preset, as a user runs it.

For each ``conf/experiment/*.yaml`` the network is built from the composed config (full size,
untrained weights: the export does not depend on training, and no data set is needed) and saved
as a checkpoint that holds the resolved config, as a training run saves it. Then
``spikeexp-export ckpt_path=<checkpoint>`` runs as a fresh process, rounds interleaved over the
experiments; the table gives the median wall time over rounds (process start and imports
included), the graph's size, or the one-line refusal for networks NIR cannot express.

Usage::

    python benchmarks/bench_nir_export.py              # 3 rounds
    python benchmarks/bench_nir_export.py --rounds 5 --keep /tmp/runs
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from spikeexp.engine.experiment import build_experiment, plain
from spikeexp.runtime.checkpoint import atomic_save

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "experiment"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def save_untrained(name: str, folder: Path) -> Path:
    """The checkpoint of experiment ``name``'s network before training, with its config."""
    run_dir = folder / name
    with initialize_config_module("spikeexp.conf", version_base="1.3"):
        config = compose(
            "train", [f"experiment={name}", f"paths.output_dir={run_dir}"], return_hydra_config=True
        )
    HydraConfig.instance().set_config(config)
    with open_dict(config):
        del config["hydra"]
    try:
        resolved = plain(config)
    finally:
        HydraConfig.instance().cfg = None
    module = build_experiment(resolved).module
    path = run_dir / "checkpoints" / "last.ckpt"
    atomic_save({"state_dict": module.state_dict(), "hyper_parameters": {"config": resolved}}, path)
    return path


def export_once(checkpoint: Path) -> tuple[float, str]:
    out = checkpoint.parent.parent / "model.nir"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "spikeexp.cli.export", f"ckpt_path={checkpoint}", f"out={out}"],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - start
    message = (done.stdout if done.returncode == 0 else done.stderr).strip().splitlines()[-1]
    return elapsed, message.replace(f"{out}: ", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, default=None, help="folder for the checkpoints")
    arguments = parser.parse_args()
    folder = arguments.keep or Path(tempfile.mkdtemp(prefix="bench_nir_"))
    threads = torch.get_num_threads()
    print(f"CPU: {cpu_model()}; torch threads: {threads}; torch {torch.__version__}")
    checkpoints = {
        path.stem: save_untrained(path.stem, folder) for path in sorted(CONFIG.glob("*.yaml"))
    }
    times: dict[str, list[float]] = {name: [] for name in checkpoints}
    results: dict[str, str] = {}
    for _ in range(arguments.rounds):
        for name, checkpoint in checkpoints.items():
            elapsed, results[name] = export_once(checkpoint)
            times[name].append(elapsed)
    print(f"\n| experiment | export wall time (median of {arguments.rounds}) | result |")
    print("|---|---:|---|")
    for name in checkpoints:
        print(f"| {name} | {statistics.median(times[name]):.2f} s | {results[name]} |")


if __name__ == "__main__":
    main()
