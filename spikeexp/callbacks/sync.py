"""Keep multi-process (DDP) runs in step: compute each epoch's metrics on every rank together."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer


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
