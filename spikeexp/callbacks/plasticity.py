"""What the plastic connections learn: receptive fields, weight histograms, update rates.

:class:`PlasticityMonitor` watches every plastic connection ``<layer>`` of the network
(:class:`~spikeexp.module.PlasticConnection`, named by its layer, e.g. ``fc_exc``) and every
competitive layer (:class:`~spikeexp.module.CompetitiveLIF`, adaptive thresholds):

=========================================  ======================================================
tag                                        meaning
=========================================  ======================================================
``train/plasticity/updates/<layer>``       plastic updates in the epoch (one per training sequence)
``train/plasticity/update_abs/<layer>``    mean :math:`|\\Delta w|` per update over the epoch
``train/plasticity/update_relative/<layer>``  mean :math:`\\|\\Delta w\\| / \\|w\\|` per update
``train/plasticity/weight_mean/<layer>``   mean weight at the end of the epoch
``train/plasticity/theta_mean/<layer>``    mean adaptive threshold of a competitive layer
``plasticity/receptive_fields/<layer>``    image: each postsynaptic neuron's incoming weights on a
                                           grid (dense connections fed by an image, and kernels)
``plasticity/weights/<layer>``             histogram of the weights
``plasticity/theta/<layer>``               histogram of the adaptive thresholds
=========================================  ======================================================

Scalars go through ``LightningModule.log`` (every logger) each epoch; images and histograms go to
TensorBoard at epochs ``0, N, 2N, ...`` and the last one. With ``png_dir`` the receptive fields of
the last epoch are also saved as ``<png_dir>/receptive_fields_<layer>.png``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

from spikeexp.callbacks.plots import batches_done
from spikeexp.callbacks.tensorboard import tensorboard_writers
from spikeexp.module import CompetitiveLIF, PlasticConnection, PlasticLinear
from spikeexp.viz import field_grid, field_images, receptive_field_figure


def _fields_shape(connection: PlasticConnection) -> tuple[int, ...] | None:
    """The image shape of a connection's receptive fields, ``None`` if they are no images."""
    if isinstance(connection, PlasticLinear):
        return connection.input_shape
    return tuple(connection.weight.shape[1:])


class PlasticityMonitor(Callback):
    """Log the learning of plastic connections (module docstring).

    Args:
        every_n_epochs: period of images and histograms (epochs, >= 1); the last epoch always.
        max_fields: at most this many neurons' receptive fields per image.
        png_dir: folder for PNG files of the last epoch's receptive fields, or ``None``.
    """

    def __init__(
        self, every_n_epochs: int = 1, max_fields: int = 400, png_dir: str | None = None
    ) -> None:
        super().__init__()
        for key, value in (("every_n_epochs", every_n_epochs), ("max_fields", max_fields)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"callbacks.plasticity.{key} must be an integer >= 1 (got {value!r})"
                )
        self.every_n_epochs = every_n_epochs
        self.max_fields = max_fields
        self.png_dir = None if png_dir is None else Path(png_dir)

    @staticmethod
    def _layers(pl_module: LightningModule) -> tuple[dict, dict]:
        network = pl_module.network
        plastic = network.plastic_connections() if hasattr(network, "plastic_connections") else {}
        competitive = {
            name: module
            for name, module in network.named_modules()
            if isinstance(module, CompetitiveLIF)
        }
        return plastic, {name.rsplit(".", 1)[-1]: m for name, m in competitive.items()}

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        plastic, competitive = self._layers(pl_module)
        for name, connection in plastic.items():
            stats = connection.pop_update_stats()
            values = {
                "updates": stats["updates"],
                "update_abs": stats.get("mean_abs"),
                "update_relative": stats.get("relative"),
                "weight_mean": float(connection.weight.detach().mean()),
            }
            for key, value in values.items():
                if value is not None:
                    pl_module.log(f"train/plasticity/{key}/{name}", value, on_epoch=True)
        for name, layer in competitive.items():
            pl_module.log(
                f"train/plasticity/theta_mean/{name}", float(layer.theta.mean()), on_epoch=True
            )
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch == trainer.max_epochs - 1
        if last or epoch % self.every_n_epochs == 0:
            self._write_images(trainer, plastic, competitive)
        if last and self.png_dir is not None:
            self._save_png(plastic)

    def _write_images(self, trainer: Trainer, plastic: dict, competitive: dict) -> None:
        step = batches_done(trainer)
        for writer in tensorboard_writers(trainer):
            for name, connection in plastic.items():
                weights = connection.weight.detach().cpu()
                writer.add_histogram(f"plasticity/weights/{name}", weights, step)
                shape = _fields_shape(connection)
                if shape is None:
                    continue
                images = field_images(weights[: self.max_fields], shape)
                grid = torch.as_tensor(field_grid(images), dtype=torch.float32)
                dataformats = "HWC" if grid.dim() == 3 else "HW"
                writer.add_image(
                    f"plasticity/receptive_fields/{name}", grid, step, dataformats=dataformats
                )
            for name, layer in competitive.items():
                writer.add_histogram(f"plasticity/theta/{name}", layer.theta.detach().cpu(), step)

    def _save_png(self, plastic: dict) -> None:
        self.png_dir.mkdir(parents=True, exist_ok=True)
        for name, connection in plastic.items():
            shape = _fields_shape(connection)
            if shape is None:
                continue
            weights = connection.weight.detach().cpu()[: self.max_fields]
            figure = receptive_field_figure(weights, shape, title=f"{name}: receptive fields")
            figure.savefig(self.png_dir / f"receptive_fields_{name}.png")
