"""End-to-end benchmark: wall time of one training epoch of the shipped experiments.

For each experiment it runs ``spikeexp-train experiment=<name> trainer.max_epochs=1`` (no
logger, no checkpoint callbacks, no test) and a start-up run that stops after one training and
one validation batch; the epoch time is the difference, so interpreter start, imports, data
loading and the first kernel build are not counted. Peak resident memory (RSS) is that of the
full run's process. Extra Hydra overrides apply to every run (``--override unroll.backend=...``).

Usage::

    python benchmarks/bench_end_to_end.py                               # all four (minutes)
    python benchmarks/bench_end_to_end.py --experiments digits --threads 2
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time

EXPERIMENTS = ("digits", "fashion_mnist_norse_convnet", "fashion_mnist_conv", "memory_lsnn")
COMMON = ("logger=none", "callbacks=minimal", "test=false")


def run(command: list[str], threads: int) -> tuple[float, float]:
    """Run ``command``; return (wall seconds, peak RSS in MiB). Raises on failure."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def bench(experiment: str, threads: int, overrides: list[str], workdir: str) -> None:
    train = shutil.which("spikeexp-train") or "spikeexp-train"
    base = [train, f"experiment={experiment}", *COMMON, *overrides]
    startup_cmd = [
        *base,
        "trainer.max_epochs=1",
        "++trainer.limit_train_batches=1",
        "++trainer.limit_val_batches=1",
        f"hydra.run.dir={workdir}/{experiment}_startup",
    ]
    full_cmd = [*base, "trainer.max_epochs=1", f"hydra.run.dir={workdir}/{experiment}_epoch"]
    startup, _ = run(startup_cmd, threads)
    total, rss = run(full_cmd, threads)
    print(
        f"| {experiment} | {total - startup:.1f} | {total:.1f} | {startup:.1f} | {rss:.0f} | "
        f"`{' '.join(['spikeexp-train', *full_cmd[1:-1]])}` |",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    parser.add_argument("--threads", type=int, default=2, help="OMP/MKL threads of each run")
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override")
    args = parser.parse_args()
    print(f"{args.threads} threads; overrides: {' '.join(args.override) or 'none'}\n")
    print("| experiment | epoch s | run s | start-up s | peak RSS MiB | command |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="spikeexp-bench-") as workdir:
        for experiment in args.experiments.split(","):
            bench(experiment, args.threads, args.override, workdir)


if __name__ == "__main__":
    main()
