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

Usage::

    python benchmarks/bench_kernels.py                       # medium and large, ~30 s alone
    python benchmarks/bench_kernels.py --sizes 100x128x1024 --rounds 9
"""

from __future__ import annotations

import argparse

import torch
from _timing import interleaved, machine_header, median_ms

from spikeexp.functional.fused import ops
from spikeexp.runtime.allocator import keep_freed_memory

SIZES = "100x64x512,100x128x1024"  # T x batch x neurons: bench_layers' medium and large


def lif_steps(steps: int, batch: int, neurons: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(steps, batch, neurons, generator=generator) * 4 + 1
    v0, i0 = torch.zeros(batch, neurons), torch.zeros(batch, neurons)
    params = [torch.full((neurons,), value) for value in (0.1, 0.2, 0.0, 1.0, 0.0)]
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


def stream_steps(elements: int) -> dict:
    a, b = torch.rand(elements), torch.empty(elements)
    return {
        "read (sum)": (lambda: a.sum(), 4),
        "write (fill_)": (lambda: b.fill_(1.0), 4),
        "read + write (copy_)": (lambda: b.copy_(a), 8),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default=SIZES, help="T x batch x neurons, comma-separated")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    keep_freed_memory()
    torch.set_num_threads(args.threads)
    print(machine_header(args.threads))
    for size in args.sizes.split(","):
        steps, batch, neurons = (int(n) for n in size.split("x"))
        count = steps * batch * neurons
        cases = {**stream_steps(count), **lif_steps(steps, batch, neurons)}
        times = interleaved({name: run for name, (run, _) in cases.items()}, args.rounds)
        ms = {name: median_ms(seconds) for name, seconds in times.items()}
        copy_rate = cases["read + write (copy_)"][1] * count / ms["read + write (copy_)"] / 1e6
        print(
            f"\n### {steps} x {batch} x {neurons} ({count * 4 / 2**20:.0f} MiB per float32 "
            f"[T, ...] array), median of {args.rounds} rounds\n"
        )
        print("| operation | ms | G elements/s | bytes/element | GB/s | x copy bandwidth |")
        print("|---|---|---|---|---|---|")
        for name, (_, per_element) in cases.items():
            rate = per_element * count / ms[name] / 1e6
            print(
                f"| {name} | {ms[name]:.2f} | {count / ms[name] / 1e6:.2f} | {per_element} | "
                f"{rate:.1f} | {rate / copy_rate:.2f} |"
            )


if __name__ == "__main__":
    main()
