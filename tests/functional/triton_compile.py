"""Compile the Triton kernels for NVIDIA GPUs without one: ``triton.compile`` down to a cubin
(Triton's own ``ptxas``) for each kernel in the specialisations the launchers use, and report
each kernel's registers and spill stores (``ptxas -v``).

Run as ``python -m tests.functional.triton_compile [--all] [--arch 90]``: one line per compiled
kernel, then ``compiled N kernels ...; spilling: K`` and the spilling kernels (exit status 1 and
the error on a failure). It runs in its own process because a process that ran Triton's
interpreter cannot compile afterwards.
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from spikeexp.functional.fused import gpu
from spikeexp.functional.fused import triton_kernels as kernels

INPUT_POINTERS = {"x_ptr", "z_ptr", "gz_ptr", "p_ptr", "y_ptr", "gy_ptr"}
"""Pointers in the input's dtype (spikes, inputs and their gradients); others hold state."""
FLOATS = {"alpha"}
INPUT_DTYPES = {"fp32": "fp32", "bf16": "fp32", "fp64": "fp64"}  # input -> state dtype


def signature(kernel, input_dtype: str, constexprs: dict[str, object]) -> dict[str, str]:
    """The argument types of ``kernel`` for inputs of ``input_dtype``."""
    state = INPUT_DTYPES[input_dtype]
    types = {}
    for param in kernel.params:
        name = param.name
        if param.is_constexpr or name in constexprs:
            types[name] = "constexpr"
        elif name == "where_ptr":
            types[name] = "*u8"
        elif name.endswith("_ptr"):
            pool = kernel.fn.__name__.startswith("max_pool")
            types[name] = f"*{input_dtype if name in INPUT_POINTERS or pool else state}"
        elif name in FLOATS:
            types[name] = "fp32"
        else:
            types[name] = "i32"
    return types


def cases(everything: bool) -> Iterator[tuple[object, str, dict[str, object], int]]:
    """(kernel, input dtype, constexprs, warps): every specialisation the launchers use (with
    ``everything``), else each kernel once with all its options on."""
    if not everything:
        yield from _quick_cases()
        return
    flags = [False, True]
    methods = [*gpu.SURROGATE_CODES.values(), gpu.GIVEN]
    for dtype, (block, warps) in itertools.product(
        ["fp32", "bf16", "fp64"], [(512, 4), (256, 4), (128, 4), (64, 2)]
    ):
        if dtype == "fp64" and block == 512:
            continue  # the launchers cap float64 states at 256 neurons per program
        for save_u, save_j in ((False, False), (True, False), (True, True)):
            options = dict(SAVE_U=save_u, SAVE_J=save_j, BLOCK=block)
            yield kernels.lif_forward_kernel, dtype, options, warps
        for method, has_gz, params in itertools.product(methods, flags, flags):
            options = dict(METHOD=method, HAS_GZ=has_gz, PARAMS=params, BLOCK=block)
            yield kernels.lif_backward_kernel, dtype, options, warps
        for mode in (1, 2):
            for save in flags:
                options = dict(MODE=mode, SAVE=save, BLOCK=block)
                yield kernels.lsnn_forward_kernel, dtype, options, warps
            for method, has_gz in itertools.product(methods, flags):
                options = dict(MODE=mode, METHOD=method, HAS_GZ=has_gz, BLOCK=block)
                yield kernels.lsnn_backward_kernel, dtype, options, warps
        for save in flags:
            yield kernels.li_forward_kernel, dtype, dict(SAVE_J=save, BLOCK=block), warps
        for has_gout, params in itertools.product(flags, flags):
            options = dict(HAS_GOUT=has_gout, PARAMS=params, BLOCK=block)
            yield kernels.li_backward_kernel, dtype, options, warps
        for mode in (0, 1, 2):
            for separate in flags:
                options = dict(MODE=mode, SEPARATE_ZS=separate, BLOCK=block)
                yield kernels.recurrent_step_kernel, dtype, options, warps
            for method, has_gz in itertools.product(methods, flags):
                options = dict(MODE=mode, METHOD=method, HAS_GZ=has_gz, BLOCK=block)
                yield kernels.recurrent_step_backward_kernel, dtype, options, warps
    for dtype, hidden, mode in itertools.product(
        ["fp32", "bf16", "fp64"], [16, 32, 64, 128], (0, 1, 2)
    ):
        padded, warps = gpu._hidden_block(hidden)
        yield kernels.recurrent_forward_kernel, dtype, dict(MODE=mode, HIDDEN=padded), warps
        for method, has_gz in itertools.product(methods, flags):
            options = dict(MODE=mode, METHOD=method, HAS_GZ=has_gz, HIDDEN=padded)
            yield kernels.recurrent_backward_kernel, dtype, options, warps
    for dtype, size in itertools.product(["fp32", "bf16", "fp64"], range(2, 16)):
        for kernel in (kernels.max_pool_forward_kernel, kernels.max_pool_backward_kernel):
            yield kernel, dtype, dict(K=size, BLOCK=1024), 4


def _quick_cases() -> Iterator[tuple[object, str, dict[str, object], int]]:
    padded, warps = gpu._hidden_block(gpu.PERSISTENT_MAX_HIDDEN)
    tanh = gpu.SURROGATE_CODES["tanh"]
    yield kernels.lif_forward_kernel, "bf16", dict(SAVE_U=True, SAVE_J=True, BLOCK=512), 4
    options = dict(METHOD=tanh, HAS_GZ=True, PARAMS=True, BLOCK=512)
    yield kernels.lif_backward_kernel, "bf16", options, 4
    yield kernels.lsnn_forward_kernel, "fp32", dict(MODE=1, SAVE=True, BLOCK=256), 4
    options = dict(MODE=2, METHOD=gpu.GIVEN, HAS_GZ=True, BLOCK=256)
    yield kernels.lsnn_backward_kernel, "fp32", options, 4
    yield kernels.li_forward_kernel, "fp64", dict(SAVE_J=True, BLOCK=64), 2
    yield kernels.li_backward_kernel, "fp64", dict(HAS_GOUT=True, PARAMS=True, BLOCK=64), 2
    yield kernels.recurrent_forward_kernel, "bf16", dict(MODE=1, HIDDEN=padded), warps
    options = dict(MODE=2, METHOD=0, HAS_GZ=True, HIDDEN=padded)
    yield kernels.recurrent_backward_kernel, "fp32", options, warps
    yield kernels.recurrent_step_kernel, "bf16", dict(MODE=2, SEPARATE_ZS=True, BLOCK=512), 4
    options = dict(MODE=1, METHOD=3, HAS_GZ=True, BLOCK=512)
    yield kernels.recurrent_step_backward_kernel, "fp32", options, 4
    yield kernels.max_pool_forward_kernel, "bf16", dict(K=2, BLOCK=1024), 4
    yield kernels.max_pool_backward_kernel, "fp32", dict(K=3, BLOCK=1024), 4


def resources(ptx: str, arch: int) -> tuple[int, int]:
    """(registers per thread, bytes of spill stores) of a kernel's PTX, from ``ptxas -v``
    (Triton's own ``ptxas``, the target Triton compiles for)."""
    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    target = f"sm_{arch}a" if arch >= 90 else f"sm_{arch}"
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as file:
        file.write(ptx)
        file.flush()
        result = subprocess.run(
            [str(tool), "-v", "--gpu-name", target, file.name, "-o", "/dev/null"],
            capture_output=True,
            text=True,
            check=True,
        )
    text = result.stdout + result.stderr
    registers = int(re.search(r"Used (\d+) registers", text).group(1))
    spilled = int(re.search(r"(\d+) bytes spill stores", text).group(1))
    return registers, spilled


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--all", action="store_true", help="every specialisation")
    parser.add_argument("--arch", type=int, default=90, help="compute capability (80, 90)")
    args = parser.parse_args()
    target = GPUTarget("cuda", args.arch, 32)
    count = largest = 0
    spilling = []
    for kernel, dtype, constexprs, warps in cases(args.all):
        source = ASTSource(
            fn=kernel, signature=signature(kernel, dtype, constexprs), constexprs=constexprs
        )
        compiled = triton.compile(
            source, target=target, options={"num_warps": warps, "enable_fp_fusion": False}
        )
        registers, spilled = resources(compiled.asm["ptx"], args.arch)
        name = kernel.fn.__name__
        print(
            f"{name} {dtype} {constexprs} warps={warps}: {registers} registers, {spilled} B spilled"
        )
        if spilled:
            spilling.append(f"{name} {dtype} {constexprs}: {spilled} B")
        largest = max(largest, spilled)
        count += 1
    print(f"compiled {count} kernels for sm_{args.arch}; spilling: {len(spilling)}")
    for line in spilling:
        print(f"spills: {line}")
    print(f"largest spill: {largest} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())
