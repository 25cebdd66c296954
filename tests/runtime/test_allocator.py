"""spikeexp.runtime.allocator: freed memory stays in the process (children inherit the setting)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from spikeexp.runtime import allocator

PROBE = """
import sys, torch
from spikeexp.runtime.allocator import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20
x = torch.ones(64 * 2**20 // 4)  # 64 MiB: above glibc's largest mmap threshold (32 MiB)
held = resident_mib()
del x
print(held - resident_mib())
"""


def _released_mib(mode: str) -> float:
    # Without the MALLOC_* variables a run in this process may have set for its children.
    env = {k: v for k, v in os.environ.items() if k not in allocator.ENVIRONMENT}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env=env
    )
    return float(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_freed_tensor_memory_stays_in_the_process() -> None:
    # By default glibc unmaps a 64 MiB block on free (the next one faults in new pages); with
    # keep_freed_memory the pages stay mapped for reuse.
    assert _released_mib("default") > 48
    assert _released_mib("keep") < 16


def test_children_inherit_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in allocator.ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
    allocator.keep_freed_memory()
    assert {name: os.environ[name] for name in allocator.ENVIRONMENT} == allocator.ENVIRONMENT
