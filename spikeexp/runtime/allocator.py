"""Keep freed memory in the process: large tensors reuse pages instead of faulting in new ones.

glibc's ``malloc`` serves every allocation above its mmap threshold (adaptive, at most 32 MiB) with
a fresh ``mmap`` and unmaps it on ``free``. Each 4 KiB page of a fresh mapping costs a page fault
on first use. Spiking networks hoist stateless layers over the whole sequence, so their
activations ``[T * batch, ...]`` are often larger than 32 MiB (the Fashion ConvNet's first layer:
8 x 64 x 32 x 24 x 24 x 4 B = 38 MB): without this setting every training step faults in
hundreds of MB again. Measured here (``benchmarks/bench_convnet.py``, 2 threads): 139 -> 96 ms
per training step of that network.

:func:`keep_freed_memory` sets ``M_MMAP_MAX = 0`` (all allocations come from the heap) and a
high ``M_TRIM_THRESHOLD`` (freed heap memory is not returned to the system). The price: the
process's resident memory stays at its peak. It also sets the ``MALLOC_*`` variables, so that
processes started later (DDP ranks, data-loader workers) do the same. A no-op without glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers (glibc malloc.h)
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # bytes: the largest value mallopt accepts (an int)
ENVIRONMENT = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(_TRIM_THRESHOLD)}


def keep_freed_memory() -> bool:
    """Make this process and its future children keep freed memory; True if glibc accepted it."""
    os.environ.update(ENVIRONMENT)
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        log.debug("no glibc mallopt: the allocator keeps its defaults")
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
