"""Build the C++ kernels (``kernels.cpp``) at first use and load them with :mod:`ctypes`.

The shared library is compiled once per source version, compiler and CPU into a user cache
directory (``$SPIKEEXP_CACHE_DIR``, else ``$XDG_CACHE_HOME/spikeexp``, else
``~/.cache/spikeexp``) and reused by later processes (< 1 s to build: the source includes no
PyTorch headers). ``SPIKEEXP_FUSED_KERNELS=0`` disables the kernels. When no compiler is found
or the build fails, :func:`kernels` logs one warning and returns ``None``; the fused backends
then run the pure-PyTorch step loop (exact, slower).

The kernels run on OpenMP threads. Compiled with ``-fopenmp`` the library links ``libgomp.so.1``,
which resolves to the copy PyTorch has already loaded: one thread pool, sized by
``torch.set_num_threads``, so the kernels never compete with PyTorch's own threads. Without
OpenMP support the library is built without it and runs single-threaded.
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
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.cpp")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-std=c++17", "-shared", "-fPIC")
OPENMP = "-fopenmp"


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


def _library_path(compiler: str, flags: tuple[str, ...]) -> Path:
    version = subprocess.run(
        [compiler, "--version"], capture_output=True, text=True, check=True
    ).stdout
    key = hashlib.sha256(
        "\n".join([SOURCE.read_text(), " ".join(flags), version, _cpu_signature()]).encode()
    ).hexdigest()[:16]
    return cache_dir() / f"spikeexp_kernels_{key}.so"


def _compile(compiler: str, flags: tuple[str, ...], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        partial = Path(tmp) / target.name
        subprocess.run(
            [compiler, *flags, str(SOURCE), "-o", str(partial)],
            capture_output=True,
            text=True,
            check=True,
        )
        os.replace(partial, target)  # atomic: concurrent processes never load half a file


def _load(compiler: str, flags: tuple[str, ...]) -> ctypes.CDLL:
    path = _library_path(compiler, flags)
    if not path.exists():
        _compile(compiler, flags, path)
    library = ctypes.CDLL(str(path))
    _declare(library)
    return library


def _declare(library: ctypes.CDLL) -> None:
    i64, ptr, c_int, f64 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int, ctypes.c_double
    signatures = {
        "lif_forward": [i64] * 3 + [ptr, i64] + [ptr] * 10,
        "lif_backward": [c_int, f64] + [i64] * 3 + [ptr] * 3 + [i64] + [ptr] * 14,
        "recurrent_forward": [c_int] + [i64] * 3 + [ptr] * 15,
        "recurrent_backward": [c_int] + [i64] * 3 + [ptr] * 4 + [i64] + [ptr] * 9,
        "max_pool_forward": [i64] * 4 + [ptr] * 3,
        "max_pool_backward": [i64] * 4 + [ptr] * 3,
        "li_forward": [i64] * 3 + [ptr, i64] + [ptr] * 7,
        "li_backward": [i64] * 3 + [ptr, i64] + [ptr] * 12,
        "lsnn_forward": [c_int] + [i64] * 3 + [ptr, i64] + [ptr] * 13,
        "lsnn_backward": [c_int] + [i64] * 3 + [ptr] * 4 + [i64] + [ptr] * 8,
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
    errors = (OSError, subprocess.CalledProcessError, AttributeError)
    try:
        try:
            return _load(compiler, (*FLAGS, OPENMP))
        except errors:
            return _load(compiler, FLAGS)  # no OpenMP: single-threaded kernels
    except errors as error:
        detail = getattr(error, "stderr", "") or str(error)
        log.warning(
            "building the fused neuron kernels failed (%s): falling back to the PyTorch loop",
            detail.strip().splitlines()[-1] if detail.strip() else type(error).__name__,
        )
        return None


def kernel(name: str, dtype: torch.dtype) -> Callable[..., None]:
    """The ``name`` kernel for ``dtype`` (float32 or float64); :func:`kernels` must be loaded."""
    library = kernels()
    assert library is not None
    suffix = "f32" if dtype == torch.float32 else "f64"
    return getattr(library, f"{name}_{suffix}")
