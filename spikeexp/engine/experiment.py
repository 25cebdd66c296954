"""From a config to the objects of a run: validate once, instantiate, check shapes.

Shared by ``spikeexp-train``, ``spikeexp-eval`` and Python code that never touches Hydra::

    experiment = build_experiment(config)   # a plain mapping or an OmegaConf DictConfig
    trainer = build_trainer(experiment.spec)
    trainer.fit(experiment.module, datamodule=experiment.datamodule)

The config is validated once before the first object is built
(:func:`spikeexp.engine.validate.validate_config`, which also checks that task, encoder, topology
and decoder fit together); the network is then built by propagating the encoder's output shape
through every layer, so a mismatch is reported before training, naming the layer.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from spikeexp.callbacks.backends import BackendReport
from spikeexp.callbacks.reliability import reliability_callbacks
from spikeexp.callbacks.sync import SyncEpochMetrics
from spikeexp.engine.origins import Origins
from spikeexp.engine.schema import ConfigError, locate, validate_neuron, validate_plasticity
from spikeexp.engine.spiking_module import SpikingModule
from spikeexp.engine.topology import build_network
from spikeexp.engine.validate import (
    RunSpec,
    entries,
    layer_neurons,
    layer_plasticity,
    validate_config,
    validate_topology,
)
from spikeexp.module.decode import Decoder
from spikeexp.module.network import SpikingNetwork
from spikeexp.runtime.checkpoint import SafeCheckpointIO
from spikeexp.runtime.targets import instantiate
from spikeexp.tasks.base import Task


@dataclass
class Experiment:
    """The objects of one run and the validated config they were built from."""

    module: SpikingModule
    datamodule: LightningDataModule
    spec: RunSpec


def plain(config: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """``config`` resolved into plain dicts and lists (no OmegaConf objects).

    A value that cannot be resolved (an interpolation of a missing key, a missing mandatory
    value) is a one-line :class:`ConfigError` naming the key where it was written
    (``trainer.max_epochs: Interpolation key 'nope' not found`` for ``trainer.max_epochs=${nope}``,
    though ``scheduler.scheduler.T_max`` interpolating it is resolved first).
    """
    if not isinstance(config, DictConfig):
        return dict(config)
    try:
        return OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    except OmegaConfBaseException as error:
        raw = OmegaConf.to_container(config, resolve=False)
        found = str(error.full_key or "")
        key = Origins.of_config(raw).written_at(found, raw) if found else ""
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConfigError(f"{key}: {first}" if key else first) from error


def network_from_config(
    topology: Mapping[str, Any],
    neuron: Mapping[str, Any],
    readout: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_outputs: int,
    backend: str = "auto",
    plasticity: Mapping[str, Any] | None = None,
) -> SpikingNetwork:
    """A network from plain config sections, validated as a run's (``topology``, the global
    ``neuron``, ``decoder.readout``, the global ``plasticity``, default none), for use outside a
    whole experiment.

    ``input_shape`` is the per-sample shape of the network's input (the encoder's output).
    """
    spec = validate_topology(topology)
    global_neuron = validate_neuron("neuron", neuron)
    neurons = layer_neurons(spec, neuron, global_neuron)
    readout_spec = validate_neuron("decoder.readout", readout)
    plasticity = {"rule": "none"} if plasticity is None else plasticity
    layers = layer_plasticity(spec, plasticity, validate_plasticity("plasticity", plasticity))
    return build_network(
        spec,
        neurons,
        readout_spec,
        input_shape,
        num_outputs,
        backend,
        plasticity=layers,
        dt=global_neuron["dt"],
    )


def _task(node: Mapping[str, Any], datamodule: LightningDataModule, decoder: Decoder) -> Task:
    kwargs: dict[str, Any] = {"datamodule": datamodule}
    if "decoder" in inspect.signature(locate("task", node["_target_"])).parameters:
        kwargs["decoder"] = decoder
    return instantiate("task", node, **kwargs)


def build_experiment(config: RunSpec | DictConfig | Mapping[str, Any]) -> Experiment:
    """Validate ``config`` (unless it is a :class:`RunSpec` already) and build data, encoder,
    network, task and the Lightning module. Errors about interpolated values of a
    ``DictConfig`` name the keys the values were written as."""
    if isinstance(config, RunSpec):
        spec = config
    else:
        spec = validate_config(plain(config), origins=Origins.of_config(config))
    config = spec.config
    datamodule = instantiate("data", config["data"])
    decoder_node = {key: value for key, value in config["decoder"].items() if key != "readout"}
    decoder = instantiate("decoder", decoder_node)
    task = _task(config["task"], datamodule, decoder)
    encoder = instantiate("encoder", config["encoder"])
    if not task.has_loss and not spec.gradient_free:
        raise ConfigError(
            f"optimizer must be none for task {type(task).__name__}: it has no loss "
            "(the network learns by plasticity only); use optimizer=none"
        )
    network = build_network(
        spec.topology,
        spec.neurons,
        spec.readout,
        spec.composition.encoded_shape,
        task.num_outputs,
        backend=spec.backend,
        plasticity=spec.plasticity,
        dt=config["dt"],
    )
    scheduler = None
    if (config["scheduler"] or {}).get("scheduler") is not None:
        scheduler = {
            **config["scheduler"],
            "scheduler": instantiate("scheduler.scheduler", config["scheduler"]["scheduler"]),
        }
    module = SpikingModule(
        encoder=encoder,
        network=network,
        task=task,
        optimizer=None if spec.gradient_free else instantiate("optimizer", config["optimizer"]),
        scheduler=scheduler,
        dt=config["dt"],
        regularization=spec.regularization,
        tbptt_steps=config["tbptt_steps"],
        recompute_steps=config["recompute_steps"],
        config=config,
    )
    return Experiment(module=module, datamodule=datamodule, spec=spec)


def build_trainer(spec: RunSpec, **overrides: Any) -> Trainer:
    """The Lightning ``Trainer`` of a validated config with its loggers and callbacks;
    ``overrides`` are further ``Trainer`` arguments."""
    config = spec.config
    # First, so that every rank syncs the epoch's metrics before the rank-0 progress bar reads
    # them (spikeexp.callbacks.sync.SyncEpochMetrics: avoids a DDP deadlock).
    callbacks: list[Callback] = [SyncEpochMetrics()] + [
        instantiate(f"callbacks.{name}", node)
        for name, node in entries("callbacks", config["callbacks"]).items()
    ]
    loggers: list[Logger] = [
        instantiate(f"logger.{name}", node)
        for name, node in entries("logger", config["logger"]).items()
    ]
    # Always on (spikeexp.callbacks.reliability, spikeexp.runtime.checkpoint): NaN/inf guard,
    # last.ckpt every N steps and on SIGTERM, atomic checkpoint writes and weights_only loads.
    callbacks += reliability_callbacks(config["last_checkpoint_every_n_steps"])
    callbacks.append(BackendReport())  # logs each layer's time-loop backend once
    kwargs: dict[str, Any] = {
        "callbacks": callbacks,
        "logger": loggers or False,
        "plugins": [SafeCheckpointIO()],
        **overrides,
    }
    return instantiate("trainer", config["trainer"], **kwargs)


def build_test_trainer(
    spec: RunSpec, fitted: Trainer | None = None, **overrides: Any
) -> Trainer | None:
    """The trainer that tests: one process on one device; ``None`` on the other DDP ranks.

    A multi-process test splits the test set with a ``DistributedSampler``, which pads it so that
    every rank gets as many samples as the others: some samples would be counted twice. The test
    therefore runs in one process on one device, as Lightning recommends, and each sample counts
    once. After a multi-process ``fitted`` trainer, the ranks started by ``popen``, torchrun or
    SLURM leave their process group first (no collective call can wait for a missing rank), and
    the test reuses ``fitted``'s loggers, so the test metrics join the run's TensorBoard events.
    A one-process ``fitted`` trainer is returned as it is. ``overrides`` are further ``Trainer``
    arguments.
    """
    if fitted is not None and fitted.world_size == 1:
        return fitted
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if fitted is not None and not fitted.is_global_zero:
        return None
    one_device: dict[str, Any] = {"devices": 1, "num_nodes": 1, "strategy": "auto"}
    if fitted is not None:
        one_device["logger"] = fitted.loggers or False
    return build_trainer(spec, **one_device, **overrides)
