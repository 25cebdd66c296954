"""Break-even spike density of the event-driven product (``spikeexp.SpikeLinear``) against the
dense float32 GEMM (MKL/oneDNN ``sgemm`` through ``torch.nn.functional.linear``).

For each layer shape and spike density it times, in interleaved rounds (median), the forward
product ``x W^T`` and the weight gradient ``gy^T x`` of both, with binary spike input ``x`` of
that density, and prints their ratio; the last density where the event-driven product is faster
is the break-even that ``spikeexp.functional.fused.spike_linear`` dispatches on
(``FORWARD_MAX_DENSITY``, ``WEIGHT_GRAD_MAX_DENSITY``). With ``--bf16`` the bfloat16 GEMM
(AMX through oneDNN, bfloat16 output: not exact) is timed as well, for scale.

Usage::

    python benchmarks/bench_spike_linear.py                  # about 1 min alone, 2 threads
    python benchmarks/bench_spike_linear.py --shapes 6400x784x512 --densities 0.1,0.2 --bf16
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from _timing import interleaved, machine_header, median_ms

from spikeexp.functional.fused import spike_linear as spike

SHAPES = "800x784x128,6400x784x512,12800x700x1024"  # rows (T * batch) x in x out: bench_layers
DENSITIES = "0.02,0.05,0.1,0.2,0.3,0.4,0.5,0.7"


class _Context:
    """Stands in for autograd's ctx when the forward of the Function is called directly."""

    def save_for_backward(self, *tensors: torch.Tensor) -> None:
        pass


def steps(rows: int, inputs: int, outputs: int, density: float, bf16: bool) -> dict:
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(rows, inputs, generator=generator) < density).float()
    w = torch.randn(outputs, inputs, generator=generator) / inputs**0.5
    gy = torch.randn(rows, outputs, generator=generator)
    forward = spike.SpikeLinearFunction.forward
    table = {
        "forward sgemm": lambda: F.linear(x, w),
        "forward events": lambda: forward(_Context(), x, w, None, True, True),
        "weight grad sgemm": lambda: gy.t().mm(x),
        "weight grad events": lambda: spike._weight_grad(x, gy),
    }
    if bf16:
        xb, wb, gyb = x.bfloat16(), w.bfloat16(), gy.bfloat16()
        table["forward bf16 GEMM"] = lambda: F.linear(xb, wb)
        table["weight grad bf16 GEMM"] = lambda: gyb.t().mm(xb)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=SHAPES, help="rows x in x out, comma-separated")
    parser.add_argument("--densities", default=DENSITIES)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bf16", action="store_true", help="also time the bfloat16 GEMM")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_header(args.threads))
    print(
        f"dispatch now: forward events up to density {spike.FORWARD_MAX_DENSITY}, "
        f"weight gradient up to {spike.WEIGHT_GRAD_MAX_DENSITY}"
    )
    for shape in args.shapes.split(","):
        rows, inputs, outputs = (int(n) for n in shape.split("x"))
        print(f"\n### {rows} x {inputs} -> {outputs}, median of {args.rounds} rounds (ms)\n")
        extra = " | fwd bf16 GEMM | wgrad bf16 GEMM" if args.bf16 else ""
        print(
            f"| density | fwd sgemm | fwd events | speed-up | wgrad sgemm | wgrad events "
            f"| speed-up{extra} |"
        )
        print("|---" * (7 + 2 * args.bf16) + "|")
        for density in (float(d) for d in args.densities.split(",")):
            times = interleaved(steps(rows, inputs, outputs, density, args.bf16), args.rounds)
            ms = {name: median_ms(seconds) for name, seconds in times.items()}
            row = (
                f"| {density:g} | {ms['forward sgemm']:.2f} | {ms['forward events']:.2f} | "
                f"{ms['forward sgemm'] / ms['forward events']:.2f}x | "
                f"{ms['weight grad sgemm']:.2f} | {ms['weight grad events']:.2f} | "
                f"{ms['weight grad sgemm'] / ms['weight grad events']:.2f}x |"
            )
            if args.bf16:
                row += f" {ms['forward bf16 GEMM']:.2f} | {ms['weight grad bf16 GEMM']:.2f} |"
            print(row, flush=True)


if __name__ == "__main__":
    main()
