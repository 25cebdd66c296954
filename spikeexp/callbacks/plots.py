"""Images and histograms of a fixed validation sample, every N epochs, in TensorBoard.

:class:`SpikePlots` keeps the first validation batch (the validation loader is not shuffled, so it
is the same batch every epoch), runs it through encoder and network with neuron states recorded
(:func:`spikeexp.viz.record_activity`, no gradients, training randomness untouched) and writes:

==============================  ===============================================================
tag                             content
==============================  ===============================================================
``activity/input``              raster of the encoded input spikes (heatmap for analog currents)
``activity/raster/<layer>``     spike raster of each spiking layer
``activity/voltage/<layer>``    membrane voltage of the 5 most active neurons, threshold dashed
``activity/rates/<layer>``      histogram (figure) of per-neuron rates over the batch
``activity/readout``            readout traces; a task with a method ``periods(batch)`` returning
                                named time-first masks ``{"store": [T, batch] bool, ...}`` gets
                                those periods shaded
``rates_hz/<layer>``            TensorBoard histogram of per-neuron firing rates (Hz) over the
                                whole validation set
``weights/<parameter>``         TensorBoard histogram of every parameter (``fc1.weight`` ...)
==============================  ===============================================================

Images are rendered by matplotlib (Agg), ``sample`` picks the sample of the batch they show. They
are written at epochs ``0, N, 2N, ...`` and the last epoch, only to TensorBoard loggers, and not at
all in Hydra sweeps (``-m``) unless ``in_sweeps=true``.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import move_data_to_device
from lightning_utilities.core.apply_func import apply_to_collection

from spikeexp.callbacks.tensorboard import tensorboard_writers
from spikeexp.runtime.context import run_context
from spikeexp.viz import figure_to_array, parameter_label, record_activity, recording_figures


def slice_batch(batch: Any, index: slice) -> Any:
    """``batch`` (tensors, or tuples / named tuples / lists / dicts of them) cut to ``index``."""
    return apply_to_collection(batch, torch.Tensor, lambda tensor: tensor[index].detach().clone())


def batches_done(trainer: Trainer) -> int:
    """The step Lightning gives the epoch's logged scalars (training batches that stepped), so
    images line up with the scalar curves."""
    return int(getattr(trainer.fit_loop.epoch_loop, "_batches_that_stepped", trainer.global_step))


class SpikePlots(Callback):
    """Write activity images and histograms of a fixed validation batch every N epochs.

    Args:
        every_n_epochs: period (epochs, >= 1); the last epoch is always included.
        sample: which sample of the first validation batch the images show.
        max_samples: samples of that batch that are recorded (for the rate histograms).
        histograms: also write the rate and weight histograms.
        in_sweeps: also write them inside Hydra sweeps (off by default: sweeps stay light).
    """

    def __init__(
        self,
        every_n_epochs: int = 5,
        sample: int = 0,
        max_samples: int = 64,
        histograms: bool = True,
        in_sweeps: bool = False,
    ) -> None:
        super().__init__()
        for key, value, low in (("every_n_epochs", every_n_epochs, 1), ("sample", sample, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(
                    f"callbacks.spike_plots.{key} must be an integer >= {low} (got {value!r})"
                )
        if not isinstance(max_samples, int) or max_samples <= sample:
            raise ValueError(
                f"callbacks.spike_plots.max_samples must be an integer > sample={sample} "
                f"(got {max_samples!r})"
            )
        self.every_n_epochs = every_n_epochs
        self.sample = sample
        self.max_samples = max_samples
        self.histograms = histograms
        self.in_sweeps = in_sweeps
        self._in_sweep = run_context().multirun
        self._batch: Any = None
        self._rate_sums: dict[str, torch.Tensor] = {}
        self._rate_steps = 0
        self._due = False

    def _is_due(self, trainer: Trainer) -> bool:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return False
        if not tensorboard_writers(trainer):
            return False
        if self._in_sweep and not self.in_sweeps:
            return False
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch == trainer.max_epochs - 1
        return epoch % self.every_n_epochs == 0 or last

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._due = self._is_due(trainer)
        self._rate_sums = {}
        self._rate_steps = 0

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if batch_idx == 0 and dataloader_idx == 0 and self._batch is None:
            size = pl_module.task.inputs(batch).shape[0]
            if self.sample >= size:
                raise ValueError(
                    f"callbacks.spike_plots.sample must be < the validation batch size {size} "
                    f"(got {self.sample})"
                )
            self._batch = slice_batch(batch, slice(0, self.max_samples))
        if not (self._due and self.histograms):
            return
        for name, spikes in pl_module.network.records.items():
            counts = spikes.detach().flatten(2).sum(dim=(0, 1)).cpu()
            self._rate_sums[name] = self._rate_sums.get(name, 0) + counts
        first = next(iter(pl_module.network.records.values()), None)
        if first is not None:
            self._rate_steps += first.shape[0] * first.shape[1]

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._due or self._batch is None:
            return
        step = batches_done(trainer)
        batch = move_data_to_device(self._batch, pl_module.device)
        recording = record_activity(
            pl_module.encoder, pl_module.network, pl_module.task.inputs(batch)
        )
        periods_of = getattr(pl_module.task, "periods", None)
        periods = periods_of(batch) if callable(periods_of) else None
        figures = recording_figures(recording, sample=self.sample, periods=periods)
        images = {name: figure_to_array(figure) for name, figure in figures.items()}
        for writer in tensorboard_writers(trainer):
            for name, image in images.items():
                writer.add_image(f"activity/{name}", image, step, dataformats="HWC")
            if not self.histograms:
                continue
            for name, counts in self._rate_sums.items():
                rates = counts / (self._rate_steps * pl_module.dt)
                writer.add_histogram(f"rates_hz/{name}", rates, step)
            for name, parameter in pl_module.named_parameters():
                writer.add_histogram(
                    f"weights/{parameter_label(name)}", parameter.detach().cpu(), step
                )
