r"""The Lightning module: ``encoder -> network -> task`` (readout, loss, metrics), one per run.

Per batch (:meth:`SpikingModule.shared_step`):

1. ``x = task.inputs(batch)`` (``[batch, ...]``), ``encoded = encoder(x)`` (``[T, batch, ...]``);
2. ``readout, _ = network(encoded)``: time is unrolled here, once, by the network's sequence
   modules, always from a fresh resting state (no state leaks between batches or stages);
3. ``task.step(readout, batch, stage)`` gives the task loss and metrics;
4. the rate regularisers of :class:`Regularization` are added on the recorded spikes.

Logged per stage (``train``, ``val``, ``test``), averaged over each epoch: ``loss`` (total),
``loss_task`` and each regulariser term (``loss_rate``, ``loss_l1``, when enabled), the task's
metrics (``acc``), and per spiking layer ``rate_hz/<layer>`` (mean firing rate in Hz) and
``silent/<layer>`` (fraction of neurons that did not spike in the batch).

With ``tbptt_steps`` set, training uses truncated backpropagation through time (manual
optimisation): the encoded sequence is cut into chunks of ``tbptt_steps`` steps; each chunk
continues from the previous chunk's detached state, its loss (``task.step`` with the chunk's time
``window``) is backpropagated and the optimiser steps once per chunk. Validation and test always
run the whole sequence. With ``recompute_steps`` set instead, training keeps full BPTT but runs
the forward pass in chunks whose insides are recomputed during backward
(:mod:`spikeexp.engine.recompute`): less memory, same gradients, one more forward pass.

Local learning (:mod:`spikeexp.module.plastic`): the network's plastic connections learn from
every training forward pass on their own (``direct`` mode); reward-modulated ones get the task's
per-sample reward (``TaskOutput.reward``) right after :meth:`Task.step`; connections in ``grad``
mode write their change into ``.grad`` after the backward pass (``on_after_backward``), where the
optimiser applies it with the gradients of the other layers. Without an optimiser
(``optimizer=none``) nothing is trained by gradients: a training step runs the forward pass under
``no_grad``, the task's metrics and the plasticity, and steps :class:`LocalLearningSteps`, which
changes nothing but lets Lightning count the steps (logging, step checkpoints, resume). Tasks that
calibrate (e.g. label assignment) get a pass over the training set in evaluation mode after the
last training batch of every epoch, before validation and the epoch's checkpoints
(:meth:`SpikingModule.calibrate`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn

from spikeexp.engine.recompute import recomputed_forward
from spikeexp.module.network import SpikingNetwork
from spikeexp.tasks.base import Task

OptimizerFactory = Callable[..., torch.optim.Optimizer]


class LocalLearningSteps(torch.optim.Optimizer):
    """The optimiser of runs without gradient training: :meth:`step` changes no parameter (the
    plastic connections update themselves); Lightning counts its steps as the global steps."""

    def __init__(self, params: Any) -> None:
        super().__init__(params, {})

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        return None if closure is None else closure()


@dataclass
class LayerRegularization:
    """Rate regularisation of one spiking layer (see :class:`Regularization`)."""

    rate_target_hz: float = 10.0
    rate_weight: float = 0.0
    l1_weight: float = 0.0


@dataclass
class Regularization:
    r"""Firing-rate regularisers on the spikes :math:`z_{t,b,j}` of every spiking layer.

    With :math:`p_j = \frac{1}{T B} \sum_{t,b} z_{t,b,j}` the spike probability per step of
    neuron :math:`j` (its rate is :math:`p_j / \Delta t` Hz) and :math:`p_0 =` ``rate_target_hz``
    :math:`\cdot \Delta t`:

    .. math::
        L_{rate} = w_{rate} \, \mathrm{mean}_j (p_j - p_0)^2, \qquad
        L_{l1} = w_{l1} \, \mathrm{mean}_{t,b,j} |z_{t,b,j}|

    summed over layers. ``layers`` maps a layer name to overrides of the three values.

    Attributes:
        rate_target_hz: target firing rate (Hz).
        rate_weight: weight :math:`w_{rate}` (0 disables the term).
        l1_weight: weight :math:`w_{l1}` of the L1 penalty on spikes (0 disables it).
        layers: per-layer overrides, ``{"hidden1": {"rate_weight": 1.0}}``.
    """

    rate_target_hz: float = 10.0
    rate_weight: float = 0.0
    l1_weight: float = 0.0
    layers: dict[str, Any] = field(default_factory=dict)

    def for_layer(self, name: str) -> LayerRegularization:
        """The regularisation of layer ``name`` (global values, then its overrides)."""
        base = LayerRegularization(self.rate_target_hz, self.rate_weight, self.l1_weight)
        return LayerRegularization(**{**base.__dict__, **self.layers.get(name, {})})


def detach_state(state: Any) -> Any:
    """``state`` (nested lists/tuples/NamedTuples of tensors) cut from the autograd graph."""
    if isinstance(state, torch.Tensor):
        return state.detach()
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(detach_state(item) for item in state))
    if isinstance(state, (list, tuple)):
        return type(state)(detach_state(item) for item in state)
    return state


class SpikingModule(LightningModule):
    """Encoder, spiking network and task trained as one Lightning module.

    Args:
        encoder: ``[batch, ...] -> [T, batch, ...]`` (:mod:`spikeexp.module.encode`).
        network: the spiking network (:func:`spikeexp.engine.topology.build_network`).
        task: data, loss and metrics (:class:`spikeexp.tasks.base.Task`).
        optimizer: ``optimizer(params=...) -> Optimizer`` (a ``functools.partial``), or ``None``
            for runs that learn by plasticity only.
        scheduler: ``None`` or Lightning's scheduler dict whose ``scheduler`` entry is
            ``scheduler(optimizer=...) -> LRScheduler`` (plus ``interval``, ``frequency``,
            ``monitor``).
        dt: integration step (s), converts spike probabilities to rates in Hz.
        regularization: the rate regularisers.
        tbptt_steps: chunk length (steps) of truncated BPTT, ``None`` for full BPTT.
        recompute_steps: full BPTT in less memory: training forward passes run in chunks of
            this many steps whose insides are recomputed during backward
            (:mod:`spikeexp.engine.recompute`); ``None`` keeps everything. Not with
            ``tbptt_steps`` (both are checked by :mod:`spikeexp.engine.validate`).
        config: the resolved run config as plain data; saved as the hyper-parameter ``config``
            in checkpoints (plain containers only, loadable with ``weights_only=True``).
    """

    def __init__(
        self,
        encoder: nn.Module,
        network: SpikingNetwork,
        task: Task,
        optimizer: OptimizerFactory | None,
        scheduler: Mapping[str, Any] | None = None,
        dt: float = 1e-3,
        regularization: Regularization | None = None,
        tbptt_steps: int | None = None,
        recompute_steps: int | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.recompute_steps = recompute_steps
        self.encoder = encoder
        self.network = network
        self.task = task
        self.optimizer_factory = optimizer
        self.scheduler_config = dict(scheduler) if scheduler else None
        self.dt = float(dt)
        self.regularization = regularization or Regularization()
        self.tbptt_steps = tbptt_steps
        self.automatic_optimization = tbptt_steps is None and optimizer is not None
        self.save_hyperparameters({"config": dict(config or {})})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The readout sequence ``[T, batch, outputs]`` for inputs ``x`` ``[batch, ...]``."""
        readout, _ = self.network(self.encoder(x))
        return readout

    # ------------------------------------------------------------------ steps

    def shared_step(self, batch: Any, stage: str) -> torch.Tensor | None:
        """Encode, run the network from rest, compute and log loss and metrics; in training,
        deliver the task's reward to reward-modulated plastic connections."""
        x = self.task.inputs(batch)
        if stage == "train" and self.recompute_steps is not None:
            readout, _ = recomputed_forward(self.network, self.encoder(x), self.recompute_steps)
        else:
            readout, _ = self.network(self.encoder(x))
        output = self.task.step(readout, batch, stage)
        if stage == "train":
            self._reward(output.reward)
        loss = None
        if output.loss is not None:
            loss = self._add_regularizers(output.loss, self.network.records, stage, x.shape[0])
        self._log_metrics(output.metrics, stage, x.shape[0])
        self._log_activity(self.network.records, stage, x.shape[0])
        return loss

    def _reward(self, reward: torch.Tensor | None) -> None:
        if not self.network.modulated:
            return
        if reward is None:
            raise ValueError(
                f"reward-modulated plasticity needs a reward, but task "
                f"{type(self.task).__name__} gives none"
            )
        self.network.reward(reward.detach())

    def training_step(self, batch: Any, batch_index: int) -> torch.Tensor | None:
        if self.optimizer_factory is None:
            with torch.no_grad():
                self.shared_step(batch, "train")
            self.optimizers().step()
            return None
        if self.tbptt_steps is None:
            return self.shared_step(batch, "train")
        self._truncated_bptt_step(batch)
        return None

    def on_after_backward(self) -> None:
        """Plastic connections in ``grad`` mode add their change to ``.grad``."""
        self.network.write_plastic_grads()

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_index: int) -> None:
        """After the epoch's last training batch: the task's calibration pass, if it has one."""
        if not self.task.calibrates:
            return
        last = self.trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        if last or batch_index + 1 >= self.trainer.num_training_batches:
            self.calibrate()

    @torch.no_grad()
    def calibrate(self) -> None:
        """Run the task's calibration batches (the training set) through encoder and network in
        evaluation mode (no plasticity, no threshold adaptation) and hand the readouts to the
        task (:class:`~spikeexp.tasks.base.Task`, calibration)."""
        was_training = self.training
        self.eval()
        try:
            self.task.calibration_start()
            for batch in self.task.calibration_batches():
                batch = [item.to(self.device) for item in batch]
                readout, _ = self.network(self.encoder(self.task.inputs(batch)))
                self.task.calibrate(readout, batch)
            self.task.calibration_end()
        finally:
            self.train(was_training)

    def validation_step(self, batch: Any, batch_index: int) -> torch.Tensor:
        return self.shared_step(batch, "val")

    def test_step(self, batch: Any, batch_index: int) -> torch.Tensor:
        return self.shared_step(batch, "test")

    def _truncated_bptt_step(self, batch: Any) -> None:
        """One optimiser step per chunk of ``tbptt_steps`` steps, state carried but detached."""
        optimizer = self.optimizers()
        x = self.task.inputs(batch)
        batch_size = x.shape[0]
        encoded = self.encoder(x)
        state = None
        for start in range(0, encoded.shape[0], self.tbptt_steps):
            window = slice(start, min(start + self.tbptt_steps, encoded.shape[0]))
            readout, state = self.network(encoded[window], state)
            output = self.task.step(readout, batch, "train", window)
            self._reward(output.reward)
            loss = self._add_regularizers(output.loss, self.network.records, "train", batch_size)
            optimizer.zero_grad()
            self.manual_backward(loss)  # calls on_after_backward: plastic grads
            optimizer.step()
            state = detach_state(state)
            self._log_metrics(output.metrics, "train", batch_size)
            self._log_activity(self.network.records, "train", batch_size)

    def on_train_epoch_end(self) -> None:
        """Under manual optimisation (TBPTT) epoch-wise schedulers are stepped here."""
        if self.automatic_optimization or self.scheduler_config is None:
            return
        scheduler = self.lr_schedulers()
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            monitor = self.scheduler_config.get("monitor", "val/loss")
            value = self.trainer.callback_metrics.get(monitor)
            if value is not None:
                scheduler.step(value)
        else:
            scheduler.step()

    # ------------------------------------------------------------------ loss and logging

    def _add_regularizers(
        self, task_loss: torch.Tensor, records: Mapping[str, torch.Tensor], stage: str, size: int
    ) -> torch.Tensor:
        terms = {"loss_task": task_loss}
        rate_terms, l1_terms = [], []
        for name, spikes in records.items():
            settings = self.regularization.for_layer(name)
            if settings.rate_weight > 0:
                probability = spikes.flatten(2).mean(dim=(0, 1))
                target = settings.rate_target_hz * self.dt
                rate_terms.append(settings.rate_weight * (probability - target).pow(2).mean())
            if settings.l1_weight > 0:
                l1_terms.append(settings.l1_weight * spikes.abs().mean())
        if rate_terms:
            terms["loss_rate"] = torch.stack(rate_terms).sum()
        if l1_terms:
            terms["loss_l1"] = torch.stack(l1_terms).sum()
        loss = torch.stack(list(terms.values())).sum()
        on_step = stage == "train"
        # Epoch values are averaged over DDP ranks (sync_dist); per-step training losses stay
        # per rank, so that logging costs no collective call per step.
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=not on_step,
        )
        for name, value in terms.items():
            self.log(
                f"{stage}/{name}",
                value,
                on_step=False,
                on_epoch=True,
                batch_size=size,
                sync_dist=True,
            )
        return loss

    def _log_metrics(self, metrics: Mapping[str, Any], stage: str, size: int) -> None:
        for name, value in metrics.items():
            self.log(
                f"{stage}/{name}",
                value,
                on_step=False,
                on_epoch=True,
                prog_bar=True,
                batch_size=size,
            )

    def _log_activity(self, records: Mapping[str, torch.Tensor], stage: str, size: int) -> None:
        for name, spikes in records.items():
            spikes = spikes.detach()
            counts = spikes.flatten(2).sum(dim=(0, 1))
            self.log(
                f"{stage}/rate_hz/{name}",
                spikes.mean() / self.dt,
                on_step=False,
                on_epoch=True,
                batch_size=size,
                sync_dist=True,
            )
            self.log(
                f"{stage}/silent/{name}",
                (counts == 0).float().mean(),
                on_step=False,
                on_epoch=True,
                batch_size=size,
                sync_dist=True,
            )

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self) -> Any:
        if self.optimizer_factory is None:
            params = list(self.parameters()) or [nn.Parameter(torch.zeros(0))]
            return LocalLearningSteps(params)
        optimizer = self.optimizer_factory(params=self.parameters())
        if self.scheduler_config is None:
            return optimizer
        settings = dict(self.scheduler_config)
        settings["scheduler"] = settings["scheduler"](optimizer=optimizer)
        return {"optimizer": optimizer, "lr_scheduler": settings}
