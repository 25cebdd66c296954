"""What the command line knows about the current run, for the layers below it.

Only the CLI (:mod:`spikeexp.cli`) talks to Hydra. What the lower layers need from it — whether
this process is one job of a sweep, which option of each config group was chosen — is set here by
the CLI with :func:`set_run_context` before anything is built, and read with :func:`run_context`.
Code that runs without the CLI (a notebook, a plain script) sees the default: a single run with no
group choices.

Callbacks read the context when they are constructed and keep what they need, so the values also
reach ranks started by ``ddp_spawn`` (which pickle the callbacks, not this module's state).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType


@dataclass(frozen=True)
class RunContext:
    """Facts about the run that only the command line knows.

    Attributes:
        multirun: this process runs one job of a sweep (``spikeexp-train -m``).
        choices: the option chosen in each config group, e.g. ``{"neuron": "lsnn"}``.
    """

    multirun: bool = False
    choices: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


_current = RunContext()


def set_run_context(context: RunContext) -> None:
    """Make ``context`` the context of this process (called by the CLI)."""
    global _current
    _current = context


def run_context() -> RunContext:
    """The context of this process (the default outside the CLI: a single run, no choices)."""
    return _current
