"""Per-epoch scalars of spiking activity, learning rate and gradient norm.

:class:`SpikeActivityMonitor` reads the spikes of every spiking layer that
:class:`~spikeexp.module.network.SpikingNetwork` records in each forward pass (``network.records``,
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

The statistics are summed per batch (weighted by batch size) inside the callback and logged once
per epoch, so monitoring adds one ``log`` call per tag and epoch, not per batch. The Lightning
module itself logs ``<stage>/rate_hz/<layer>`` (Hz) and ``<stage>/silent/<layer>``.
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
        self._sums: dict[str, torch.Tensor] = {}
        self._samples: dict[str, int] = {}
        self._grad_norms: list[torch.Tensor] = []

    def _accumulate(self, pl_module: LightningModule, stage: str) -> None:
        """Add this batch's statistics, weighted by its size, to the stage's running sums."""
        records: Mapping[str, torch.Tensor] = getattr(pl_module.network, "records", {})
        if not records:
            return
        batch = next(iter(records.values())).shape[1]
        total = 0.0
        for name, spikes in records.items():
            spikes = spikes.detach()
            per_neuron = spikes.flatten(2).float().mean(dim=(0, 1))
            per_sample = spikes.float().sum() / batch
            total = total + per_sample
            values = {
                f"{stage}/spikes_per_step/{name}": per_neuron.mean(),
                f"{stage}/saturated/{name}": (per_neuron >= self.saturation).float().mean(),
                f"{stage}/spikes_per_sample/{name}": per_sample,
            }
            for tag, value in values.items():
                self._sums[tag] = self._sums.get(tag, 0.0) + value * batch
        tag = f"{stage}/spikes_per_sample/total"
        self._sums[tag] = self._sums.get(tag, 0.0) + total * batch
        self._samples[stage] = self._samples.get(stage, 0) + batch

    def _log_epoch(self, pl_module: LightningModule, stage: str) -> None:
        """Log the stage's epoch means (one ``log`` call per tag and epoch) and reset them."""
        samples = self._samples.pop(stage, 0)
        prefix = f"{stage}/"
        for tag in [tag for tag in self._sums if tag.startswith(prefix)]:
            value = self._sums.pop(tag) / max(samples, 1)
            pl_module.log(tag, value, on_step=False, on_epoch=True, sync_dist=True, batch_size=1)

    def _reset(self, stage: str) -> None:
        self._samples.pop(stage, None)
        for tag in [tag for tag in self._sums if tag.startswith(f"{stage}/")]:
            del self._sums[tag]

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset("train")
        self._grad_norms = []
        if not self.log_lr:
            return
        # Groups without a learning rate (runs without gradient training) log none.
        groups = [
            group
            for optimizer in trainer.optimizers
            for group in optimizer.param_groups
            if "lr" in group
        ]
        for index, group in enumerate(groups):
            tag = "train/lr" if index == 0 else f"train/lr/group{index}"
            pl_module.log(tag, float(group["lr"]), on_step=False, on_epoch=True, batch_size=1)

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset("val")

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._reset("test")

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._accumulate(pl_module, "train")

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._accumulate(pl_module, "val")

    def on_test_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        self._accumulate(pl_module, "test")

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log_epoch(pl_module, "train")
        if self._grad_norms:
            norm = torch.stack(self._grad_norms).mean()
            pl_module.log(
                "train/grad_norm", norm, on_step=False, on_epoch=True, sync_dist=True, batch_size=1
            )
        self._grad_norms = []

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log_epoch(pl_module, "val")

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log_epoch(pl_module, "test")

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        if not self.log_grad_norm:
            return
        norms = [p.grad.detach().norm(2) for p in pl_module.parameters() if p.grad is not None]
        if norms:
            self._grad_norms.append(torch.linalg.vector_norm(torch.stack(norms)))
