"""Classification of whole sequences: decoder logits, cross-entropy, accuracy.

The decoder (``decoder=li_max`` ...) maps the readout ``[T, batch, classes]`` to logits
``[batch, classes]``; the loss is the cross-entropy of the logits with the labels, the metric the
top-1 accuracy (``<stage>/acc``). The reward of a sample (for reward-modulated plasticity) is
+1 when the logits classify it correctly, -1 otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from spikeexp.module.decode import Decoder
from spikeexp.tasks.base import Task, TaskOutput

STAGES = ("train", "val", "test")


class ClassificationTask(Task):
    """One label per sample; batches ``(x [batch, ...], y [batch] int64)``.

    Args:
        datamodule: data with ``input_shape`` and ``num_classes``.
        decoder: readout sequence -> logits (:mod:`spikeexp.module.decode`).
    """

    def __init__(self, datamodule: LightningDataModule, decoder: Decoder) -> None:
        super().__init__(datamodule)
        self.decoder = decoder
        self.readout_spiking = decoder.reads == "spikes"
        self.accuracy = nn.ModuleDict(
            {
                f"{stage}_acc": MulticlassAccuracy(self.num_outputs, average="micro")
                for stage in STAGES
            }
        )

    def step(
        self, readout: torch.Tensor, batch: Any, stage: str, window: slice = slice(None)
    ) -> TaskOutput:
        logits = self.decoder(readout)
        target = batch[1]
        accuracy = self.accuracy[f"{stage}_acc"]
        accuracy.update(logits.detach(), target)
        reward = 2.0 * (logits.detach().argmax(-1) == target).to(logits.dtype) - 1.0
        return TaskOutput(
            loss=F.cross_entropy(logits, target), metrics={"acc": accuracy}, reward=reward
        )
