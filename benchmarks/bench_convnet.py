"""Training speed of the Fashion-MNIST spiking ConvNet: spikeexp against the same network in Norse.

The network (``experiment=fashion_mnist_norse_convnet``): conv5x5(1->32) -> LIF -> maxpool2 ->
10 x conv5x5(32->64) -> LIF -> maxpool2 -> Linear(1024->256) -> LIF -> Linear(256->10) -> LI,
logits = maximum voltage over time; T = 8 steps of constant-current input, batch 64,
cross-entropy, Adam 2e-3. spikeexp's network is built from the experiment config; the Norse one
is written as Norse's own ConvNet is (one step at a time with ``LIFCell``/``LICell``), with the
same parameters (Norse's defaults are spikeexp's). Each measurement runs in a fresh process (the
allocator setting is per process), rounds alternate between the variants, and the table gives
the median over rounds of each round's median step time:

* ``spikeexp``: as ``spikeexp-train`` runs it (``keep_freed_memory``, spikeexp.runtime.allocator);
* ``spikeexp bf16-mixed``: the forward pass under bfloat16 autocast, as
  ``trainer.precision=bf16-mixed`` runs it (convolutions and GEMMs on AMX / AVX-512 BF16, the
  neuron state in float32);
* ``spikeexp matmul-medium``: ``matmul_precision=medium`` (bfloat16 products in the float32
  Linear layers only);
* ``spikeexp channels-last``: with ``topology.channels_last=true``;
* ``spikeexp default-allocator``: without ``keep_freed_memory``;
* ``Norse``: as a Norse script runs (default allocator);
* ``Norse bf16-mixed``: Norse's network under the same bfloat16 autocast;
* ``Norse keep_freed_memory``: Norse with spikeexp's allocator setting.

``--variants`` chooses them (default: ``spikeexp``, ``spikeexp bf16-mixed`` and ``Norse``).
Batches are the first Fashion-MNIST training images when the data are found (see
``spikeexp.tasks.mnist``), else uniform noise of the same shape. Norse is optional (the ``bench``
extra); without it only the spikeexp rows are printed.

Usage::

    python benchmarks/bench_convnet.py                  # 3 rounds x 12 steps, 2 threads
    python benchmarks/bench_convnet.py --rounds 5 --variants all
    python benchmarks/bench_convnet.py --profile        # where spikeexp's step goes
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
from _timing import machine_header
from torch import nn

BATCH = 64
STEPS = 8
WARMUP = 3
VARIANTS = {  # name: (library, keep_freed_memory, Hydra overrides of the spikeexp network,
    # precision: "32" float32, "bf16-mixed" bfloat16 autocast, "medium" matmul precision)
    "spikeexp": ("spikeexp", True, (), "32"),
    "spikeexp bf16-mixed": ("spikeexp", True, (), "bf16-mixed"),
    "spikeexp matmul-medium": ("spikeexp", True, (), "medium"),
    "spikeexp channels-last": (
        "spikeexp",
        True,
        ("topology.channels_last=true",),
        "32",
    ),
    "spikeexp default-allocator": ("spikeexp", False, (), "32"),
    "Norse": ("norse", False, (), "32"),
    "Norse bf16-mixed": ("norse", False, (), "bf16-mixed"),
    "Norse keep_freed_memory": ("norse", True, (), "32"),
}
DEFAULT_VARIANTS = "spikeexp,spikeexp bf16-mixed,Norse"


class NorseConvNet(nn.Module):
    """The reference network written with Norse, step by step as Norse's ConvNet is."""

    def __init__(self) -> None:
        super().__init__()
        import norse.torch as norse

        self.conv1 = nn.Conv2d(1, 32, 5)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.fc1 = nn.Linear(1024, 256)
        self.fc_out = nn.Linear(256, 10)
        self.lif1, self.lif2, self.lif3 = norse.LIFCell(), norse.LIFCell(), norse.LIFCell()
        self.readout = norse.LICell()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        s1 = s2 = s3 = s_out = None
        voltages = []
        for _ in range(STEPS):
            z, s1 = self.lif1(self.conv1(images), s1)
            z = nn.functional.max_pool2d(z, 2)
            z, s2 = self.lif2(10 * self.conv2(z), s2)
            z = nn.functional.max_pool2d(z, 2)
            z, s3 = self.lif3(self.fc1(z.flatten(1)), s3)
            v, s_out = self.readout(self.fc_out(z), s_out)
            voltages.append(v)
        return torch.stack(voltages).amax(0)


def spikeexp_model(overrides: list[str]) -> Callable[[torch.Tensor], torch.Tensor]:
    """The experiment's module: encoder -> network -> max-over-time logits."""
    from hydra import compose, initialize_config_module

    from spikeexp.engine.experiment import build_experiment

    with initialize_config_module(config_module="spikeexp.conf", version_base="1.3"):
        config = compose(
            "train",
            overrides=[
                "experiment=fashion_mnist_norse_convnet",
                "paths.output_dir=unused",
                *overrides,
            ],
        )
    module = build_experiment(config).module
    decoder = module.task.decoder

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.module = module

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return decoder(self.module(images))

    return Logits()


def batches(count: int) -> tuple[list[torch.Tensor], list[torch.Tensor], str]:
    """``count`` batches of images ``[64, 1, 28, 28]`` in [0, 1] and labels."""
    try:
        from spikeexp.tasks.mnist import FashionMNISTDataModule

        data = FashionMNISTDataModule(batch_size=BATCH)
        data.setup("fit")
        loader = iter(data.train_dataloader())
        pairs = [next(loader) for _ in range(count)]
        return [p[0] for p in pairs], [p[1] for p in pairs], "Fashion-MNIST"
    except Exception:  # no data: noise of the same shape
        generator = torch.Generator().manual_seed(0)
        images = [torch.rand(BATCH, 1, 28, 28, generator=generator) for _ in range(count)]
        labels = [torch.randint(0, 10, (BATCH,), generator=generator) for _ in range(count)]
        return images, labels, "uniform noise"


def measure(
    library: str, keep_memory: bool, overrides: list[str], precision: str, steps: int
) -> dict[str, float | str]:
    """Median milliseconds per training step (forward, backward, Adam) in this process."""
    if keep_memory:
        from spikeexp.runtime.allocator import keep_freed_memory

        keep_freed_memory()
    if precision == "medium":
        torch.set_float32_matmul_precision("medium")
    torch.manual_seed(0)
    model = spikeexp_model(overrides) if library == "spikeexp" else NorseConvNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    images, labels, source = batches(WARMUP + steps)
    times = []
    for index, (x, y) in enumerate(zip(images, labels, strict=True)):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16-mixed"):
            logits = model(x)
        loss = nn.functional.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if index >= WARMUP:
            times.append(time.perf_counter() - start)
    with open("/proc/self/status", encoding="utf-8") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
    return {"ms": 1e3 * statistics.median(times), "rss_mib": peak / 1024, "data": source}


def profile(steps: int) -> None:
    """Print the operators of spikeexp's training step by self time, per input shape (ms per
    step, averaged over ``steps`` steps after the warm-up)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from spikeexp.runtime.allocator import keep_freed_memory

    keep_freed_memory()
    torch.manual_seed(0)
    model = spikeexp_model([])
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    images, labels, _ = batches(WARMUP + steps)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for x, y in zip(images[:WARMUP], labels[:WARMUP], strict=True):
        step(x, y)
    with torch_profile(activities=[ProfilerActivity.CPU], record_shapes=True) as profiler:
        for x, y in zip(images[WARMUP:], labels[WARMUP:], strict=True):
            step(x, y)
    events = profiler.key_averages(group_by_input_shape=True)
    rows = sorted(events, key=lambda event: event.self_cpu_time_total, reverse=True)[:20]
    print("| operator | ms / step (self) | calls / step | input shapes |\n|---|---|---|---|")
    for event in rows:
        shapes = str(event.input_shapes)[:90]
        ms = event.self_cpu_time_total / 1e3 / steps
        print(f"| {event.key} | {ms:.1f} | {event.count / steps:g} | {shapes} |")


def run_variant(name: str, steps: int, threads: int) -> dict[str, float | str]:
    library, keep, overrides, precision = VARIANTS[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    child = [library, str(int(keep)), json.dumps(list(overrides)), precision, str(steps)]
    command = [sys.executable, __file__, "--child", *child]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=12, help="timed steps per process")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--variants", default=DEFAULT_VARIANTS, help="comma list of names in VARIANTS, or all"
    )
    parser.add_argument("--profile", action="store_true", help="profile spikeexp's step instead")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.profile:
        torch.set_num_threads(args.threads)
        profile(args.steps)
        return
    if args.child:
        library, keep, overrides, precision, steps = args.child
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        result = measure(library, keep == "1", json.loads(overrides), precision, int(steps))
        print(json.dumps(result))
        return
    wanted = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    unknown = [name for name in wanted if name not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown[0]!r}; valid: {', '.join(VARIANTS)}, all")
    has_norse = importlib.util.find_spec("norse") is not None
    names = [n for n in wanted if VARIANTS[n][0] == "spikeexp" or has_norse]
    print(machine_header(args.threads))
    results: dict[str, list[dict[str, float | str]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            results[name].append(run_variant(name, args.steps, args.threads))
    source = results[names[0]][0]["data"]
    print(f"batch {BATCH}, T = {STEPS}, {source}; median of {args.rounds} rounds x {args.steps}")
    print("steps (each variant in a fresh process, variants alternating within each round)\n")
    print("| variant | ms / step | samples / s | peak RSS MiB | Norse ms / this |")
    print("|---|---|---|---|---|")
    medians = {
        name: statistics.median(float(r["ms"]) for r in runs) for name, runs in results.items()
    }
    for name, runs in results.items():
        ms = medians[name]
        rss = max(float(r["rss_mib"]) for r in runs)
        ratio = f"{medians['Norse'] / ms:.2f}x" if "Norse" in medians else "-"
        print(f"| {name} | {ms:.1f} | {1e3 * BATCH / ms:.0f} | {rss:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
