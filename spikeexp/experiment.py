"""From a composed config to the objects of a run: validate, instantiate, check shapes.

Shared by ``spikeexp-train`` and ``spikeexp-eval``::

    config = compose(...)               # or the DictConfig given by @hydra.main
    run = build_experiment(config)      # validates every group first (one-line ConfigError)
    trainer = build_trainer(config)
    trainer.fit(run.module, datamodule=run.datamodule)

Everything is validated before the first object is built (:func:`validate_config`), and the
network is built by propagating the encoder's output shape through every layer, so a mismatch is
reported before training, naming the layer.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import hydra
import torch
from hydra.errors import InstantiationException
from lightning.pytorch import Callback, LightningDataModule, Trainer
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf

from spikeexp.checkpoint import SafeCheckpointIO
from spikeexp.decode import Decoder
from spikeexp.lightning import LayerRegularization, Regularization, SpikingModule
from spikeexp.module import BACKENDS
from spikeexp.network import TOPOLOGIES, build_network
from spikeexp.parallel import SyncEpochMetrics
from spikeexp.reliability import reliability_callbacks
from spikeexp.schema import (
    ConfigError,
    check_keys,
    check_type,
    validate_dataclass,
    validate_neuron,
    validate_target,
)
from spikeexp.tasks.base import Task

SCHEDULER_KEYS = ["scheduler", "interval", "frequency", "monitor"]


@dataclass
class Experiment:
    """The objects of one run."""

    module: SpikingModule
    datamodule: LightningDataModule


def plain(config: DictConfig | Mapping[str, Any]) -> dict[str, Any]:
    """``config`` resolved into plain dicts and lists (no OmegaConf objects)."""
    if isinstance(config, DictConfig):
        return OmegaConf.to_container(config, resolve=True, throw_on_missing=True)
    return dict(config)


def _entries(section: str, node: Any) -> dict[str, Any]:
    """A mapping of named ``_target_`` nodes (loggers, callbacks); null means none."""
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"{section} must be a mapping of named entries (got {node!r})")
    return {name: entry for name, entry in node.items() if entry is not None}


def _check_top_level(config: Mapping[str, Any]) -> None:
    check_type("dt", config["dt"], float)
    if config["dt"] <= 0:
        raise ConfigError(f"dt must be > 0 seconds (got {config['dt']})")
    check_type("seq_length", config["seq_length"], int)
    if config["seq_length"] < 1:
        raise ConfigError(f"seq_length must be >= 1 (got {config['seq_length']})")
    check_type("seed", config["seed"], int)
    check_type("keep_freed_memory", config.get("keep_freed_memory", False), bool)
    check_type("optimized_metric", config["optimized_metric"], str)
    if config["optimized_mode"] not in ("max", "min"):
        raise ConfigError(
            f"optimized_mode must be one of max, min (got {config['optimized_mode']!r})"
        )
    tbptt = config.get("tbptt_steps")
    check_type("tbptt_steps", tbptt, int | None)
    if tbptt is not None and tbptt < 1:
        raise ConfigError(f"tbptt_steps must be null or >= 1 (got {tbptt})")
    recompute = config.get("checkpoint_steps")
    check_type("checkpoint_steps", recompute, int | None)
    if recompute is not None and recompute < 1:
        raise ConfigError(f"checkpoint_steps must be null or >= 1 (got {recompute})")
    if recompute is not None and tbptt is not None:
        raise ConfigError(
            f"checkpoint_steps must be null when tbptt_steps is set (got {recompute} and {tbptt})"
        )


def validate_config(config: Mapping[str, Any]) -> None:
    """Check every group of a resolved training config; raise :class:`ConfigError` on the first
    problem. Values inside the objects (e.g. ``data.batch_size >= 1``) are checked again by their
    constructors."""
    _check_top_level(config)
    validate_neuron("neuron", config["neuron"])
    unroll = config.get("unroll") or {}
    check_keys("unroll", unroll, ["backend"])
    if unroll.get("backend", "auto") not in BACKENDS:
        raise ConfigError(
            f"unroll.backend must be one of {', '.join(BACKENDS)} (got {unroll['backend']!r})"
        )
    validate_target("encoder", config["encoder"])
    topology = config["topology"]
    if topology.get("type") not in TOPOLOGIES:
        raise ConfigError(
            f"topology.type must be one of {', '.join(TOPOLOGIES)} (got {topology.get('type')!r})"
        )
    validate_dataclass("topology", topology, TOPOLOGIES[topology["type"]][0])
    decoder = config["decoder"]
    validate_target("decoder", decoder, reserved=("readout",))
    if not isinstance(decoder.get("readout"), Mapping):
        raise ConfigError("decoder.readout must be a neuron config (e.g. the one of neuron=li)")
    validate_target("optimizer", config["optimizer"], skip=("params",))
    scheduler = config["scheduler"] or {}
    check_keys("scheduler", scheduler, SCHEDULER_KEYS)
    if scheduler.get("scheduler") is not None:
        validate_target("scheduler.scheduler", scheduler["scheduler"], skip=("optimizer",))
    validate_target("task", config["task"], skip=("datamodule", "decoder"))
    validate_target("data", config["data"])
    validate_target("trainer", config["trainer"], skip=("callbacks", "logger"))
    for group in ("logger", "callbacks"):
        for name, entry in _entries(group, config.get(group)).items():
            validate_target(f"{group}.{name}", entry)
    regularization = validate_dataclass("regularization", config["regularization"], Regularization)
    for layer, override in regularization.layers.items():
        validate_dataclass(f"regularization.layers.{layer}", override, LayerRegularization)


def instantiate(section: str, node: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` whose ``ValueError``s become one-line :class:`ConfigError`s."""
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__
        if isinstance(cause, ValueError):
            message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
            prefix = "" if message.startswith(section) else f"{section}: "
            raise ConfigError(f"{prefix}{message}") from None
        raise


def _task(config: DictConfig, datamodule: LightningDataModule, decoder: Decoder) -> Task:
    target = validate_target("task", plain(config.task), skip=("datamodule", "decoder"))
    kwargs: dict[str, Any] = {"datamodule": datamodule}
    if "decoder" in inspect.signature(target).parameters:
        kwargs["decoder"] = decoder
    return instantiate("task", config.task, **kwargs)


def build_experiment(config: DictConfig) -> Experiment:
    """Validate ``config`` and build data, encoder, network, task and the Lightning module."""
    resolved = plain(config)
    validate_config(resolved)
    datamodule = instantiate("data", config.data)
    decoder_node = OmegaConf.masked_copy(
        config.decoder, [k for k in config.decoder if k != "readout"]
    )
    decoder = instantiate("decoder", decoder_node)
    task = _task(config, datamodule, decoder)
    encoder = instantiate("encoder", config.encoder)
    try:
        encoded_shape = tuple(encoder.output_shape(task.input_shape))
    except ValueError as error:
        raise ConfigError(
            f"encoder {type(encoder).__name__} does not fit the task input shape "
            f"{task.input_shape}: {error}"
        ) from None
    network = build_network(
        resolved["topology"],
        resolved["neuron"],
        resolved["decoder"]["readout"],
        encoded_shape,
        task.num_outputs,
        readout_spiking=task.readout_spiking,
        backend=(resolved.get("unroll") or {}).get("backend", "auto"),
    )
    regularization = validate_dataclass(
        "regularization", resolved["regularization"], Regularization
    )
    for layer in regularization.layers:
        if layer not in network.spiking_layers:
            raise ConfigError(
                f"regularization.layers: no spiking layer named {layer!r}; "
                f"valid: {', '.join(network.spiking_layers)}"
            )
    scheduler = None
    if (resolved["scheduler"] or {}).get("scheduler") is not None:
        scheduler = {
            **resolved["scheduler"],
            "scheduler": instantiate("scheduler", config.scheduler.scheduler),
        }
    module = SpikingModule(
        encoder=encoder,
        network=network,
        task=task,
        optimizer=instantiate("optimizer", config.optimizer),
        scheduler=scheduler,
        dt=resolved["dt"],
        regularization=regularization,
        tbptt_steps=resolved.get("tbptt_steps"),
        checkpoint_steps=resolved.get("checkpoint_steps"),
        config=resolved,
    )
    return Experiment(module=module, datamodule=datamodule)


def build_trainer(config: DictConfig, **overrides: Any) -> Trainer:
    """The Lightning ``Trainer`` of ``config`` with its loggers and callbacks."""
    # First, so that every rank syncs the epoch's metrics before the rank-0 progress bar reads
    # them (spikeexp.parallel.SyncEpochMetrics: avoids a DDP deadlock).
    callbacks: list[Callback] = [SyncEpochMetrics()] + [
        instantiate(f"callbacks.{name}", node)
        for name, node in _entries("callbacks", config.get("callbacks")).items()
    ]
    loggers: list[Logger] = [
        instantiate(f"logger.{name}", node)
        for name, node in _entries("logger", config.get("logger")).items()
    ]
    # Always on (spikeexp.reliability, spikeexp.checkpoint): NaN/inf guard, last.ckpt every N steps
    # and on SIGTERM, atomic checkpoint writes and weights_only loads.
    callbacks += reliability_callbacks(config.get("last_checkpoint_every_n_steps"))
    kwargs: dict[str, Any] = {
        "callbacks": callbacks,
        "logger": loggers or False,
        "plugins": [SafeCheckpointIO()],
        **overrides,
    }
    return instantiate("trainer", config.trainer, **kwargs)


def build_test_trainer(
    config: DictConfig, fitted: Trainer | None = None, **overrides: Any
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
    return build_trainer(config, **one_device, **overrides)
