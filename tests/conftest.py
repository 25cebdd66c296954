"""Shared test setup: one torch thread per process (pytest-xdist workers share 2 cores)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from spikeexp.runtime.context import RunContext, set_run_context

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` are skipped, with the reason, where no CUDA device is visible."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _fresh_run_context() -> Iterator[None]:
    """Each test starts from the default run context (a command run in-process sets it)."""
    yield
    set_run_context(RunContext())
