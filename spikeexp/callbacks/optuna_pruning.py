"""Optuna pruning inside a training run: a Lightning callback reporting the monitored
validation metric to the trial after every validation epoch.

Active only in a trial of ``hydra/sweeper=optuna`` (the sweeper passes ``optuna_trial``; the
``hparams_search`` presets wire it as ``callbacks.optuna_pruning.trial``). When the study's pruner
says stop, training stops at the end of that epoch (``trainer.should_stop``, decided on rank 0
and broadcast to every DDP rank) and the sweeper records the trial as PRUNED.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

from spikeexp.runtime.optuna_study import TrialReporter

log = logging.getLogger(__name__)


class OptunaPruning(Callback):
    """Report ``monitor`` per epoch to the Optuna trial ``trial`` (None: do nothing)."""

    def __init__(self, monitor: str, trial: Mapping[str, Any] | None = None) -> None:
        self.monitor = monitor
        self.reporter = TrialReporter.from_config(trial) if trial else None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.reporter is None or trainer.sanity_checking:
            return
        prune = False
        if trainer.is_global_zero:
            value = trainer.callback_metrics.get(self.monitor)
            if value is None:
                raise KeyError(
                    f"callbacks.optuna_pruning.monitor: {self.monitor!r} was not logged; "
                    f"logged: {', '.join(sorted(trainer.callback_metrics))}"
                )
            prune = self.reporter.report(float(value), step=trainer.current_epoch)
        prune = trainer.strategy.broadcast(prune, src=0)
        if prune:
            log.info("trial %d pruned after epoch %d", self.reporter.number, trainer.current_epoch)
            trainer.should_stop = True
