"""Layer benchmark: input Linear + LIF population over T steps, spikeexp backends vs others.

For each size (T, batch, inputs -> hidden) and mode (``train``: forward + backward with a loss on
spike counts; ``forward``: inference under ``torch.no_grad``; ``neuron``: the ``train`` step of
the neuron layer alone on fixed input currents, no Linear, which isolates the part the libraries
differ in) it prints the median and fastest time per iteration, neuron-updates per second, the
peak memory of one iteration and the ratio to the GEMM floor (the input Linear alone, same mode).
Norse, snnTorch and SpikingJelly run side by side when they are importable
(``pip install spikeexp[bench]``); the script runs without them.

Peak memory is the PyTorch CPU allocator's: bytes allocated by tensors during one iteration
above what was allocated when it started (``torch.profiler`` with ``profile_memory=True``; the
input batch and the weights exist before and are not counted), also given per neuron-step.

The memory-task case (20 inputs -> 20 recurrent neurons, 2,400 steps, batch 128) compares the
recurrent layers' reference step loop with the fused kernel.

All libraries run in this one process with the allocator setting of ``spikeexp-train``
(``spikeexp.runtime.allocator.keep_freed_memory``: freed memory is reused instead of page-faulted in
again); ``--default-allocator`` measures without it.

Usage::

    python benchmarks/bench_layers.py                     # everything, about 4 min alone
    python benchmarks/bench_layers.py --sizes small --repeats 3 --skip-recurrent
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch.profiler import ProfilerActivity, profile

import spikeexp as snn
from spikeexp.runtime.allocator import keep_freed_memory

SIZES = {
    "small": (25, 32, 784, 128),
    "medium": (100, 64, 784, 512),
    "large": (100, 128, 700, 1024),
}
MEMORY_TASK = (2400, 128, 20, 20)

Layer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Result:
    name: str
    ms: float
    best_ms: float
    peak_bytes: int
    rate: float


def _spikeexp(backend: str) -> Callable[[], Layer]:
    def make() -> Layer:
        layer = snn.LIF(backend=backend)
        return lambda currents: layer(currents)[0]

    return make


def _norse() -> Layer:
    import norse.torch as norse

    layer = norse.LIF()
    return lambda currents: layer(currents)[0]


def _snntorch() -> Layer:
    import snntorch

    leaky = snntorch.Leaky(beta=0.9)

    def run(currents: torch.Tensor) -> torch.Tensor:
        mem = leaky.init_leaky()
        spikes = []
        for current in currents:
            spike, mem = leaky(current, mem)
            spikes.append(spike)
        return torch.stack(spikes)

    return run


def _spikingjelly() -> Layer:
    from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(tau=2.0, step_mode="m")

    def run(currents: torch.Tensor) -> torch.Tensor:
        node.reset()
        return node(currents)

    return run


OTHERS = {"Norse LIF": _norse, "snnTorch Leaky": _snntorch, "SpikingJelly LIFNode": _spikingjelly}


def available_others() -> dict[str, Callable[[], Layer]]:
    """The other libraries' layers that import here (an optional ``bench`` extra)."""
    found = {}
    for name, make in OTHERS.items():
        try:
            make()
        except ImportError:
            continue
        found[name] = make
    return found


def time_ms(step: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Median and fastest of ``repeats`` timed calls (ms), after one warm-up call."""
    step()  # warm-up: first-use costs (kernel build, allocator growth)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), 1e3 * min(times)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Hide the profiler's start/stop lines (written by C++ straight to file descriptor 2)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_bytes(step: Callable[[], object]) -> int:
    """Peak of CPU tensor bytes allocated during ``step`` (profiler memory events)."""
    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    current = peak = 0
    for event in sorted(events, key=lambda e: e.start_ns()):
        if str(event.device_type()).endswith("CPU"):
            current += event.nbytes()
            peak = max(peak, current)
    return peak


def make_step(
    layer: Layer | None, linear: torch.nn.Linear, data: torch.Tensor, mode: str
) -> Callable[[], object]:
    """One iteration of ``mode`` (see the module docstring); ``layer=None``: the GEMM alone."""
    steps, batch, _ = data.shape
    flat = data.reshape(steps * batch, -1)
    target = torch.full((batch, linear.out_features), 2.0)
    with torch.no_grad():
        fixed = linear(flat).reshape(steps, batch, -1)
    fixed.requires_grad_()

    def forward() -> torch.Tensor:
        currents = fixed if mode == "neuron" else linear(flat).reshape(steps, batch, -1)
        return currents if layer is None else layer(currents)

    if mode == "forward":

        def infer() -> torch.Tensor:
            with torch.no_grad():
                return forward()

        return infer

    def train_step() -> None:
        linear.zero_grad(set_to_none=True)
        fixed.grad = None
        out = forward()
        loss = out.sum() if layer is None else ((out.sum(0) - target) ** 2).mean()
        loss.backward()

    return train_step


def bench_size(
    label: str, size: tuple[int, int, int, int], others: dict, repeats: int, modes: list[str]
) -> None:
    steps, batch, inputs, hidden = size
    torch.manual_seed(0)
    data = torch.rand(steps, batch, inputs)
    linear = torch.nn.Linear(inputs, hidden)
    with torch.no_grad():
        linear.weight.normal_(0.0, 4.0 / inputs**0.5)
    layers: dict[str, Callable[[], Layer] | None] = {
        "GEMM alone (floor)": None,
        "spikeexp reference": _spikeexp("reference"),
        "spikeexp fused": _spikeexp("fused"),
        "spikeexp compiled": _spikeexp("compiled"),
        **others,
    }
    neuron_steps = steps * batch * hidden
    with torch.no_grad():
        rate = float(
            snn.LIF()(linear(data.reshape(steps * batch, -1)).reshape(steps, batch, -1))[0].mean()
        )
    for mode in modes:
        results = []
        for name, make in layers.items():
            if make is None and mode == "neuron":
                continue
            step = make_step(None if make is None else make(), linear, data, mode)
            ms, best = time_ms(step, repeats)
            results.append(Result(name, ms, best, peak_bytes(step), neuron_steps / (ms * 1e-3)))
        _print_table(f"{label} {size} {mode}", results, neuron_steps, rate)


def _print_table(title: str, results: list[Result], neuron_steps: int, rate: float) -> None:
    floor = results[0].ms if results[0].name.startswith("GEMM") else None
    print(f"\n### {title} (spike probability per step {rate:.3f})\n")
    print(
        "| layer | ms/iter (median) | fastest ms | neuron-updates/s | peak MB | B/neuron-step "
        "| x floor |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r.ms / floor:.2f}" if floor else "-"
        print(
            f"| {r.name} | {r.ms:.1f} | {r.best_ms:.1f} | {r.rate / 1e9:.2f} G | "
            f"{r.peak_bytes / 2**20:.1f} | {r.peak_bytes / neuron_steps:.1f} | {ratio} |"
        )
    ours = next(r for r in results if r.name == "spikeexp fused")
    others = [r for r in results if not r.name.startswith(("spikeexp", "GEMM"))]
    if others:
        fastest = min(others, key=lambda r: r.ms)
        print(
            f"\nspeed-up of spikeexp fused over the fastest other ({fastest.name}, "
            f"{fastest.ms:.1f} ms): {fastest.ms / ours.ms:.2f}x"
        )


def bench_recurrent(repeats: int) -> None:
    steps, batch, inputs, hidden = MEMORY_TASK
    torch.manual_seed(0)
    data = (torch.rand(steps, batch, inputs) < 0.05).float()
    target = torch.full((batch, hidden), 2.0)
    results = []
    layers: dict[str, Callable[[], torch.nn.Module]] = {}
    for model in ("LIFRecurrent", "LSNNRecurrent"):
        for backend in ("reference", "fused"):
            layers[f"spikeexp {model} {backend}"] = lambda model=model, backend=backend: getattr(
                snn, model
            )(inputs, hidden, backend=backend)
    try:
        import norse.torch as norse

        layers["Norse LSNNRecurrent"] = lambda: norse.LSNNRecurrent(inputs, hidden)
    except ImportError:
        pass
    for name, make in layers.items():
        torch.manual_seed(0)
        layer = make()

        def train_step(layer: torch.nn.Module = layer) -> None:
            layer.zero_grad(set_to_none=True)
            spikes = layer(data)[0]
            ((spikes.sum(0) - target) ** 2).mean().backward()

        ms, best = time_ms(train_step, repeats)
        rate = steps * batch * hidden / ms * 1e3
        results.append(Result(name, ms, best, peak_bytes(train_step), rate))
    print(f"\n### memory task, recurrent {MEMORY_TASK} train\n")
    print("| layer | ms/iter (median) | fastest ms | peak MB | fused speed-up vs reference loop |")
    print("|---|---|---|---|---|")
    by_name = {r.name: r for r in results}
    for r in results:
        reference = by_name.get(r.name.replace("fused", "reference"))
        speedup = f"{reference.ms / r.ms:.1f}x" if "fused" in r.name and reference else "-"
        print(
            f"| {r.name} | {r.ms:.0f} | {r.best_ms:.0f} | {r.peak_bytes / 2**20:.1f} | {speedup} |"
        )
    norse = by_name.get("Norse LSNNRecurrent")
    if norse:
        ours = by_name["spikeexp LSNNRecurrent fused"]
        print(f"\nspeed-up of spikeexp LSNNRecurrent fused over Norse's: {norse.ms / ours.ms:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", default="small,medium,large", help="comma list of " + ",".join(SIZES)
    )
    parser.add_argument("--modes", default="train,forward,neuron", help="train, forward, neuron")
    parser.add_argument("--repeats", type=int, default=5, help="timed iterations (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--skip-others", action="store_true", help="spikeexp only")
    parser.add_argument("--skip-recurrent", action="store_true", help="no memory-task case")
    parser.add_argument(
        "--default-allocator", action="store_true", help="without keep_freed_memory"
    )
    args = parser.parse_args()
    if not args.default_allocator:
        keep_freed_memory()
    torch.set_num_threads(args.threads)
    others = {} if args.skip_others else available_others()
    cpu = platform.processor() or platform.machine()
    print(
        f"torch {torch.__version__}, {args.threads} threads, {cpu}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}; other libraries: {', '.join(others) or 'none'}; "
        f"allocator: {'default' if args.default_allocator else 'keep_freed_memory'}"
    )
    for label in args.sizes.split(","):
        if label not in SIZES:
            parser.error(f"--sizes: unknown size {label!r}; valid: {', '.join(SIZES)}")
        bench_size(label, SIZES[label], others, args.repeats, args.modes.split(","))
    if not args.skip_recurrent:
        bench_recurrent(max(2, args.repeats // 2))


if __name__ == "__main__":
    main()
