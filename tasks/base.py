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
  A task that takes a ``decoder`` argument decodes with the ``decoder`` group and needs the readout
  that decoder reads; a task without one (e.g. the memory task) reads its readout itself.
* :meth:`needs`: what the task needs from the rest of a composition (:class:`TaskNeeds`), asked
  by the validation pass before anything is loaded or built. The default reads it from the data
  module (below) and the task class; a task with further needs overrides it.
* :attr:`needs_readout_layer`: whether the network must end with the ``fc_out`` + ``readout``
  layers of :attr:`num_outputs` neurons (``False``: the task reads the last layer's spikes
  itself, e.g. label assignment after a competitive layer).
* :attr:`has_loss`: ``False`` for tasks without a loss (networks that learn by local plasticity
  only, ``optimizer=none``); their :meth:`step` returns ``loss=None``.
* Calibration (optional, :attr:`calibrates`): after every training epoch, before validation, the
  module runs the training set (:meth:`calibration_batches`) through the network in evaluation
  mode and hands each readout to :meth:`calibrate`, between :meth:`calibration_start` and
  :meth:`calibration_end`, e.g. to assign labels to the neurons of an unsupervised network.

What the data module declares, readable right after construction (constructing a data module reads
no data, Lightning's rule; the validation pass constructs one to ask it):

* ``input_shape``: the per-sample shape of :meth:`inputs`, e.g. ``(1, 8, 8)``;
* ``num_classes`` (or the task overrides :attr:`num_outputs`);
* ``sequence_steps`` (optional, default ``None``): ``None`` for static samples, which an encoder
  turns into ``seq_length`` steps; an integer ``T`` for data that are sequences already, ``T``
  steps along the first axis of ``input_shape`` (spike trains, event frames, pixel sequences),
  which ``encoder=none`` hands to the network as they are.

Metrics are ``torchmetrics`` objects held by the task (so they move with the module to the
device); the Lightning module logs every entry of ``TaskOutput.metrics`` as ``<stage>/<name>``.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from torch import nn
from torchmetrics import Metric


@dataclass(frozen=True)
class TaskNeeds:
    """What a task needs from the encoder, topology and decoder of a composition.

    Checked by the validation pass (:mod:`spikeexp.engine.compatibility`) before any data are
    loaded or any run directory is filled; a composition that cannot satisfy it is refused with one
    line naming the groups involved and a working alternative.

    Attributes:
        input_shape: per-sample shape of :meth:`Task.inputs` (without the batch axis).
        sequence_steps: ``None``: static samples, an encoder makes ``seq_length`` steps of each;
            ``T``: the samples are sequences of ``T`` steps along the first axis of
            ``input_shape`` and need an encoder that takes sequences (``encoder=none``).
        decoder: the task decodes its readout with the ``decoder`` group; ``False``: it reads the
            readout itself (the group then only supplies the readout neuron).
        readout: what the task reads itself when ``decoder`` is ``False``: ``"voltage"`` (a
            non-spiking readout such as LI) or ``"spikes"``; ``None`` when the decoder decides.
        readout_layer: the network must end with the ``fc_out`` + ``readout`` layers
            (:attr:`Task.needs_readout_layer`); ``False``: the task reads the last spiking
            layer itself (label assignment after a competitive layer).
    """

    input_shape: tuple[int, ...]
    sequence_steps: int | None = None
    decoder: bool = True
    readout: str | None = None
    readout_layer: bool = True

    @property
    def step_shape(self) -> tuple[int, ...]:
        """Per-step shape of a sequence task's input (``input_shape`` without time)."""
        return self.input_shape[1:] if self.sequence_steps is not None else self.input_shape


@dataclass
class TaskOutput:
    """Result of one task step.

    Attributes:
        loss: the task loss (scalar, differentiable), or ``None`` for tasks without a loss;
            regularisers are added by the module.
        metrics: values to log as ``<stage>/<name>`` each epoch (tensors or torchmetrics
            ``Metric`` objects updated in this step).
        reward: per-sample reward ``[batch]`` (dimensionless) for reward-modulated plasticity,
            or ``None``.
    """

    loss: torch.Tensor | None
    metrics: dict[str, torch.Tensor | Metric] = field(default_factory=dict)
    reward: torch.Tensor | None = None


class Task(nn.Module):
    """Base class of tasks (see the module docstring for the contract).

    Args:
        datamodule: the data of the task; must provide ``input_shape`` and ``num_classes``
            (or subclasses override :attr:`num_outputs`).
    """

    readout_spiking: bool = False
    needs_readout_layer: bool = True
    has_loss: bool = True
    calibrates: bool = False

    def __init__(self, datamodule: LightningDataModule) -> None:
        super().__init__()
        self.datamodule = datamodule

    @classmethod
    def needs(cls, datamodule: LightningDataModule) -> TaskNeeds:
        """What this task needs, given its (constructed, not yet loaded) data module: the data
        module's ``input_shape`` and ``sequence_steps``; whether the task takes a ``decoder``
        argument, else the readout :attr:`readout_spiking` asks for."""
        decodes = "decoder" in inspect.signature(cls).parameters
        steps = getattr(datamodule, "sequence_steps", None)
        return TaskNeeds(
            input_shape=tuple(int(size) for size in datamodule.input_shape),
            sequence_steps=None if steps is None else int(steps),
            decoder=decodes,
            readout=None if decodes else ("spikes" if cls.readout_spiking else "voltage"),
            readout_layer=cls.needs_readout_layer,
        )

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

    def calibration_start(self) -> None:
        """Start a calibration pass (see the module docstring); by default nothing."""

    def calibrate(self, readout: torch.Tensor, batch: Any) -> None:
        """Take the readout ``[T, batch, ...]`` of one calibration batch; by default nothing."""

    def calibration_end(self) -> None:
        """Finish a calibration pass; by default nothing."""

    def calibration_batches(self) -> Iterable[Any]:
        """The batches of a calibration pass: the training set in a fixed order, without
        augmentation (the data module's ``calibration_dataloader()``)."""
        loader = getattr(self.datamodule, "calibration_dataloader", None)
        if loader is None:
            raise ValueError(
                f"{type(self).__name__} calibrates on the training set, but the data module "
                f"{type(self.datamodule).__name__} has no calibration_dataloader()"
            )
        return loader()
