"""Build the C++ kernels (``kernels.cpp``) at first use and load them with :mod:`ctypes`.

The shared library is compiled once per source version, compiler and CPU into a user cache
directory (``$SPIKEEXP_CACHE_DIR``, else ``$XDG_CACHE_HOME/spikeexp``, else
``~/.cache/spikeexp``) and reused by later processes (< 1 s to build: the source includes no
PyTorch headers). ``SPIKEEXP_FUSED_KERNELS=0`` disables the kernels. When no compiler is found
or the build fails, :func:`kernels` logs one warning and returns ``None``; the fused backends
then run the pure-PyTorch step loop (exact, slower).

:func:`parallel` splits a range over ``torch.get_num_threads()`` Python threads; ``ctypes``
releases the GIL during each kernel call, so the chunks run concurrently.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.cpp")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC")
_ALIGN = 64  # elements per thread chunk are a multiple of this (whole cache lines)
_MIN_PARALLEL_WORK = 1 << 16  # below this many neuron-steps one thread is faster


def cache_dir() -> Path:
    """Where compiled kernels are kept (see the module docstring)."""
    explicit = os.environ.get("SPIKEEXP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spikeexp"


def _cpu_signature() -> str:
    """CPU feature flags (``-march=native`` code must not run on another CPU)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _library_path(compiler: str) -> Path:
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, check=True
    ).stdout
    key = hashlib.sha256(
        "\n".join([SOURCE.read_text(), " ".join(FLAGS), version, _cpu_signature()]).encode()
    ).hexdigest()[:16]
    return cache_dir() / f"spikeexp_kernels_{key}.so"


def _compile(compiler: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        subprocess.run(
            [compiler, *FLAGS, str(SOURCE), "-o", str(partial)],
            capture_output=True,
            text=True,
            check=True,
        )
        os.replace(partial, target)  # atomic: concurrent processes never load half a file


def _declare(library: ctypes.CDLL) -> None:
    i64, ptr, c_int = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int
    signatures = {
        "lif_forward": [i64] * 4 + [ptr] * 11,
        "lif_backward": [i64] * 4 + [ptr] * 3 + [i64] + [ptr] * 14,
        "recurrent_forward": [c_int] + [i64] * 5 + [ptr] * 15,
        "recurrent_backward": [c_int] + [i64] * 5 + [ptr] * 4 + [i64] + [ptr] * 9,
    }
    for name, argtypes in signatures.items():
        for suffix in ("f32", "f64"):
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes = argtypes
            function.restype = None


@functools.cache
def kernels() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first use; ``None`` if unavailable (warned once)."""
    if os.environ.get("SPIKEEXP_FUSED_KERNELS", "1") == "0":
        return None
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        log.warning("no C++ compiler found: fused neuron kernels fall back to the PyTorch loop")
        return None
    try:
        path = _library_path(compiler)
        if not path.exists():
            _compile(compiler, path)
        library = ctypes.CDLL(str(path))
        _declare(library)
    except (OSError, subprocess.CalledProcessError, AttributeError) as error:
        detail = getattr(error, "stderr", "") or str(error)
        log.warning(
            "building the fused neuron kernels failed (%s): falling back to the PyTorch loop",
            detail.strip().splitlines()[-1] if detail.strip() else type(error).__name__,
        )
        return None
    return library


def kernel(name: str, dtype: torch.dtype) -> Callable[..., None]:
    """The ``name`` kernel for ``dtype`` (float32 or float64); :func:`kernels` must be loaded."""
    library = kernels()
    assert library is not None
    suffix = "f32" if dtype == torch.float32 else "f64"
    return getattr(library, f"{name}_{suffix}")


@functools.cache
def _pool(workers: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spikeexp-fused")


def parallel(run: Callable[[int, int], None], size: int, work: int, align: int = _ALIGN) -> None:
    """Call ``run(start, end)`` on chunks of ``range(size)``, concurrently if ``work`` is large.

    Args:
        run: processes the half-open range ``[start, end)``; chunks never overlap.
        size: the length of the range (neurons or batch rows).
        work: total neuron-steps, to decide whether threads pay off.
        align: chunk lengths are multiples of this.
    """
    workers = min(torch.get_num_threads(), max(1, size // align))
    if workers <= 1 or work < _MIN_PARALLEL_WORK:
        run(0, size)
        return
    chunk = -(-size // workers)
    chunk = -(-chunk // align) * align
    bounds = [(start, min(start + chunk, size)) for start in range(0, size, chunk)]
    futures = [_pool(workers).submit(run, start, end) for start, end in bounds[1:]]
    run(*bounds[0])
    for future in futures:
        future.result()
