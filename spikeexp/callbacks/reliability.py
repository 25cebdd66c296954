"""Callbacks that keep a run's work safe: stop on NaN/inf, checkpoint on SIGTERM.

* :class:`NonFiniteGuard` checks the training loss before every backward pass (and the gradients
  before every optimiser step). A NaN or inf stops the run with :class:`NonFiniteLossError`,
  whose message names the global step and the last finite metrics, *before* the optimiser could
  write NaN into the weights; no checkpoint is written after it, so ``last.ckpt`` stays the last
  good state.
* :class:`LastCheckpoint` saves ``last.ckpt`` at the end of every epoch, every N training steps
  (config key ``last_checkpoint_every_n_steps``) and at the end of the batch during which the
  process received SIGTERM (what SLURM sends before pre-emption or at the time limit); Lightning
  then stops the run, and ``spikeexp-train resume=<run_dir>`` continues it. Only states a resume
  continues exactly are saved: never after an epoch's last batch (before its validation) or in
  the middle of gradient accumulation.

:func:`reliability_callbacks` returns both; the training pipeline always adds them.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.trainer.states import RunningStage
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.optim import Optimizer

from spikeexp.runtime.run_files import LAST_CHECKPOINT

MAX_METRICS_SHOWN = 6


class NonFiniteLossError(RuntimeError):
    """The training loss (or a gradient) became NaN or inf; the message is one line."""


def checkpoint_dir(trainer: Trainer) -> Path:
    """Where the run's checkpoints go: the checkpoint callback's folder, else
    ``<default_root_dir>/checkpoints``."""
    callback = trainer.checkpoint_callback
    if isinstance(callback, ModelCheckpoint) and callback.dirpath:
        return Path(callback.dirpath)
    return Path(trainer.default_root_dir) / "checkpoints"


def _finite_metrics(trainer: Trainer) -> dict[str, float]:
    values = {}
    for name, value in trainer.callback_metrics.items():
        number = float(value.item() if isinstance(value, torch.Tensor) else value)
        if math.isfinite(number):
            values[name] = number
    return values


class NonFiniteGuard(Callback):
    """Stop training on the first NaN/inf loss or gradient, before the weights are touched.

    Args:
        check_gradients: also check every gradient before each optimiser step (one reduction
            over all gradients per step).
    """

    def __init__(self, check_gradients: bool = True) -> None:
        self.check_gradients = check_gradients
        self._last_finite_loss: tuple[int, float] | None = None

    def on_before_backward(
        self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor
    ) -> None:
        value = float(loss.detach())  # the loss is a scalar: one device sync per step
        # Every rank stops together (one rank raising alone would leave the others waiting).
        if trainer.strategy.reduce_boolean_decision(not math.isfinite(value), all=False):
            raise NonFiniteLossError(self._message(trainer, f"training loss is {value}"))
        self._last_finite_loss = (trainer.global_step, value)

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        if not self.check_gradients:
            return
        named = [(n, p.grad) for n, p in pl_module.named_parameters() if p.grad is not None]
        if not named:
            return
        norms = torch.stack(torch._foreach_norm([grad for _, grad in named]))
        if bool(torch.isfinite(norms).all()):
            return
        bad = named[int((~torch.isfinite(norms)).nonzero()[0])][0]
        raise NonFiniteLossError(self._message(trainer, f"gradient of {bad} is not finite"))

    def _message(self, trainer: Trainer, what: str) -> str:
        metrics = _finite_metrics(trainer)
        shown = ", ".join(
            f"{name}={value:.4g}" for name, value in sorted(metrics.items())[:MAX_METRICS_SHOWN]
        )
        if self._last_finite_loss is not None:
            step, value = self._last_finite_loss
            shown = f"loss {value:.4g} at global step {step}" + (f", {shown}" if shown else "")
        last = checkpoint_dir(trainer) / LAST_CHECKPOINT
        kept = (
            f"last good checkpoint kept: {last}"
            if last.exists()
            else "no checkpoint was written before it"
        )
        return (
            f"{what} at global step {trainer.global_step} (epoch {trainer.current_epoch}); "
            f"last finite metrics: {shown or 'none yet'}; {kept}; try a smaller optimizer.lr or "
            f"trainer.gradient_clip_val=1.0"
        )


class LastCheckpoint(Callback):
    """Save ``last.ckpt`` at the end of every epoch, every ``every_n_train_steps`` steps and when
    SIGTERM arrives.

    Lightning 2.6's ``ModelCheckpoint(save_last=True)`` only refreshes ``last.ckpt`` when it saves
    a top-k checkpoint (i.e. when the monitored metric improved), so this callback saves it at
    every epoch end itself. Step and SIGTERM saves happen at the end of a training batch, in the
    same state as a step checkpoint of ``ModelCheckpoint``, so a resumed run continues with the next
    batch. On SIGTERM, Lightning's own handler only sets ``trainer.received_sigterm`` and stops the
    loops after the batch; this callback saves first.

    Args:
        every_n_train_steps: save every this many optimiser steps (``None``: only on SIGTERM);
            the config key ``last_checkpoint_every_n_steps``, checked by
            :mod:`spikeexp.engine.validate`.
    """

    def __init__(self, every_n_train_steps: int | None = None) -> None:
        self.every_n_train_steps = every_n_train_steps
        self.saved_on_sigterm: Path | None = None
        self._flush_pending = False

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, index: int
    ) -> None:
        self._flush_if_pending(trainer)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, index: int
    ) -> None:
        if trainer.fast_dev_run or not _resumable_after_batch(trainer, index):
            return
        if trainer.received_sigterm:
            if self.saved_on_sigterm is None:
                self.saved_on_sigterm = self._save(trainer)
        elif self.every_n_train_steps and trainer.global_step % self.every_n_train_steps == 0:
            self._save(trainer)

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._flush_if_pending(trainer)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking and not trainer.fast_dev_run:
            path = self._save(trainer)
            if trainer.received_sigterm and self.saved_on_sigterm is None:
                # SIGTERM came during the epoch's last batch (no save there, see
                # _resumable_after_batch) and validation ended before Lightning stopped.
                self.saved_on_sigterm = path

    def _save(self, trainer: Trainer) -> Path:
        """Write ``last.ckpt`` and flush the loggers up to the checkpoint's state."""
        path = checkpoint_dir(trainer) / LAST_CHECKPOINT
        callback = trainer.checkpoint_callback
        if isinstance(callback, ModelCheckpoint):
            # Recorded in the checkpoint, so that ModelCheckpoint (also after a resume) keeps
            # overwriting this last.ckpt instead of starting a last-v1.ckpt next to it.
            callback.last_model_path = str(path)
        _flush_loggers(trainer)
        trainer.save_checkpoint(path, weights_only=False)
        # Lightning logs the step metrics of this batch after on_train_batch_end: flush them at
        # the next hook, so that a killed run keeps every step up to its checkpoint on disk.
        self._flush_pending = True
        return path

    def _flush_if_pending(self, trainer: Trainer) -> None:
        if self._flush_pending:
            _flush_loggers(trainer)
            self._flush_pending = False

    def on_exception(
        self, trainer: Trainer, pl_module: LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException):
            return
        if self.saved_on_sigterm is None and _between_training_batches(trainer):
            # SIGTERM arrived after this callback's on_train_batch_end, and Lightning stopped at
            # the end of that batch: the loops are between two batches, a consistent state.
            self.saved_on_sigterm = self._save(trainer)
        if not trainer.is_global_zero:
            return
        saved = (
            f"saved {self.saved_on_sigterm}"
            if self.saved_on_sigterm
            else "stopped during validation, the last checkpoint is kept"
        )
        print(
            f"stopped by SIGTERM at global step {trainer.global_step}: {saved}; continue with: "
            f"spikeexp-train resume={trainer.default_root_dir}",
            file=sys.stderr,
        )


def _flush_loggers(trainer: Trainer) -> None:
    """Write what the loggers buffered to their files (TensorBoard writers, CSV rows)."""
    for logger in trainer.loggers:
        logger.save()
        writer = getattr(logger, "experiment", None)
        if callable(getattr(writer, "flush", None)):
            writer.flush()


def _resumable_after_batch(trainer: Trainer, index: int) -> bool:
    """Whether a checkpoint saved at the end of training batch ``index`` resumes exactly.

    Not after the last batch of an epoch: that epoch's validation, epoch-end hooks and epoch-wise
    scheduler step are still to come, and Lightning 2.6, restarting from such a checkpoint, treats
    the epoch as finished without them (the epoch-end save follows right after validation).
    Not while gradients are being accumulated either: they are not part of a checkpoint.
    """
    progress = trainer.fit_loop.epoch_loop.batch_progress
    last_batch = progress.is_last_batch or index + 1 >= trainer.num_training_batches
    accumulating = progress.current.ready % trainer.accumulate_grad_batches != 0
    return not last_batch and not accumulating


def _between_training_batches(trainer: Trainer) -> bool:
    """Whether fitting stopped with its last training batch complete (not inside validation)."""
    if trainer.state.stage != RunningStage.TRAINING or trainer.fast_dev_run:
        return False
    progress = trainer.fit_loop.epoch_loop.batch_progress.current
    return progress.ready == progress.completed


def reliability_callbacks(last_checkpoint_every_n_steps: int | None = None) -> list[Callback]:
    """The callbacks every training run gets (see the module docstring)."""
    return [NonFiniteGuard(), LastCheckpoint(last_checkpoint_every_n_steps)]
