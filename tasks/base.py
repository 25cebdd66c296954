"""What a task is: data plus the task-specific readout, loss and metrics.

The Lightning module (:class:`spikeexp.engine.spiking_module.SpikingModule`) runs
``encoder -> network`` and hands the readout sequence ``[T, batch, outputs]`` to its task, which
returns the task loss and the metrics to log. A new task (e.g. store-recall memory) subclasses
:class:`Task`; nothing else in the pipeline changes.

Contract of a task:

* :attr:`datamodule`: a ``LightningDataModule``; the module fits and tests on it.
* :attr:`input_shape` (per sample, e.g. ``(1, 8, 8)``) and :attr:`num_outputs` (readout
  neurons): used to build the network and to check shapes before training.
* :meth:`inputs`: the tensor ``[batch, ...]`` the encoder gets from a batch.
* :meth:`step`: ``(readout [T, batch, outputs], batch, stage, window) -> TaskOutput``.
  ``window`` is the slice of time steps ``readout`` covers (the whole sequence, or one chunk under
  truncated backpropagation through time, see ``tbptt_steps``).
* :attr:`readout_spiking`: whether the readout layer must spike (else it is a voltage readout).

Metrics are ``torchmetrics`` objects held by the task (so they move with the module to the
device); the Lightning module logs every entry of ``TaskOutput.metrics`` as ``<stage>/<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import nn
from torchmetrics import Metric


@dataclass
class TaskOutput:
    """Result of one task step.

    Attributes:
        loss: the task loss (scalar, differentiable); regularisers are added by the module.
        metrics: values to log as ``<stage>/<name>`` each epoch (tensors or torchmetrics
            ``Metric`` objects updated in this step).
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor | Metric] = field(default_factory=dict)


class Task(nn.Module):
    """Base class of tasks (see the module docstring for the contract).

    Args:
        datamodule: the data of the task; must provide ``input_shape`` and ``num_classes``
            (or subclasses override :attr:`num_outputs`).
    """

    readout_spiking: bool = False

    def __init__(self, datamodule: LightningDataModule) -> None:
        super().__init__()
        self.datamodule = datamodule

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Per-sample shape of :meth:`inputs` (without the batch dimension)."""
        return tuple(self.datamodule.input_shape)

    @property
    def num_outputs(self) -> int:
        """Number of readout neurons."""
        return int(self.datamodule.num_classes)

    def inputs(self, batch: Any) -> torch.Tensor:
        """The encoder's input ``[batch, ...]``; by default the first element of the batch."""
        return batch[0]

    def step(
        self, readout: torch.Tensor, batch: Any, stage: str, window: slice = slice(None)
    ) -> TaskOutput:
        """Loss and metrics of ``readout`` (``[T, batch, outputs]``, time steps ``window``)."""
        raise NotImplementedError
