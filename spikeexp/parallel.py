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

import copy
import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.plugins.environments import SLURMEnvironment, TorchElasticEnvironment
from omegaconf import DictConfig, OmegaConf, open_dict

from spikeexp.sweep_summary import is_multirun

log = logging.getLogger(__name__)

DDP_TARGETS = (
    "lightning.pytorch.strategies.DDPStrategy",
    "lightning.pytorch.strategies.ddp.DDPStrategy",
)
CLI_SCRIPT = "spikeexp-train"
CLI_MODULE = "spikeexp.train"


def limit_torch_threads(threads: int | None) -> None:
    """Use at most ``threads`` intra-op CPU threads in this process (null: torch's default).

    Parallel trials (``hydra/launcher=joblib``) each set it, so that n trials on one machine do
    not oversubscribe its cores."""
    if threads is None:
        return
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ValueError(f"torch_threads must be null or an integer >= 1 (got {threads!r})")
    torch.set_num_threads(threads)


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


def relaunch_is_safe() -> bool:
    """Whether re-running the command line for each rank (Lightning ``ddp``) is safe here."""
    if _cluster_starts_ranks():
        return True
    return _started_from_cli() and not is_multirun()


def guard_ddp_relaunch(config: DictConfig) -> DictConfig:
    """``config`` with a ``ddp`` (popen) ``trainer.strategy`` replaced by its spawn variant when
    re-running the command line is unsafe (see :func:`relaunch_is_safe`); else ``config``."""
    strategy = config.trainer.get("strategy")
    if isinstance(strategy, str):
        replacement: Any = _spawn_alias(strategy)
    elif _is_popen_ddp_node(strategy):
        replacement = {**OmegaConf.to_container(strategy, resolve=True), "start_method": "spawn"}
    else:
        replacement = None
    if replacement is None or relaunch_is_safe():
        return config
    reason = "in a multirun" if is_multirun() else "outside the spikeexp-train command"
    log.warning(
        "trainer.strategy: Lightning's ddp re-runs the command line for every rank, which %s "
        "would replay it (a second sweep, or pytest); using the spawn start method instead",
        reason,
    )
    guarded = copy.deepcopy(config)
    with open_dict(guarded):
        guarded.trainer.strategy = replacement
    return guarded


class SyncEpochMetrics(Callback):
    """Compute the epoch's logged metrics on every rank at the same point, before other callbacks.

    Metrics logged as torchmetrics objects are synchronised across ranks (collective calls) the
    first time they are read after an epoch, then cached. The progress bar reads them on rank 0
    only, at its own ``on_*_epoch_end``; the other ranks meanwhile enter other collectives (a
    checkpoint barrier), and a multi-process run deadlocks. Reading ``trainer.callback_metrics``
    here, first and on every rank, performs the synchronisation in the same order everywhere;
    later readers hit the cache.
    """

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.callback_metrics  # noqa: B018 (reading the property computes and caches)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        trainer.callback_metrics  # noqa: B018
