"""Build the C++ kernels (``kernels.cpp``) at first use and load them with :mod:`ctypes`.

The shared library is compiled once per source version, compiler and CPU into a user cache
directory (``$SPIKEEXP_CACHE_DIR``, else ``$XDG_CACHE_HOME/spikeexp``, else
``~/.cache/spikeexp``) and reused by later processes (a few seconds to build: the source
includes no PyTorch headers). ``SPIKEEXP_FUSED_KERNELS=0`` disables the kernels. When no
compiler is found, the build fails or it takes longer than ``$SPIKEEXP_BUILD_TIMEOUT`` seconds
(default 300), :func:`kernels` logs one warning and returns ``None``; the fused backends then
run the pure-PyTorch step loop (exact, slower).

Several processes may start with a cold cache at once (parallel sweep trials, DDP ranks): the
first takes an exclusive lock on ``<library>.lock`` and compiles into a temporary file that it
renames to the library's name when the compiler has finished (an atomic replace), the others wait
for the lock and load that library. No process ever loads a partly written file, and a process
that dies while compiling releases the lock with its file descriptors.

The kernels run on OpenMP threads. Compiled with ``-fopenmp`` the library links ``libgomp.so.1``,
which resolves to the copy PyTorch has already loaded: one thread pool. Each kernel call runs on
``torch.get_num_threads()`` threads (:func:`kernel` passes the value on whenever it changes), so
``torch.set_num_threads`` governs the kernels as it governs PyTorch's own operators. Without
OpenMP support the library is built without it and runs single-threaded.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCES = tuple(Path(__file__).with_name(name) for name in ("kernels.cpp", "spike_linear.cpp"))
FLAGS = (
    "-O3",
    "-march=native",
    "-mprefer-vector-width=512",  # full-width AVX-512 loops where the CPU has it
    "-ffp-contract=off",  # no fused multiply-add: the step loop's rounding
    "-std=c++17",
    "-shared",
    "-fPIC",
)
OPENMP = "-fopenmp"
DEFAULT_TIMEOUT_S = 300.0
SUFFIXES = {torch.float32: "f32", torch.float64: "f64", torch.bfloat16: "bf16"}
BFLOAT16_KERNELS = ("lif_forward", "lif_backward")
"""Kernels that also read and write bfloat16 sequences directly (``<name>_bf16``)."""
_LOCK_POLL_S = 0.05


class BuildError(RuntimeError):
    """The kernels could not be built or loaded (the message says why)."""


class BuildTimeout(BuildError):
    """The compiler, or another process's build, took longer than :func:`build_timeout`."""


def cache_dir() -> Path:
    """Where compiled kernels are kept (see the module docstring)."""
    explicit = os.environ.get("SPIKEEXP_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "spikeexp"


def build_timeout() -> float:
    """Seconds a build (compiling, or waiting for another process's build) may take."""
    value = os.environ.get("SPIKEEXP_BUILD_TIMEOUT", "")
    try:
        seconds = float(value) if value else DEFAULT_TIMEOUT_S
    except ValueError:
        raise BuildError(
            f"SPIKEEXP_BUILD_TIMEOUT must be a number of seconds (got {value!r})"
        ) from None
    if not seconds > 0:
        raise BuildError(f"SPIKEEXP_BUILD_TIMEOUT must be > 0 (got {value!r})")
    return seconds


def find_compiler() -> str | None:
    """``$CXX`` (a name on ``PATH`` or a path), else ``c++``, else ``g++``; ``None`` if none
    of them exists."""
    explicit = os.environ.get("CXX")
    if explicit:
        return shutil.which(explicit)
    return shutil.which("c++") or shutil.which("g++")


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


def _library_path(compiler: str, flags: tuple[str, ...], timeout: float) -> Path:
    version = _run([compiler, "--version"], timeout).stdout
    key = hashlib.sha256(
        "\n".join(
            [*(s.read_text() for s in SOURCES), " ".join(flags), version, _cpu_signature()]
        ).encode()
    ).hexdigest()[:16]
    return cache_dir() / f"spikeexp_kernels_{key}.so"


def _run(command: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BuildTimeout(f"{Path(command[0]).name} took longer than {timeout:g} s") from None
    except subprocess.CalledProcessError as error:
        lines = (error.stderr or "").strip().splitlines()
        raise BuildError(lines[-1] if lines else f"exit status {error.returncode}") from None
    except OSError as error:
        raise BuildError(f"cannot run {command[0]}: {error.strerror or error}") from None


@contextlib.contextmanager
def _exclusive(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path``, waiting at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    with open(lock_path, "a") as handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise BuildTimeout(
                        f"another process held {lock_path} for more than {timeout:g} s"
                    ) from None
                time.sleep(_LOCK_POLL_S)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _compile(compiler: str, flags: tuple[str, ...], target: Path, timeout: float) -> None:
    """Compile into ``target`` (atomically) unless another process did meanwhile."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive(target.with_suffix(".lock"), timeout):
            if target.exists():  # built by the process that held the lock before us
                return
            with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
                partial = Path(tmp) / target.name
                _run([compiler, *flags, *map(str, SOURCES), "-o", str(partial)], timeout)
                os.replace(partial, target)  # atomic: nobody ever sees half a library
    except OSError as error:
        raise BuildError(f"cannot write to {target.parent}: {error.strerror or error}") from None


def _load(compiler: str, flags: tuple[str, ...], timeout: float) -> ctypes.CDLL:
    path = _library_path(compiler, flags, timeout)
    if not path.exists():
        _compile(compiler, flags, path, timeout)
    try:
        library = ctypes.CDLL(str(path))
        _declare(library)
    except (OSError, AttributeError) as error:
        raise BuildError(f"cannot load {path}: {error}") from None
    return library


def _declare(library: ctypes.CDLL) -> None:
    i64, ptr, c_int, f64 = ctypes.c_int64, ctypes.c_void_p, ctypes.c_int, ctypes.c_double
    signatures = {
        "lif_forward": [i64] * 3 + [ptr, i64] + [ptr] * 10,
        "lif_backward": [c_int, f64]
        + [i64] * 3
        + [ptr] * 4  # u, g, gsum, gz
        + [i64]
        + [ptr] * 2
        + [c_int] * 2
        + [ptr] * 12,
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
        suffixes = ("f32", "f64", "bf16") if name in BFLOAT16_KERNELS else ("f32", "f64")
        for suffix in suffixes:
            function = getattr(library, f"{name}_{suffix}")
            function.argtypes = argtypes
            function.restype = None
    library.spike_linear_forward_f32.argtypes = [i64] * 3 + [ptr] * 4
    library.spike_linear_forward_f32.restype = None
    library.spike_linear_weight_grad_f32.argtypes = [i64] * 3 + [ptr] * 3
    library.spike_linear_weight_grad_f32.restype = c_int
    library.spikeexp_set_threads.argtypes = [c_int]
    library.spikeexp_set_threads.restype = None
    library.spikeexp_team_size.argtypes = []
    library.spikeexp_team_size.restype = c_int


_threads_passed: dict[int, int] = {}  # id(library) -> thread count last passed to it


@functools.cache
def kernels() -> ctypes.CDLL | None:
    """The loaded kernel library, built on first use; ``None`` if unavailable (warned once)."""
    _threads_passed.clear()  # a fresh load (kernels.cache_clear()): pass the count again
    if os.environ.get("SPIKEEXP_FUSED_KERNELS", "1") == "0":
        return None
    compiler = find_compiler()
    if compiler is None:
        named = os.environ.get("CXX")
        where = f"CXX={named!r} is not a program" if named else "no c++ or g++ on PATH"
        log.warning(
            "no C++ compiler found (%s): fused neuron kernels fall back to the PyTorch loop", where
        )
        return None
    try:
        timeout = build_timeout()
        try:
            return _load(compiler, (*FLAGS, OPENMP), timeout)
        except BuildTimeout:
            raise
        except BuildError as error:
            log.debug("building the kernels with OpenMP failed (%s); trying without", error)
            return _load(compiler, FLAGS, timeout)  # no OpenMP: single-threaded kernels
    except BuildError as error:
        log.warning(
            "building the fused neuron kernels failed (%s): falling back to the PyTorch loop",
            error,
        )
        return None


def kernel(name: str, dtype: torch.dtype) -> Callable[..., None]:
    """The ``name`` kernel for ``dtype`` (float32 or float64; bfloat16 for
    :data:`BFLOAT16_KERNELS`: bfloat16 input and spikes, float32 state); :func:`kernels` must
    be loaded.

    Also passes ``torch.get_num_threads()`` on to the library when it has changed.
    """
    library = kernels()
    assert library is not None
    threads = torch.get_num_threads()
    if _threads_passed.get(id(library)) != threads:
        library.spikeexp_set_threads(threads)
        _threads_passed[id(library)] = threads
    return getattr(library, f"{name}_{SUFFIXES[dtype]}")


def team_size() -> int:
    """Threads a kernel started now would run on (1 without OpenMP); loads the kernels."""
    kernel("lif_forward", torch.float32)
    library = kernels()
    assert library is not None
    return int(library.spikeexp_team_size())
