"""Recurrent backward: the kernel's loop per batch row against one BLAS product per time step,
by hidden size (what ``spikeexp.functional.fused.cpu.BLAS_HIDDEN`` is set from).

The backward of a recurrent layer needs :math:`g_t W` at every step (the gradient reaching the
previous step's spikes). The C++ kernel computes it row by row (each batch row streams all of
``W``: cheap while ``W`` fits in L1, slow above); the alternative calls the kernel once per step
and ``torch.mm`` (MKL) in between. The table gives the median time of a training step of a
``LIFRecurrent(H, H)`` layer (forward + backward, loss on spike counts) with each, over
interleaved rounds.

Usage::

    python benchmarks/bench_recurrent.py                     # about 1 min alone, 2 threads
    python benchmarks/bench_recurrent.py --hidden 64,128,256 --steps 200 --batch 32
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from _timing import interleaved, machine_header, median_ms

import spikeexp as snn
from spikeexp.functional.fused import cpu


def train_step(hidden: int, steps: int, batch: int, blas: bool) -> Callable[[], None]:
    torch.manual_seed(0)
    layer = snn.LIFRecurrent(hidden, hidden)
    data = (torch.rand(steps, batch, hidden) < 0.1).float() * 2.0
    target = torch.full((batch, hidden), 2.0)

    def run() -> None:
        previous = cpu.BLAS_HIDDEN
        cpu.BLAS_HIDDEN = 1 if blas else hidden + 1
        try:
            layer.zero_grad(set_to_none=True)
            spikes = layer(data)[0]
            ((spikes.sum(0) - target) ** 2).mean().backward()
        finally:
            cpu.BLAS_HIDDEN = previous

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", default="32,64,128,256,512,1024")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_header(args.threads))
    print(f"LIFRecurrent(H, H), T = {args.steps}, batch {args.batch}, spike input density 0.1;")
    print(f"BLAS from H = {cpu.BLAS_HIDDEN} on now; median of {args.rounds} rounds\n")
    print(
        "| H | training step, row loop (ms) | training step, BLAS per step (ms) | BLAS speed-up |"
    )
    print("|---|---|---|---|")
    for hidden in (int(h) for h in args.hidden.split(",")):
        runs = {
            "loop": train_step(hidden, args.steps, args.batch, blas=False),
            "blas": train_step(hidden, args.steps, args.batch, blas=True),
        }
        ms = {name: median_ms(times) for name, times in interleaved(runs, args.rounds).items()}
        print(
            f"| {hidden} | {ms['loop']:.1f} | {ms['blas']:.1f} | {ms['loop'] / ms['blas']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
