"""The fused LIF kernels against the memory bandwidth of this machine.

The LIF step does a few floating-point operations per neuron and streams its ``[T, ...]``
arrays once, so the kernels are bounded by memory traffic. This script measures, on
``--threads`` threads and in interleaved rounds (median):

* reference streams over arrays of the same size: read only (``sum``), write only (``fill_``),
  read + write (``copy_``), in GB/s;
* the LIF kernels alone (``spikeexp::lif_sequence`` and its backward operator): inference
  (reads the input, writes spikes: 8 bytes per neuron-step), training forward (also writes the
  pre-reset voltage: 12 bytes), backward (reads the voltage and a time-constant output gradient,
  writes the input gradient: 8 bytes), as time, neuron-steps per second, GB/s and fraction of
  the copy bandwidth.

``--variants`` also builds the kernels with the memory-access switches of ``kernels.cpp`` turned
off (``SPIKEEXP_STREAM=0``: ordinary stores instead of streaming stores; ``SPIKEEXP_PREFETCH=0``:
no software prefetch of the next time step; ``SPIKEEXP_TILE``: neurons per tile) and times the
three LIF kernels of each build side by side through ``ctypes``.

Usage::

    python benchmarks/bench_kernels.py                       # medium and large, ~30 s alone
    python benchmarks/bench_kernels.py --sizes 100x128x1024 --variants --rounds 9
"""

from __future__ import annotations

import argparse
import ctypes
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from _timing import interleaved, machine_header, median_ms

from spikeexp.functional.fused import build, ops
from spikeexp.runtime.allocator import keep_freed_memory

SIZES = "100x64x512,100x128x1024"  # T x batch x neurons: bench_layers' medium and large
VARIANTS = {  # name: -D switches of kernels.cpp
    "as built": (),
    "no streaming stores": ("-DSPIKEEXP_STREAM=0",),
    "no prefetch": ("-DSPIKEEXP_PREFETCH=0",),
    "neither": ("-DSPIKEEXP_STREAM=0", "-DSPIKEEXP_PREFETCH=0"),
    "tiles of 256": ("-DSPIKEEXP_TILE=256",),
}
PARAMETERS = (0.1, 0.2, 0.0, 1.0, 0.0)  # a, b, v_leak, v_th, v_reset


def lif_steps(steps: int, batch: int, neurons: int) -> dict[str, tuple[Callable, int]]:
    """The three LIF kernels through the operators: name -> (call, bytes per neuron-step)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps, batch, neurons, generator=generator) * 4 + 1
    v0, i0 = torch.zeros(batch, neurons), torch.zeros(batch, neurons)
    params = [torch.full((neurons,), value) for value in PARAMETERS]
    _, _, _, u, j = ops.lif_sequence(x, v0, i0, *params, "super", 100.0, 1)
    grad_z = torch.ones(batch, neurons).expand(steps, batch, neurons)

    def backward() -> object:
        return ops.lif_sequence_backward(
            grad_z, None, None, u, j, v0, *params, "super", 100.0, False, torch.float32
        )

    return {
        "LIF inference": (lambda: ops.lif_sequence(x, v0, i0, *params, "super", 100.0, 0), 8),
        "LIF training forward": (
            lambda: ops.lif_sequence(x, v0, i0, *params, "super", 100.0, 1),
            12,
        ),
        "LIF backward": (backward, 8),
    }


def stream_steps(elements: int) -> dict[str, tuple[Callable, int]]:
    a, b = torch.rand(elements), torch.empty(elements)
    return {
        "read (sum)": (lambda: a.sum(), 4),
        "write (fill_)": (lambda: b.fill_(1.0), 4),
        "read + write (copy_)": (lambda: b.copy_(a), 8),
    }


def bandwidth_table(steps: int, batch: int, neurons: int, rounds: int) -> None:
    count = steps * batch * neurons
    cases = {**stream_steps(count), **lif_steps(steps, batch, neurons)}
    times = interleaved({name: run for name, (run, _) in cases.items()}, rounds)
    ms = {name: median_ms(seconds) for name, seconds in times.items()}
    copy_rate = cases["read + write (copy_)"][1] * count / ms["read + write (copy_)"] / 1e6
    print(
        f"\n### {steps} x {batch} x {neurons} ({count * 4 / 2**20:.0f} MiB per float32 "
        f"[T, ...] array), median of {rounds} rounds\n"
    )
    print("| operation | ms | G elements/s | bytes/element | GB/s | x copy bandwidth |")
    print("|---|---|---|---|---|---|")
    for name, (_, per_element) in cases.items():
        rate = per_element * count / ms[name] / 1e6
        print(
            f"| {name} | {ms[name]:.2f} | {count / ms[name] / 1e6:.2f} | {per_element} | "
            f"{rate:.1f} | {rate / copy_rate:.2f} |"
        )


def build_variant(switches: tuple[str, ...], folder: Path, threads: int) -> ctypes.CDLL:
    """The kernel library built with ``switches`` (the flags of the library spikeexp loads)."""
    compiler = build.find_compiler()
    if compiler is None:
        raise SystemExit("--variants needs a C++ compiler")
    target = folder / f"kernels_{abs(hash(switches))}.so"
    flags = [*build.FLAGS, build.OPENMP, *switches]
    subprocess.run([compiler, *flags, *map(str, build.SOURCES), "-o", str(target)], check=True)
    library = ctypes.CDLL(str(target))
    build._declare(library)
    library.spikeexp_set_threads(threads)
    return library


def variant_steps(library: ctypes.CDLL, steps: int, batch: int, neurons: int) -> dict:
    """The three LIF kernels of ``library`` called directly (preallocated outputs)."""
    m = batch * neurons
    x = torch.randn(steps, batch, neurons, generator=torch.Generator().manual_seed(0)) * 4 + 1
    z, u, g = torch.empty_like(x), torch.empty_like(x), torch.empty_like(x)
    params = [torch.full((neurons,), value).data_ptr() for value in PARAMETERS]
    gz = torch.ones(batch, neurons)
    state = [torch.zeros(batch, neurons) for _ in range(2)]

    def forward(saved: torch.Tensor | None) -> None:
        v, i = (t.zero_() for t in state)
        library.lif_forward_f32(
            steps, m, neurons, x.data_ptr(), m, z.data_ptr(),
            None if saved is None else saved.data_ptr(), None, v.data_ptr(), i.data_ptr(),
            *params,
        )  # fmt: skip

    forward(u)
    v0 = torch.zeros(batch, neurons)

    def backward() -> None:
        gv, gi = (t.zero_() for t in state)
        library.lif_backward_f32(
            1, 100.0, steps, m, neurons, u.data_ptr(), g.data_ptr(), gz.data_ptr(), 0,
            gv.data_ptr(), gi.data_ptr(), 0, 0, v0.data_ptr(), None, *params,
            None, None, None, None, None,
        )  # fmt: skip

    return {
        "LIF inference": lambda: forward(None),
        "LIF training forward": lambda: forward(u),
        "LIF backward": backward,
    }


def variants_table(steps: int, batch: int, neurons: int, rounds: int, threads: int) -> None:
    with tempfile.TemporaryDirectory(prefix="spikeexp-kernels-") as folder:
        libraries = {
            name: build_variant(switches, Path(folder), threads)
            for name, switches in VARIANTS.items()
        }
        runs = {}
        for name, library in libraries.items():
            for kernel, run in variant_steps(library, steps, batch, neurons).items():
                runs[(kernel, name)] = run
        times = interleaved(runs, rounds)
    print(f"\n### builds of kernels.cpp, {steps} x {batch} x {neurons}: ms (median of {rounds})\n")
    print(f"| kernel | {' | '.join(VARIANTS)} |")
    print("|---" * (len(VARIANTS) + 1) + "|")
    for kernel in ("LIF inference", "LIF training forward", "LIF backward"):
        cells = " | ".join(f"{median_ms(times[(kernel, name)]):.2f}" for name in VARIANTS)
        print(f"| {kernel} | {cells} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=SIZES, help="T x batch x neurons, comma-separated")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variants", action="store_true", help="also the build variants")
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    print(machine_header(args.threads))
    for size in args.sizes.split(","):
        steps, batch, neurons = (int(n) for n in size.split("x"))
        bandwidth_table(steps, batch, neurons, args.rounds)
        if args.variants:
            variants_table(steps, batch, neurons, args.rounds, args.threads)


if __name__ == "__main__":
    main()
