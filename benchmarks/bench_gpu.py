"""GPU benchmark: the Open Neuromorphic layer workload and the Fashion-MNIST ConvNet step.

Layer workload (the public Open Neuromorphic SNN-library benchmark): ``Linear(n, n)`` followed by
LIF neurons, batch 16, T = 500 steps, n = 512, 4096 and 16384, float32; ``forward`` is inference
(``torch.no_grad``), ``forward+backward`` adds the backward pass of ``out.sum()`` (gradients of
the input and the weights). Every library gets the same input, the same ``Linear`` applied to all
``T * batch`` rows in one matrix product (the same GEMM for everyone, so that the rows differ in
the neurons), then its own LIF over time:

* spikeexp: ``spikeexp.LIF`` (current-based LIF, the fused Triton kernels on CUDA);
  ``spikeexp, bf16-mixed`` runs the same under ``torch.autocast(bfloat16)``;
* Norse: ``LIFBoxCell`` stepped over time, its step compiled with ``torch.compile``;
* SpikingJelly: ``LIFNode(step_mode="m")``, its CuPy backend where the installed version has one
  and ``cupy`` imports, else the kernels it picks itself (named in the output);
* snnTorch: ``Leaky`` stepped over time.

Peers are optional (the ``bench`` extra); missing ones are listed and skipped. Each round runs
every contestant once per mode, alternating; the table gives the median over rounds with
``torch.cuda.synchronize()`` before and after each timed call, and the peak memory one
forward+backward allocates beyond its inputs and weights (``torch.cuda.max_memory_allocated``;
also per neuron-step). The ConvNet part times a training step (forward, backward, Adam) of the
network of ``experiment=fashion_mnist_norse_convnet`` against the same network in Norse
(``benchmarks/bench_convnet.py``), interleaved in one process.

Without CUDA the same code runs on the CPU at a tiny size (n = 64, T = 20, batch 2; ConvNet batch
8) as a smoke test, and says that GPU figures need a GPU.

Usage::

    python benchmarks/bench_gpu.py                      # everything, a few minutes on one GPU
    python benchmarks/bench_gpu.py --sizes 4096 --rounds 3 --skip-convnet
    python benchmarks/bench_gpu.py --cpu --peers snntorch    # the CPU smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

import spikeexp as snn

Layer = Callable[[torch.Tensor], torch.Tensor]
GPU = {"sizes": [512, 4096, 16384], "steps": 500, "batch": 16, "rounds": 5, "convnet_batch": 64}
SMOKE = {"sizes": [64], "steps": 20, "batch": 2, "rounds": 2, "convnet_batch": 8}
ALPHA = 0.1  # dt / tau_mem (1 ms / 10 ms) for every library


@dataclass
class Contestant:
    """A LIF layer of one library: ``make(n, device)`` returns ``neurons(currents) -> spikes``."""

    name: str
    make: Callable[[int, torch.device], Layer]
    autocast: bool = False
    times: dict[tuple[int, str], list[float]] = field(default_factory=dict)
    peak: dict[int, int] = field(default_factory=dict)


def spikeexp_layer(n: int, device: torch.device) -> Layer:
    layer = snn.LIF(tau_mem_inv=100.0).to(device)
    return lambda currents: layer(currents)[0]


def norse_layer(n: int, device: torch.device) -> Layer:
    import norse.torch as norse

    cell = torch.compile(norse.LIFBoxCell().to(device))

    def run(currents: torch.Tensor) -> torch.Tensor:
        state = None
        spikes = []
        for current in currents:
            z, state = cell(current, state)
            spikes.append(z)
        return torch.stack(spikes)

    return run


def spikingjelly_layer(n: int, device: torch.device) -> Layer:
    from spikingjelly.activation_based import functional, neuron

    node = neuron.LIFNode(tau=1.0 / ALPHA, step_mode="m").to(device)
    if "cupy" in getattr(node, "supported_backends", ()) and _importable("cupy"):
        node.backend = "cupy"

    def run(currents: torch.Tensor) -> torch.Tensor:
        functional.reset_net(node)
        return node(currents)

    return run


def spikingjelly_kernels() -> str:
    from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(step_mode="m")
    if "cupy" in getattr(node, "supported_backends", ()):
        return "CuPy backend" if _importable("cupy") else "torch backend (cupy does not import)"
    return "its own kernel choice"


def snntorch_layer(n: int, device: torch.device) -> Layer:
    import snntorch

    neurons = snntorch.Leaky(beta=1.0 - ALPHA).to(device)

    def run(currents: torch.Tensor) -> torch.Tensor:
        membrane = neurons.init_leaky()
        spikes = []
        for current in currents:
            z, membrane = neurons(current, membrane)
            spikes.append(z)
        return torch.stack(spikes)

    return run


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None and bool(__import__(name))
    except Exception:  # a broken install (e.g. cupy without a CUDA toolkit) counts as missing
        return False


PEERS = {
    "norse": ("Norse LIFBoxCell, torch.compile", norse_layer),
    "spikingjelly": ("SpikingJelly LIFNode", spikingjelly_layer),
    "snntorch": ("snnTorch Leaky", snntorch_layer),
}


def contestants(libraries: list[str]) -> tuple[list[Contestant], list[str]]:
    """The contestants of ``libraries`` that are installed, and the missing peers' names."""
    found = [
        Contestant("spikeexp", spikeexp_layer),
        Contestant("spikeexp, bf16-mixed", spikeexp_layer, autocast=True),
    ]
    missing = []
    for module, (name, make) in PEERS.items():
        if module not in libraries:
            continue
        if _importable(module):
            if module == "spikingjelly":
                name = f"{name} ({spikingjelly_kernels()})"
            found.append(Contestant(name, make))
        else:
            missing.append(module)
    return found, missing


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call, the device synchronised before and after."""
    synchronize(device)
    start = time.perf_counter()
    call()
    synchronize(device)
    return time.perf_counter() - start


@contextlib.contextmanager
def precision(contestant: Contestant, device: torch.device) -> Iterator[None]:
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=contestant.autocast):
        yield


def layer_calls(
    contestant: Contestant, n: int, steps: int, batch: int, device: torch.device
) -> dict[str, Callable[[], object]]:
    """The ``forward`` and ``forward+backward`` calls of ``contestant`` at size ``n``."""
    torch.manual_seed(0)
    linear = nn.Linear(n, n).to(device)
    neurons = contestant.make(n, device)
    x = (torch.rand(steps, batch, n, device=device) * 2.0).requires_grad_()

    def forward() -> torch.Tensor:
        with precision(contestant, device):
            currents = linear(x.reshape(steps * batch, n)).reshape(steps, batch, n)
            return neurons(currents)

    def inference() -> None:
        with torch.no_grad():
            forward()

    def training() -> None:
        spikes = forward()
        spikes.float().sum().backward()
        x.grad = None
        linear.zero_grad(set_to_none=True)

    return {"forward": inference, "forward+backward": training}


def peak_bytes(call: Callable[[], object], device: torch.device) -> int | None:
    """Bytes one call allocates at its peak beyond what exists before it (CUDA only)."""
    if device.type != "cuda":
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    call()
    synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def bench_layers(
    found: list[Contestant], sizes: list[int], steps: int, batch: int, rounds: int, device
) -> None:
    modes = ("forward", "forward+backward")
    for n in sizes:
        calls = {}
        for contestant in found:
            calls[contestant.name] = layer_calls(contestant, n, steps, batch, device)
            for call in calls[contestant.name].values():  # warm-up: compile, autotune, caches
                call()
            peak = peak_bytes(calls[contestant.name]["forward+backward"], device)
            if peak is not None:
                contestant.peak[n] = peak
        for _ in range(rounds):
            for contestant in found:
                for mode in modes:
                    seconds = timed(calls[contestant.name][mode], device)
                    contestant.times.setdefault((n, mode), []).append(seconds)
        del calls
        if device.type == "cuda":
            torch.cuda.empty_cache()


def print_layers(found: list[Contestant], sizes: list[int], steps: int, batch: int) -> None:
    print("| n | library | forward ms | forward+backward ms | peak MiB | B / neuron-step |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        for contestant in found:
            forward = statistics.median(contestant.times[(n, "forward")]) * 1e3
            train = statistics.median(contestant.times[(n, "forward+backward")]) * 1e3
            peak = contestant.peak.get(n)
            mib = f"{peak / 2**20:.0f}" if peak is not None else "-"
            per_step = f"{peak / (steps * batch * n):.1f}" if peak is not None else "-"
            print(f"| {n} | {contestant.name} | {forward:.2f} | {train:.2f} | {mib} | {per_step} |")


def print_targets(found: list[Contestant], sizes: list[int]) -> None:
    """forward+backward of spikeexp against the fastest peer at every size (target: 1.5x at
    n = 4096 and 16384)."""
    spikeexp, peers = found[0], [c for c in found if not c.name.startswith("spikeexp")]
    if not peers:
        print("\nno peer installed: no ratios (pip install spikeexp[bench])")
        return
    print()
    for n in sizes:
        mode = (n, "forward+backward")
        ours = statistics.median(spikeexp.times[mode])
        fastest = min(peers, key=lambda c: statistics.median(c.times[mode]))
        ratio = statistics.median(fastest.times[mode]) / ours
        goal = " (target >= 1.5x)" if n in (4096, 16384) else ""
        print(f"n = {n}: spikeexp forward+backward {ratio:.2f}x {fastest.name}{goal}")


def bench_convnet(rounds: int, batch: int, device: torch.device, norse: bool) -> None:
    """Training steps of the Fashion-MNIST ConvNet, spikeexp against Norse (when ``norse`` and
    installed), interleaved."""
    path = Path(__file__).with_name("bench_convnet.py")
    spec = importlib.util.spec_from_file_location("bench_convnet", path)
    convnet = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convnet)
    models = {"spikeexp": lambda: convnet.spikeexp_model([])}
    if norse and _importable("norse"):
        models["Norse"] = convnet.NorseConvNet
    images, labels, source = convnet.batches(2)
    x, y = images[0][:batch].to(device), labels[0][:batch].to(device)
    steps = {}
    for name, make in models.items():
        torch.manual_seed(0)
        model = make().to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

        def step(model=model, optimizer=optimizer) -> None:
            loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()
        steps[name] = step
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            times[name].append(timed(step, device))
    medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    print(f"\nFashion-MNIST ConvNet training step, batch {batch}, T = 8, {source}")
    print("| network | ms / step | Norse ms / this |\n|---|---|---|")
    for name, ms in medians.items():
        ratio = f"{medians['Norse'] / ms:.2f}x" if "Norse" in medians else "-"
        print(f"| {name} | {ms:.1f} | {ratio} |")
    if "Norse" in medians:
        print(f"ConvNet step: spikeexp {medians['Norse'] / medians['spikeexp']:.2f}x Norse "
              "(target >= 2x)")  # fmt: skip


def describe(device: torch.device) -> str:
    triton = sys.modules.get("triton") or (__import__("triton") if _importable("triton") else None)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"CPU ({torch.get_num_threads()} threads)"
    tf32 = torch.backends.cuda.matmul.allow_tf32
    return (
        f"device: {name}; torch {torch.__version__}, "
        f"triton {triton.__version__ if triton else 'not installed'}; "
        f"float32 matrix products{' (TF32 allowed)' if tf32 else ''}"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", help="n of Linear(n, n) + LIF")
    parser.add_argument("--steps", type=int, help="time steps T")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--rounds", type=int, help="interleaved rounds (median over them)")
    parser.add_argument(
        "--peers", nargs="*", default=list(PEERS), choices=list(PEERS), help="peer libraries"
    )
    parser.add_argument("--skip-convnet", action="store_true")
    parser.add_argument("--cpu", action="store_true", help="the CPU smoke run even with CUDA")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    preset = GPU if device.type == "cuda" else SMOKE
    sizes = args.sizes or preset["sizes"]
    steps = args.steps or preset["steps"]
    batch = args.batch or preset["batch"]
    rounds = args.rounds or preset["rounds"]
    if device.type != "cuda":
        print("No CUDA device: a CPU smoke run at a tiny size. GPU figures need a GPU.")
    print(describe(device))
    found, missing = contestants(args.peers)
    if missing:
        print(f"not installed (skipped): {', '.join(missing)}")
    print(f"\nLinear(n, n) + LIF, batch {batch}, T = {steps}; median of {rounds} rounds\n")
    bench_layers(found, sizes, steps, batch, rounds, device)
    print_layers(found, sizes, steps, batch)
    print_targets(found, sizes)
    if not args.skip_convnet:
        bench_convnet(rounds, preset["convnet_batch"], device, "norse" in args.peers)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
