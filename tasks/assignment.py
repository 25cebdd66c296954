r"""Unsupervised classification read out by label assignment (Diehl & Cook 2015).

The network learns without labels (local plasticity, ``optimizer=none``); the task's readout is
the spikes of the network's last layer, ``[T, batch, neurons]``. After every training epoch a
calibration pass over the training set (evaluation mode: no plasticity, thresholds held) counts
each neuron's spikes :math:`c_i` per sample; neuron :math:`i` is assigned the class :math:`k` of
its highest mean count :math:`\bar c_{k,i}` over the samples of that class; a neuron that never
spiked stays unassigned. A sample is classified as the class whose assigned neurons spiked most
on average:

.. math::
    \hat y = \arg\max_k \frac{1}{|N_k|} \sum_{i \in N_k} c_i

Logged per stage: ``acc`` (the training accuracy of an epoch uses the assignments of the previous
one). The assignments are part of the checkpoint, so testing the best checkpoint uses the labels
assigned with its weights. Before the first calibration every sample gets class 0.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from spikeexp.tasks.base import Task, TaskOutput

STAGES = ("train", "val", "test")


class LabelAssignmentTask(Task):
    """Classification of the spike counts of an unsupervised network by assigned labels.

    Batches are ``(x [batch, ...], y [batch] int64)``; the data module must provide
    ``calibration_dataloader()`` (every :class:`~spikeexp.tasks.tensor_data.TensorDataModule`
    does).

    Args:
        datamodule: data with ``input_shape`` and ``num_classes``.
    """

    readout_spiking = True
    needs_readout_layer = False
    has_loss = False
    calibrates = True

    def __init__(self, datamodule: LightningDataModule) -> None:
        super().__init__(datamodule)
        self.accuracy = nn.ModuleDict(
            {
                f"{stage}_acc": MulticlassAccuracy(self.num_outputs, average="micro")
                for stage in STAGES
            }
        )
        self.assignments: torch.Tensor | None = None
        self._sums: torch.Tensor | None = None
        self._samples: torch.Tensor | None = None

    @staticmethod
    def spike_counts(readout: torch.Tensor) -> torch.Tensor:
        """Spikes per neuron and sample, ``[batch, neurons]``."""
        return readout.detach().sum(0).flatten(1)

    def votes(self, counts: torch.Tensor) -> torch.Tensor:
        """Mean count of each class's assigned neurons, ``[batch, classes]`` (``-inf`` for a
        class without neurons)."""
        classes = self.num_outputs
        if self.assignments is None:
            return counts.new_zeros(counts.shape[0], classes)
        assigned = self.assignments.to(counts.device)
        members = F.one_hot(assigned.clamp(min=0), classes).to(counts.dtype)
        members = members * (assigned >= 0).unsqueeze(1).to(counts.dtype)
        sizes = members.sum(0)
        votes = counts @ members / sizes.clamp(min=1)
        return votes.masked_fill(sizes == 0, float("-inf"))

    def step(
        self, readout: torch.Tensor, batch: Any, stage: str, window: slice = slice(None)
    ) -> TaskOutput:
        predicted = self.votes(self.spike_counts(readout)).argmax(-1)
        accuracy = self.accuracy[f"{stage}_acc"]
        accuracy.update(predicted, batch[1])
        return TaskOutput(loss=None, metrics={"acc": accuracy})

    # ------------------------------------------------------------------ calibration

    def calibration_start(self) -> None:
        self._sums = None
        self._samples = None

    def calibrate(self, readout: torch.Tensor, batch: Any) -> None:
        counts = self.spike_counts(readout)
        labels = F.one_hot(batch[1], self.num_outputs).to(counts.dtype)
        sums = labels.t() @ counts
        samples = labels.sum(0)
        self._sums = sums if self._sums is None else self._sums + sums
        self._samples = samples if self._samples is None else self._samples + samples

    def calibration_end(self) -> None:
        if self._sums is None:
            raise ValueError("label assignment needs at least one calibration batch (got none)")
        means = self._sums / self._samples.clamp(min=1).unsqueeze(1)
        best, assignments = means.max(0)
        self.assignments = assignments.masked_fill(best <= 0, -1).cpu()
        self._sums = self._samples = None

    # ------------------------------------------------------------------ checkpoints

    def get_extra_state(self) -> dict[str, Any]:
        return {} if self.assignments is None else {"assignments": self.assignments}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        saved = state.get("assignments") if isinstance(state, dict) else None
        self.assignments = None if saved is None else saved.cpu()
