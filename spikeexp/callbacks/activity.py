"""Per-epoch scalars of spiking activity, learning rate and gradient norm.

:class:`SpikeActivityMonitor` reads the spikes of every spiking layer that
:class:`~spikeexp.network.SpikingNetwork` records in each forward pass (``network.records``,
``[T, batch, ...]``) and logs, per stage ``train`` / ``val`` / ``test``, averaged over the epoch:

=====================================  ==========================================================
tag                                    meaning
=====================================  ==========================================================
``<stage>/spikes_per_step/<layer>``    mean spikes per neuron per time step (rate times ``dt``)
``<stage>/saturated/<layer>``          fraction of neurons spiking in at least ``saturation`` of
                                       the steps of a batch (in ``[0, 1]``)
``<stage>/spikes_per_sample/<layer>``  spikes of the layer per sample (sum over time and neurons)
``<stage>/spikes_per_sample/total``    spikes of all spiking layers per sample (energy proxy: each
                                       spike costs one synaptic operation per outgoing synapse)
``train/lr``                           learning rate of the epoch (``train/lr/group<k>`` for
                                       further parameter groups)
``train/grad_norm``                    L2 norm of all gradients before each optimiser step
                                       (before clipping), averaged over the epoch
=====================================  ==========================================================

The Lightning module itself logs ``<stage>/rate_hz/<layer>`` (Hz) and ``<stage>/silent/<layer>``.
Under truncated BPTT (``tbptt_steps``) the training-stage values describe the last chunk of each
batch. Values go through ``LightningModule.log``, so they work with any logger (or none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class SpikeActivityMonitor(Callback):
    """Log spike statistics per spiking layer, the learning rate and the gradient norm.

    Args:
        saturation: spikes per step (in ``(0, 1]``) from which a neuron counts as saturated.
        log_lr: log ``train/lr`` each epoch.
        log_grad_norm: log ``train/grad_norm`` (needs automatic or manual ``optimizer.step``).
    """

    def __init__(
        self, saturation: float = 0.9, log_lr: bool = True, log_grad_norm: bool = True
    ) -> None:
        super().__init__()
        if not 0.0 < saturation <= 1.0:
            raise ValueError(
                f"callbacks.spike_activity.saturation must be in (0, 1] (got {saturation})"
            )
        self.saturation = float(saturation)
        self.log_lr = log_lr
        self.log_grad_norm = log_grad_norm

    def _log_activity(self, pl_module: LightningModule, stage: str) -> None:
        records: Mapping[str, torch.Tensor] = getattr(pl_module.network, "records", {})
        if not records:
            return
        total = None
        for name, spikes in records.items():
            spikes = spikes.detach()
            batch = spikes.shape[1]
            per_neuron = spikes.flatten(2).float().mean(dim=(0, 1))
            per_sample = spikes.float().sum() / batch
            total = per_sample if total is None else total + per_sample
            values = {
                f"{stage}/spikes_per_step/{name}": per_neuron.mean(),
                f"{stage}/saturated/{name}": (per_neuron >= self.saturation).float().mean(),
                f"{stage}/spikes_per_sample/{name}": per_sample,
            }
            for tag, value in values.items():
                pl_module.log(tag, value, on_step=False, on_epoch=True, batch_size=batch)
        pl_module.log(
            f"{stage}/spikes_per_sample/total",
            total,
            on_step=False,
            on_epoch=True,
            batch_size=batch,
        )

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._log_activity(pl_module, "train")

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._log_activity(pl_module, "val")

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._log_activity(pl_module, "test")

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self.log_lr:
            return
        groups = [group for optimizer in trainer.optimizers for group in optimizer.param_groups]
        for index, group in enumerate(groups):
            tag = "train/lr" if index == 0 else f"train/lr/group{index}"
            pl_module.log(tag, float(group["lr"]), on_step=False, on_epoch=True, batch_size=1)

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.log_grad_norm:
            return
        norms = [p.grad.detach().norm(2) for p in pl_module.parameters() if p.grad is not None]
        if norms:
            norm = torch.linalg.vector_norm(torch.stack(norms))
            pl_module.log("train/grad_norm", norm, on_step=False, on_epoch=True, batch_size=1)
