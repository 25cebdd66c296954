"""Process-level settings of a run: torch threads, and a guard for Lightning's ``ddp`` launcher.

Lightning's ``ddp`` strategy (start method ``popen``) starts ranks > 0 by re-running this
process's command line. That is right for one ``spikeexp-train`` run, and wrong elsewhere:
under ``spikeexp-train -m`` each child replays the whole sweep (a second sweep directory and,
with a stochastic sampler, other hyper-parameters), and under pytest or a notebook it re-runs
pytest / the kernel. :func:`guard_ddp_relaunch` switches such runs to ``ddp_spawn`` (the ranks
are started as fresh Python processes that only run the fit), and leaves ``ddp`` alone where
a cluster (SLURM ``srun``, ``torchrun``) starts every rank itself and nothing is re-run.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

log = logging.getLogger(__name__)

DDP_TARGETS = (
    "lightning.pytorch.strategies.DDPStrategy",
    "lightning.pytorch.strategies.ddp.DDPStrategy",
)
CLI_SCRIPT = "spikeexp-train"
CLI_MODULE = "spikeexp.cli.train"


def limit_torch_threads(threads: int | None) -> None:
    """Use at most ``threads`` intra-op CPU threads in this process (null: torch's default).

    Parallel trials (``hydra/launcher=joblib``) each set it, so that n trials on one machine do
    not oversubscribe its cores."""
    if threads is not None:
        torch.set_num_threads(threads)


def set_matmul_precision(precision: str) -> None:
    """``torch.set_float32_matmul_precision(precision)``: ``highest`` (float32), ``high`` (TF32
    where the hardware has it) or ``medium`` (bfloat16 products, float32 accumulation)."""
    torch.set_float32_matmul_precision(precision)


def _spawn_alias(strategy: str) -> str | None:
    """The ``ddp_spawn`` alias of a ``ddp`` (popen) strategy name, None for other names."""
    if strategy == "ddp" or strategy.startswith("ddp_find_unused_parameters_"):
        return strategy.replace("ddp", "ddp_spawn", 1)
    return None


def _is_popen_ddp_node(strategy: Any) -> bool:
    return (
        isinstance(strategy, Mapping)
        and strategy.get("_target_") in DDP_TARGETS
        and strategy.get("start_method", "popen") == "popen"
    )


def _started_from_cli() -> bool:
    """Whether this process is ``spikeexp-train`` (console script or ``python -m``)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None:
        return spec.name == CLI_MODULE
    return Path(sys.argv[0]).name == CLI_SCRIPT


def _cluster_starts_ranks() -> bool:
    return SLURMEnvironment.detect() or TorchElasticEnvironment.detect()


def relaunch_is_safe(multirun: bool) -> bool:
    """Whether re-running the command line for each rank (Lightning ``ddp``) is safe here;
    ``multirun``: this process is one job of a sweep."""
    if _cluster_starts_ranks():
        return True
    return _started_from_cli() and not multirun


def guard_ddp_relaunch(config: Mapping[str, Any], multirun: bool = False) -> dict[str, Any]:
    """A plain run ``config`` with a ``ddp`` (popen) ``trainer.strategy`` replaced by its spawn
    variant when re-running the command line is unsafe (see :func:`relaunch_is_safe`)."""
    trainer = config.get("trainer")
    strategy = trainer.get("strategy") if isinstance(trainer, Mapping) else None
    if isinstance(strategy, str):
        replacement: Any = _spawn_alias(strategy)
    elif _is_popen_ddp_node(strategy):
        replacement = {**strategy, "start_method": "spawn"}
    else:
        replacement = None
    if replacement is None or relaunch_is_safe(multirun):
        return dict(config)
    reason = "in a multirun" if multirun else "outside the spikeexp-train command"
    log.warning(
        "trainer.strategy: Lightning's ddp re-runs the command line for every rank, which %s "
        "would replay it (a second sweep, or pytest); using the spawn start method instead",
        reason,
    )
    return {**config, "trainer": {**trainer, "strategy": replacement}}
