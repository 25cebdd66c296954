"""Layer benchmark: input Linear + LIF population over T steps, spikeexp against the GEMM floor
and the other libraries, on dense and on spike input.

For each size (T, batch, inputs -> hidden), input kind and mode it prints the median time per
iteration over interleaved rounds (every contestant measured once per round, in turns; see
``_timing.interleaved``), neuron-updates per second, the peak memory of one iteration and the
ratio to the GEMM floor (the input ``Linear`` alone, same mode), and the floor's GFLOP/s.

* Input kinds: ``dense`` (uniform [0, 1) values, as a first layer sees) and ``spikes`` (binary,
  ``--density`` ones: what every layer after a spiking layer sees). On spike input two more
  rows: the event-driven product alone (``spikeexp.SpikeLinear``, exact to float32 rounding)
  and spikeexp's fused LIF behind it.
* ``--bf16`` adds the floor and spikeexp's fused LIF with the forward pass under bfloat16
  autocast (what ``trainer.precision=bf16-mixed`` does: the GEMMs on AMX / AVX-512 BF16 units,
  the neuron state in float32).
* Modes: ``train`` (forward + backward with a squared-error loss on spike counts), ``forward``
  (inference under ``torch.no_grad``), ``neuron`` (the ``train`` step of the neuron layer alone
  on fixed input currents, no Linear: the part the libraries differ in; dense input only).

Norse, snnTorch and SpikingJelly run side by side when they are importable
(``pip install spikeexp[bench]``); the script runs without them. Peak memory is the PyTorch CPU
allocator's: bytes allocated by tensors during one iteration above what was allocated when it
started (``torch.profiler`` with ``profile_memory=True``).

The header gives the CPU model, the thread count, the load average before the run and the
medium training floor on 1 and on ``--threads`` threads: their ratio is about the thread count on
an idle machine and less when other processes compete for the cores.

The memory-task case (20 inputs -> 20 recurrent neurons, 2,400 steps, batch 128) compares the
recurrent layers' reference step loop with the fused kernel. All libraries run in this one
process with the allocator setting of ``spikeexp-train`` (``keep_freed_memory``);
``--default-allocator`` measures without it.

Usage::

    python benchmarks/bench_layers.py                     # everything, about 5 min alone
    python benchmarks/bench_layers.py --sizes medium --inputs spikes --modes train --rounds 7
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from _timing import interleaved, machine_header, median_ms, thread_ratio
from torch.profiler import ProfilerActivity, profile

import spikeexp as snn
from spikeexp.runtime.allocator import keep_freed_memory

SIZES = {
    "small": (25, 32, 784, 128),
    "medium": (100, 64, 784, 512),
    "large": (100, 128, 700, 1024),
}
MEMORY_TASK = (2400, 128, 20, 20)
FLOOR = "GEMM alone (floor)"
SPIKE_FLOOR = "spike product alone"
FUSED = "spikeexp fused"
FUSED_SPIKES = "spikeexp fused, spike product"
FLOOR_BF16 = "GEMM alone, bf16 autocast"
FUSED_BF16 = "spikeexp fused, bf16 autocast"

Layer = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Result:
    name: str
    ms: float
    spread_ms: float
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
    layer: Layer | None,
    linear: torch.nn.Linear,
    data: torch.Tensor,
    mode: str,
    bf16: bool = False,
) -> Callable[[], object]:
    """One iteration of ``mode`` (see the module docstring); ``layer=None``: the product alone.
    ``bf16``: the forward pass under bfloat16 autocast (as ``trainer.precision=bf16-mixed``)."""
    steps, batch, _ = data.shape
    flat = data.reshape(steps * batch, -1)
    target = torch.full((batch, linear.out_features), 2.0)
    with torch.no_grad():
        fixed = linear(flat).reshape(steps, batch, -1)
    fixed.requires_grad_()

    def forward() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
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


Contestant = tuple[bool, Callable | None, bool]
"""(uses the spike product, neuron layer factory or None for the product alone, bf16 autocast)"""


def contestants(kind: str, mode: str, others: dict, bf16: bool) -> dict[str, Contestant]:
    table: dict[str, Contestant] = {}
    if mode != "neuron":
        table[FLOOR] = (False, None, False)
        if kind == "spikes":
            table[SPIKE_FLOOR] = (True, None, False)
        if bf16:
            table[FLOOR_BF16] = (False, None, True)
    table["spikeexp reference"] = (False, _spikeexp("reference"), False)
    table[FUSED] = (False, _spikeexp("fused"), False)
    if kind == "spikes" and mode != "neuron":
        table[FUSED_SPIKES] = (True, _spikeexp("fused"), False)
    if bf16:
        table[FUSED_BF16] = (False, _spikeexp("fused"), True)
    table["spikeexp compiled"] = (False, _spikeexp("compiled"), False)
    for name, make in others.items():
        table[name] = (False, make, False)
    return table


def input_data(size: tuple[int, int, int, int], kind: str, density: float) -> torch.Tensor:
    steps, batch, inputs, _ = size
    generator = torch.Generator().manual_seed(0)
    data = torch.rand(steps, batch, inputs, generator=generator)
    return (data < density).float() if kind == "spikes" else data


def linear_layers(inputs: int, hidden: int) -> tuple[torch.nn.Linear, snn.SpikeLinear]:
    """The input layer as ``nn.Linear`` and as ``SpikeLinear`` with the same parameters; weights
    scaled so that the hidden layer spikes at a moderate rate on either input."""
    torch.manual_seed(0)
    dense = torch.nn.Linear(inputs, hidden)
    with torch.no_grad():
        dense.weight.normal_(0.0, 4.0 / inputs**0.5)
    spiking = snn.SpikeLinear(inputs, hidden)
    spiking.load_state_dict(dense.state_dict())
    return dense, spiking


def bench_case(
    label: str,
    size: tuple,
    kind: str,
    mode: str,
    others: dict,
    rounds: int,
    density: float,
    bf16: bool,
) -> None:
    steps, batch, inputs, hidden = size
    data = input_data(size, kind, density)
    dense, spiking = linear_layers(inputs, hidden)
    with torch.no_grad():
        currents = dense(data.reshape(steps * batch, -1)).reshape(steps, batch, -1)
        rate = float(snn.LIF()(currents)[0].mean())
    table = contestants(kind, mode, others, bf16)
    runs = {
        name: make_step(
            None if make is None else make(), spiking if spikes else dense, data, mode, autocast
        )
        for name, (spikes, make, autocast) in table.items()
    }
    times = interleaved(runs, rounds)
    neuron_steps = steps * batch * hidden
    results = []
    for name, seconds in times.items():
        ms = median_ms(seconds)
        spread = 1e3 * (max(seconds) - min(seconds))
        results.append(Result(name, ms, spread, peak_bytes(runs[name]), neuron_steps / ms * 1e3))
    flops = 2 * steps * batch * inputs * hidden * (2 if mode == "train" else 1)
    title = f"{label} {size} {kind} input {mode}"
    if kind == "spikes":
        title += f" (input density {density:g})"
    _print_table(title, results, neuron_steps, rate, flops, rounds)


def _print_table(
    title: str, results: list[Result], neuron_steps: int, rate: float, flops: int, rounds: int
) -> None:
    by_name = {r.name: r for r in results}
    floor = by_name.get(FLOOR)
    print(f"\n### {title}, spike probability per step {rate:.3f}, median of {rounds} rounds\n")
    if floor:
        print(
            f"floor: {flops / 1e9:.2f} GFLOP per iteration, {flops / floor.ms / 1e6:.0f} GFLOP/s\n"
        )
    columns = "ms/iter (median) | max-min ms | neuron-updates/s | peak MB | B/neuron-step"
    print(f"| layer | {columns} | x floor |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        ratio = f"{r.ms / floor.ms:.2f}" if floor else "-"
        print(
            f"| {r.name} | {r.ms:.2f} | {r.spread_ms:.2f} | {r.rate / 1e9:.2f} G | "
            f"{r.peak_bytes / 2**20:.1f} | {r.peak_bytes / neuron_steps:.1f} | {ratio} |"
        )
    others = [r for r in results if not r.name.startswith(("spikeexp", "GEMM", "spike product"))]
    if not others:
        return
    fastest = min(others, key=lambda r: r.ms)
    for ours in (by_name[FUSED], by_name.get(FUSED_SPIKES), by_name.get(FUSED_BF16)):
        if ours is not None:
            print(
                f"\nspeed-up of {ours.name} over the fastest other ({fastest.name}, "
                f"{fastest.ms:.2f} ms): {fastest.ms / ours.ms:.2f}x"
            )


def bench_recurrent(rounds: int) -> None:
    steps, batch, inputs, hidden = MEMORY_TASK
    torch.manual_seed(0)
    data = (torch.rand(steps, batch, inputs) < 0.05).float()
    target = torch.full((batch, hidden), 2.0)
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
    runs = {}
    for name, make in layers.items():
        torch.manual_seed(0)
        layer = make()

        def train_step(layer: torch.nn.Module = layer) -> None:
            layer.zero_grad(set_to_none=True)
            spikes = layer(data)[0]
            ((spikes.sum(0) - target) ** 2).mean().backward()

        runs[name] = train_step
    times = interleaved(runs, rounds, min_seconds=0.0)
    medians = {name: median_ms(seconds) for name, seconds in times.items()}
    print(f"\n### memory task, recurrent {MEMORY_TASK} train, median of {rounds} rounds\n")
    print("| layer | ms/iter (median) | peak MB | fused speed-up vs reference loop |")
    print("|---|---|---|---|")
    for name, ms in medians.items():
        reference = medians.get(name.replace("fused", "reference"))
        speedup = f"{reference / ms:.1f}x" if "fused" in name and reference else "-"
        peak = peak_bytes(runs[name]) / 2**20
        print(f"| {name} | {ms:.0f} | {peak:.1f} | {speedup} |")
    if "Norse LSNNRecurrent" in medians:
        ours = medians["spikeexp LSNNRecurrent fused"]
        ratio = medians["Norse LSNNRecurrent"] / ours
        print(f"\nspeed-up of spikeexp LSNNRecurrent fused over Norse's: {ratio:.1f}x")


def print_header(threads: int, others: dict, default_allocator: bool, rounds: int) -> None:
    print(machine_header(threads))
    print(
        f"other libraries: {', '.join(others) or 'none'}; allocator: "
        f"{'default' if default_allocator else 'keep_freed_memory'}"
    )
    _steps, _batch, inputs, hidden = SIZES["medium"]
    dense, _ = linear_layers(inputs, hidden)
    floor = make_step(None, dense, input_data(SIZES["medium"], "dense", 0.0), "train")
    one, many = thread_ratio(floor, threads, rounds)
    print(
        f"medium training floor: {1e3 * one:.1f} ms on 1 thread, {1e3 * many:.1f} ms on "
        f"{threads}: ratio {one / many:.2f} (about {threads} when the cores are free)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="small,medium,large", help=",".join(SIZES))
    parser.add_argument("--inputs", default="dense,spikes", help="dense, spikes")
    parser.add_argument("--modes", default="train,forward,neuron", help="train, forward, neuron")
    parser.add_argument("--density", type=float, default=0.2, help="spike input density")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument(
        "--bf16", action="store_true", help="also the floor and fused LIF under bf16 autocast"
    )
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
    print_header(args.threads, others, args.default_allocator, args.rounds)
    for label in args.sizes.split(","):
        if label not in SIZES:
            parser.error(f"--sizes: unknown size {label!r}; valid: {', '.join(SIZES)}")
        for kind in args.inputs.split(","):
            if kind not in ("dense", "spikes"):
                parser.error(f"--inputs: unknown kind {kind!r}; valid: dense, spikes")
            for mode in args.modes.split(","):
                if mode == "neuron" and kind == "spikes":
                    continue  # the neuron layer alone does not see the input
                bench_case(
                    label, SIZES[label], kind, mode, others, args.rounds, args.density, args.bf16
                )
    if not args.skip_recurrent:
        bench_recurrent(max(3, args.rounds // 2))


if __name__ == "__main__":
    main()
