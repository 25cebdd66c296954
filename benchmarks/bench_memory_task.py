"""Memory task: time per training batch / epoch and peak memory, full BPTT vs recomputation vs
truncated BPTT.

For each experiment (``memory_lsnn``, ``memory_lif``) and each way of backpropagating through the
2,400 steps (``full`` BPTT; full BPTT with ``recompute_steps``; truncated BPTT with
``tbptt_steps``) a fresh process builds the experiment exactly as ``spikeexp-train`` does and runs
training steps of one batch of 128 sequences (forward, task loss and rate regulariser, backward,
Adam step; under TBPTT one backward and step per chunk, as the Lightning module does). Reported:

* s / batch: median and minimum over ``--repeats`` steps after one warm-up step (the minimum is
  the least disturbed by other processes on a shared machine);
* epoch s: ``data.train_batches`` (20) times the median (training only, no validation);
* step peak MiB: peak bytes held by PyTorch CPU tensors during one step (``torch.profiler`` with
  ``profile_memory=True``) above what was allocated before it (the batch itself, 24.6 MiB of
  float32 spikes, is generated before and not counted);
* peak RSS MiB: peak resident memory of the process (Python, PyTorch and everything above).

Usage::

    python benchmarks/bench_memory_task.py                     # 2 experiments x 3 modes, ~3 min
    python benchmarks/bench_memory_task.py --modes full,tbptt --repeats 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

EXPERIMENTS = ("memory_lsnn", "memory_lif")
MODES = {
    "full": [],
    "checkpoint": ["recompute_steps=200"],
    "tbptt": ["tbptt_steps=200"],
}
BATCHES_PER_EPOCH = 20


def training_step(experiment: str, overrides: list[str]) -> Callable[[], None]:
    """One training step of ``experiment`` on a fixed batch, as the Lightning module runs it."""
    import torch
    from hydra import compose, initialize_config_module

    from spikeexp.engine.experiment import build_experiment
    from spikeexp.engine.spiking_module import detach_state

    with initialize_config_module("spikeexp.conf", version_base="1.3"):
        config = compose(
            "train", overrides=[f"experiment={experiment}", "paths.output_dir=.", *overrides]
        )
    module = build_experiment(config).module
    batch = module.task.datamodule.dataset("train")[0]
    module.log = lambda *args, **kwargs: None  # no trainer: logging is not measured
    optimizer = module.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer

    def full() -> None:
        optimizer.zero_grad()
        module.shared_step(batch, "train").backward()
        optimizer.step()

    def truncated() -> None:
        encoded = module.encoder(module.task.inputs(batch))
        size, state = encoded.shape[1], None
        for start in range(0, encoded.shape[0], module.tbptt_steps):
            window = slice(start, start + module.tbptt_steps)
            readout, state = module.network(encoded[window], state)
            output = module.task.step(readout, batch, "train", window)
            records = module.network.records
            loss = module._add_regularizers(output.loss, records, "train", size)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            state = detach_state(state)

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    return full if module.tbptt_steps is None else truncated


def peak_tensor_mib(step: Callable[[], None]) -> float:
    """Peak CPU tensor memory (MiB) allocated during ``step``, from profiler memory events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        current += event.nbytes()
        peak = max(peak, current)
    return peak / 2**20


def probe(experiment: str, overrides: list[str], repeats: int) -> str:
    """Measure one configuration in this process; returns a Markdown table row."""
    step = training_step(experiment, overrides)
    step()  # warm-up: kernel build, allocator
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    peak = peak_tensor_mib(step)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    median = statistics.median(times)
    mode = " ".join(overrides) or "full BPTT"
    return (
        f"| {experiment} | {mode} | {median:.2f} / {min(times):.2f} | "
        f"{median * BATCHES_PER_EPOCH:.1f} | {peak:.0f} | {rss:.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", default=",".join(EXPERIMENTS))
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=1, help="OMP/MKL threads of each run")
    parser.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        print(probe(args.probe[0], args.probe[1:], args.repeats))
        return
    print(f"{args.threads} thread(s), batch 128, 2,400 steps, median of {args.repeats} steps\n")
    print(
        "| experiment | mode | s / batch (median / min) | epoch s (20 batches) "
        "| step peak MiB | peak RSS MiB |"
    )
    print("|---|---|---|---|---|---|")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    for experiment in args.experiments.split(","):
        for mode in args.modes.split(","):
            command = [sys.executable, __file__, "--repeats", str(args.repeats)]
            command += ["--probe", experiment, *MODES[mode]]
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            print(result.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
