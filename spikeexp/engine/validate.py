"""One validation pass over a run config, before anything is built.

:func:`validate_config` checks every section of a resolved training config once and returns a
:class:`RunSpec`: the config with the defaults of optional sections filled in, plus the parts the
builders need in checked, typed form (the topology schema, each spiking layer's neuron, the
readout, the regularisation, what the task needs and the network's input shape). The builders
(:mod:`spikeexp.engine.topology`, :mod:`spikeexp.engine.experiment`) take those and check nothing
again. Every problem is a one-line :class:`~spikeexp.engine.schema.ConfigError` naming the key,
the bad value and what is valid. The library's modules keep checking their own constructor
arguments, as any PyTorch module does, for code that builds them directly.

The pass ends with the compatibility of task, encoder, topology and decoder
(:mod:`spikeexp.engine.compatibility`): it constructs the data module (which reads no data) and
the encoder to ask them, and refuses a composition that cannot work, naming the groups and a
working alternative. Given the interpolation links of the unresolved config
(:class:`~spikeexp.engine.origins.Origins`), an error about a value that reached its key by
interpolation names the key the value was written as (``trainer.max_epochs``, not
``scheduler.scheduler.T_max``).

What a plain config needs (a mapping, e.g. ``OmegaConf.to_container`` of a composed config or a
dict written by hand, see ``examples/engine_from_dict.py``): the sections of
:data:`REQUIRED_KEYS`; the others take the values of :data:`DEFAULTS`. A top-level key outside
both is an error (a typo, or an override such as ``+nope=1`` that nothing would read).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spikeexp.engine.compatibility import Composition, check_composition
from spikeexp.engine.origins import Origins
from spikeexp.engine.schema import (
    ConfigError,
    check_keys,
    check_type,
    merge_neuron,
    merge_plasticity,
    resolve_model,
    validate_dataclass,
    validate_neuron,
    validate_plasticity,
    validate_target,
)
from spikeexp.engine.spiking_module import LayerRegularization, Regularization
from spikeexp.engine.topology import LAYER_KEYS, TOPOLOGIES, TopologySpec
from spikeexp.module import BACKENDS

REQUIRED_KEYS = (
    "dt",
    "seq_length",
    "neuron",
    "encoder",
    "topology",
    "decoder",
    "optimizer",
    "task",
    "data",
    "trainer",
)
"""Sections every run config has."""

DEFAULTS: dict[str, Any] = {
    "task_name": "train",
    "seed": 0,
    "optimized_metric": "val/acc",
    "optimized_mode": "max",
    "test": True,
    "test_checkpoint": "best",
    "label_smoothing": 0.0,
    "tbptt_steps": None,
    "recompute_steps": None,
    "last_checkpoint_every_n_steps": None,
    "regularization": {},
    "torch_threads": None,
    "matmul_precision": "highest",
    "keep_freed_memory": False,
    "unroll": {"backend": "auto"},
    "scheduler": None,
    "logger": None,
    "callbacks": None,
    "paths": {},
    "resume": None,
    "optuna_trial": None,
    "plasticity": {"rule": "none"},
}
"""Optional top-level keys and their values when a config leaves them out."""

SCHEDULER_KEYS = ("scheduler", "interval", "frequency", "monitor")
MATMUL_PRECISIONS = ("highest", "high", "medium")
"""Values of ``matmul_precision`` (``torch.set_float32_matmul_precision``)."""
MAX_SEED = 2**32 - 1
"""The largest seed NumPy (and so ``seed_everything``) accepts."""


@dataclass(frozen=True)
class RunSpec:
    """A validated run config and its checked parts.

    Attributes:
        config: the plain config, every optional key filled in (saved in checkpoints).
        topology: the ``topology`` section as its schema dataclass.
        neurons: constructor arguments of the neuron module of every spiking layer.
        readout: constructor arguments of the readout layer (``decoder.readout``).
        regularization: the rate regularisers.
        backend: the time-loop backend (``unroll.backend``).
        plasticity: constructor arguments of the plasticity of every plastic layer (``None``:
            none), see :mod:`spikeexp.engine.topology`.
        composition: what the task needs and the network's per-step input shape.
    """

    config: dict[str, Any]
    topology: TopologySpec
    neurons: dict[str, dict[str, Any]]
    readout: dict[str, Any]
    regularization: Regularization
    backend: str
    plasticity: dict[str, dict[str, Any] | None]
    composition: Composition

    @property
    def gradient_free(self) -> bool:
        """No optimiser: the run learns by its plastic connections only (``optimizer=none``)."""
        return no_optimizer(self.config["optimizer"])


def no_optimizer(node: Any) -> bool:
    """Whether the ``optimizer`` section asks for none (``null`` or ``_target_: null``)."""
    return node is None or (isinstance(node, Mapping) and node.get("_target_", "") is None)


def entries(section: str, node: Any) -> dict[str, Any]:
    """A mapping of named ``_target_`` nodes (loggers, callbacks); null means none."""
    if node is None:
        return {}
    if not isinstance(node, Mapping):
        raise ConfigError(f"{section} must be a mapping of named entries (got {node!r})")
    return {name: entry for name, entry in node.items() if entry is not None}


def _positive_or_null(key: str, value: Any) -> None:
    check_type(key, value, int | None)
    if value is not None and value < 1:
        raise ConfigError(f"{key} must be null or >= 1 (got {value})")


def _check_top_level(config: Mapping[str, Any]) -> None:
    missing = [key for key in REQUIRED_KEYS if key not in config]
    if missing:
        raise ConfigError(f"the config has no {missing[0]}; required: {', '.join(REQUIRED_KEYS)}")
    check_keys("the config", config, [*REQUIRED_KEYS, *DEFAULTS], "top-level key")
    check_type("dt", config["dt"], float)
    if not (math.isfinite(config["dt"]) and config["dt"] > 0):
        raise ConfigError(f"dt must be > 0 seconds (got {config['dt']})")
    check_type("seq_length", config["seq_length"], int)
    if config["seq_length"] < 1:
        raise ConfigError(f"seq_length must be >= 1 (got {config['seq_length']})")
    check_type("seed", config["seed"], int)
    if not 0 <= config["seed"] <= MAX_SEED:
        raise ConfigError(f"seed must be in [0, {MAX_SEED}] (got {config['seed']})")
    check_type("task_name", config["task_name"], str)
    check_type("test", config["test"], bool)
    check_type("label_smoothing", config["label_smoothing"], float)
    if not 0.0 <= config["label_smoothing"] < 1.0:
        raise ConfigError(f"label_smoothing must be in [0, 1) (got {config['label_smoothing']})")
    if config["test_checkpoint"] not in ("best", "last"):
        raise ConfigError(
            f"test_checkpoint must be one of best, last (got {config['test_checkpoint']!r})"
        )
    check_type("keep_freed_memory", config["keep_freed_memory"], bool)
    if config["matmul_precision"] not in MATMUL_PRECISIONS:
        raise ConfigError(
            f"matmul_precision must be one of {', '.join(MATMUL_PRECISIONS)} "
            f"(got {config['matmul_precision']!r})"
        )
    check_type("optimized_metric", config["optimized_metric"], str)
    if config["optimized_mode"] not in ("max", "min"):
        raise ConfigError(
            f"optimized_mode must be one of max, min (got {config['optimized_mode']!r})"
        )
    for key in ("tbptt_steps", "recompute_steps", "last_checkpoint_every_n_steps", "torch_threads"):
        _positive_or_null(key, config[key])
    if config["recompute_steps"] is not None and config["tbptt_steps"] is not None:
        raise ConfigError(
            f"recompute_steps must be null when tbptt_steps is set (got "
            f"{config['recompute_steps']} and {config['tbptt_steps']}); choose one of the two"
        )


def _check_layer_override(name: str, override: Any, spiking: list[str]) -> None:
    if name not in spiking:
        raise ConfigError(
            f"topology.layers: no spiking layer named {name!r}; valid: {', '.join(spiking)}"
        )
    if not isinstance(override, Mapping) or set(override) - LAYER_KEYS:
        raise ConfigError(
            f"topology.layers.{name} must be a mapping with the keys "
            f"{' and/or '.join(sorted(LAYER_KEYS))} (got {override})"
        )
    scale = override.get("input_scale")
    valid = isinstance(scale, int | float) and not isinstance(scale, bool)
    if scale is not None and not (valid and math.isfinite(scale) and scale > 0):
        raise ConfigError(
            f"topology.layers.{name}.input_scale must be a positive number (got {scale!r})"
        )


def validate_topology(node: Mapping[str, Any]) -> TopologySpec:
    """The ``topology`` section as its schema dataclass, every value checked."""
    kind = node.get("type")
    if kind not in TOPOLOGIES:
        raise ConfigError(f"topology.type must be one of {', '.join(TOPOLOGIES)} (got {kind!r})")
    spec = validate_dataclass("topology", node, TOPOLOGIES[kind][0])
    spec.check()
    spiking = spec.spiking_layers()
    for name, override in spec.layers.items():
        _check_layer_override(name, override, spiking)
    return spec


def layer_neurons(
    spec: TopologySpec, neuron: Mapping[str, Any], global_neuron: dict[str, Any]
) -> dict[str, dict[str, Any]]:
    """Constructor arguments of every spiking layer: the validated global ``neuron``, or the
    layer's ``topology.layers.<layer>.neuron`` merged over it (validated once per layer)."""
    neurons = {}
    own = spec.neuron_layers()
    for name, override in spec.layers.items():
        if "neuron" in override and name not in own:
            raise ConfigError(
                f"topology.layers.{name}.neuron: layer {name!r} of topology {spec.type} takes no "
                f"neuron config (its parameters are in the topology section)"
            )
    for name in own:
        override = spec.layers.get(name, {}).get("neuron")
        where = f"in layer {name!r}"
        if override:
            merged = merge_neuron(neuron, override)
            section = f"topology.layers.{name}.neuron"
            neurons[name] = validate_neuron(section, merged, spiking=True, where=where)
        else:
            resolve_model("neuron.model", neuron.get("model"), spiking=True, where=where)
            neurons[name] = global_neuron
    return neurons


def layer_plasticity(
    spec: TopologySpec, plasticity: Mapping[str, Any], global_plasticity: dict[str, Any] | None
) -> dict[str, dict[str, Any] | None]:
    """Constructor arguments of every plastic layer's plasticity: the validated global
    ``plasticity``, or the layer's ``topology.layers.<layer>.plasticity`` merged over it."""
    plastic = spec.plastic_layers()
    for name, override in spec.layers.items():
        if "plasticity" in override and name not in plastic:
            valid = ", ".join(plastic) or "none"
            raise ConfigError(
                f"topology.layers.{name}.plasticity: the input of layer {name!r} cannot be "
                f"plastic in topology {spec.type}; layers that can: {valid}"
            )
    if global_plasticity is not None and not plastic:
        raise ConfigError(
            f"plasticity.rule={global_plasticity['rule']}: topology {spec.type} has no layer whose "
            "input can be plastic; use plasticity=none"
        )
    layers = {}
    for name in plastic:
        override = spec.layers.get(name, {}).get("plasticity")
        if override is None:
            layers[name] = global_plasticity
            continue
        if not isinstance(override, Mapping):
            raise ConfigError(
                f"topology.layers.{name}.plasticity must be a plasticity config (got {override})"
            )
        merged = merge_plasticity(plasticity, override)
        layers[name] = validate_plasticity(f"topology.layers.{name}.plasticity", merged)
    return layers


def _multi_process(trainer: Mapping[str, Any]) -> bool:
    """Whether the trainer section asks for several processes (devices, nodes or DDP)."""
    devices = trainer.get("devices", 1)
    strategy = trainer.get("strategy", "auto")
    name = strategy.get("_target_", "") if isinstance(strategy, Mapping) else str(strategy)
    several = isinstance(devices, int) and devices > 1
    several = several or (isinstance(devices, list) and len(devices) > 1)
    return several or trainer.get("num_nodes", 1) > 1 or "ddp" in name.lower()


def _check_learning(config: Mapping[str, Any], plasticity: Mapping[str, Any]) -> None:
    """Gradient-free runs have no scheduler, no ``grad``-mode connections and one process;
    recomputation would repeat plastic updates."""
    rules = [spec for spec in plasticity.values() if spec is not None]
    if no_optimizer(config["optimizer"]):
        extra = sorted(set(config["optimizer"] or {}) - {"_target_"})
        if extra:
            raise ConfigError(
                f"optimizer: no optimiser (optimizer=none) takes no settings (got {extra[0]}); "
                "choose an optimizer or drop the setting"
            )
        scheduler = config["scheduler"] or {}
        if scheduler.get("scheduler") is not None:
            raise ConfigError("scheduler must be none when optimizer is none (no optimiser)")
        if _multi_process(config["trainer"]):
            raise ConfigError(
                "optimizer=none trains in one process (DDP needs parameters trained by "
                "gradients); use a one-device trainer, e.g. trainer=default"
            )
        for name, spec in plasticity.items():
            if spec is not None and spec.get("mode") == "grad":
                raise ConfigError(
                    f"plasticity of layer {name!r}: mode grad needs an optimizer to apply it "
                    "(optimizer is none); use mode direct"
                )
    if rules and config["recompute_steps"] is not None:
        raise ConfigError(
            f"recompute_steps must be null with plasticity (got {config['recompute_steps']}): "
            "the recomputation would repeat the plastic updates"
        )


def _check_groups(config: Mapping[str, Any]) -> None:
    """The ``_target_`` sections: importable targets, known arguments, plain types."""
    validate_target("encoder", config["encoder"])
    decoder = config["decoder"]
    validate_target("decoder", decoder, reserved=("readout",))
    if not isinstance(decoder.get("readout"), Mapping):
        raise ConfigError("decoder.readout must be a neuron config (e.g. the one of neuron=li)")
    if not no_optimizer(config["optimizer"]):
        validate_target("optimizer", config["optimizer"], skip=("params",))
    scheduler = config["scheduler"] or {}
    check_keys("scheduler", scheduler, list(SCHEDULER_KEYS))
    if scheduler.get("scheduler") is not None:
        validate_target("scheduler.scheduler", scheduler["scheduler"], skip=("optimizer",))
    validate_target("task", config["task"], skip=("datamodule", "decoder", "label_smoothing"))
    validate_target("data", config["data"])
    validate_target("trainer", config["trainer"], skip=("callbacks", "logger"))
    for group in ("logger", "callbacks"):
        for name, entry in entries(group, config[group]).items():
            validate_target(f"{group}.{name}", entry)


def validate_config(
    config: Mapping[str, Any],
    origins: Origins | None = None,
    choices: Mapping[str, str] | None = None,
) -> RunSpec:
    """Check every section of a resolved, plain training config once (see the module docstring);
    raise :class:`ConfigError` on the first problem.

    Args:
        config: the resolved config as plain data.
        origins: the interpolation links of the unresolved config, so that errors name the keys
            values were written as (none: errors name the keys where values were found).
        choices: the option chosen in each config group on the command line (``{"task":
            "memory", ...}``), so that compatibility errors name groups as the user chose them.
    """
    try:
        return _validate(config, choices or {})
    except ConfigError as error:
        explained = (origins or Origins()).explain(error, config)
        if explained is error:
            raise
        raise explained from error


def _validate(config: Mapping[str, Any], choices: Mapping[str, str]) -> RunSpec:
    if not isinstance(config, Mapping):
        raise ConfigError(f"a run config must be a mapping (got {type(config).__name__})")
    filled = {**DEFAULTS, **config}
    _check_top_level(filled)
    global_neuron = validate_neuron("neuron", filled["neuron"])
    unroll = filled["unroll"] or {}
    check_keys("unroll", unroll, ["backend"])
    backend = unroll.get("backend", "auto")
    if backend not in BACKENDS:
        raise ConfigError(f"unroll.backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
    topology = validate_topology(filled["topology"])
    neurons = layer_neurons(topology, filled["neuron"], global_neuron)
    global_plasticity = validate_plasticity("plasticity", filled["plasticity"])
    plasticity = layer_plasticity(topology, filled["plasticity"] or {}, global_plasticity)
    _check_groups(filled)
    _check_learning(filled, plasticity)
    readout = validate_neuron("decoder.readout", filled["decoder"]["readout"])
    regularization = validate_dataclass("regularization", filled["regularization"], Regularization)
    spiking = topology.spiking_layers()
    for layer, override in regularization.layers.items():
        if layer not in spiking:
            raise ConfigError(
                f"regularization.layers: no spiking layer named {layer!r}; "
                f"valid: {', '.join(spiking)}"
            )
        validate_dataclass(f"regularization.layers.{layer}", override, LayerRegularization)
    composition = check_composition(filled, choices)
    return RunSpec(
        filled, topology, neurons, readout, regularization, backend, plasticity, composition
    )
