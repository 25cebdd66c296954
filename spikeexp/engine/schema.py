"""Typed schemas of the config groups, checked before anything is built.

Every check raises :class:`ConfigError`, a :class:`ValueError` with a one-line message naming the
config key, the bad value and what is valid, e.g.
``optimizer.lr must be a number (got 'abc')`` or
``neuron: unknown lif parameter 'tau_mem'; valid: tau_syn_inv, tau_mem_inv, ...``.

Three kinds of schema cover all groups:

* neuron configs (``neuron``, ``decoder.readout``, per-layer overrides): generated from each
  model's parameters NamedTuple in :data:`spikeexp.functional.neurons.MODELS`, so a new model needs
  no schema code (:func:`validate_neuron`);
* plasticity configs (``plasticity``, per-layer overrides): generated from each rule's parameters
  NamedTuple in :data:`spikeexp.functional.plasticity.RULES`, plus the options of the plastic
  connection (:func:`validate_plasticity`);
* ``_target_`` configs (encoder, decoder, optimizer, scheduler, task, data, trainer, loggers,
  callbacks): the keyword arguments of the target's signature (:func:`validate_target`);
* plain sections (topology, regularisation): dataclasses here (:func:`validate_dataclass`).
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, Union

import torch

from spikeexp.functional.neurons import MODELS
from spikeexp.functional.neurons.base import NeuronModel
from spikeexp.functional.plasticity import RULES
from spikeexp.runtime.targets import ConfigError, locate

NEURON_KEYS = ("model", "dt", "learnable")


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


# --------------------------------------------------------------------------- types


def _type_name(annotation: Any) -> str:
    names = {
        float: "a number",
        torch.Tensor: "a number",
        int: "an integer",
        bool: "true or false",
        str: "a string",
    }
    if annotation in names:
        return names[annotation]
    origin = typing.get_origin(annotation)
    if origin in (list, tuple):
        return "a list"
    if origin in (dict, Mapping):
        return "a mapping"
    if origin in (Union, types.UnionType):
        names = dict.fromkeys(_type_name(arg) for arg in typing.get_args(annotation))
        return " or ".join(names)
    if annotation is type(None):
        return "null"
    return getattr(annotation, "__name__", str(annotation))


def conforms(value: Any, annotation: Any) -> bool:
    """Whether a YAML value fits a type annotation.

    Only plain types are enforced (numbers, integers, booleans, strings, lists, mappings, unions
    of these). Anything else (classes such as ``Accelerator``) accepts every value, as Hydra may
    instantiate it from a nested ``_target_`` node. ``torch.Tensor`` counts as a number.
    """
    if annotation in (Any, inspect.Parameter.empty, object):
        return True
    if annotation is type(None):
        return value is None
    if annotation in (float, torch.Tensor):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        return any(conforms(value, arg) for arg in typing.get_args(annotation))
    if origin in (list, tuple, typing.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return not args or all(conforms(item, args[0]) for item in value)
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return isinstance(value, Mapping)
    if annotation in (list, tuple):
        return isinstance(value, (list, tuple))
    return True


def check_type(key: str, value: Any, annotation: Any) -> None:
    """Raise :class:`ConfigError` unless ``value`` fits ``annotation``."""
    if not conforms(value, annotation):
        raise ConfigError(f"{key} must be {_type_name(annotation)} (got {_show(value)})")


def check_keys(section: str, given: Mapping[str, Any], valid: list[str], what: str = "key") -> None:
    """Raise :class:`ConfigError` on the first key of ``given`` not in ``valid``."""
    for key in given:
        if key not in valid:
            raise ConfigError(f"{section}: unknown {what} {key!r}; valid: {', '.join(valid)}")


# --------------------------------------------------------------------------- dataclasses


def validate_dataclass(section: str, node: Mapping[str, Any], schema: type) -> Any:
    """Check ``node`` against a dataclass ``schema`` and return the filled-in instance."""
    hints = typing.get_type_hints(schema)
    fields = [f.name for f in dataclasses.fields(schema)]
    check_keys(section, node, fields)
    for key, value in node.items():
        check_type(f"{section}.{key}", value, hints[key])
    return schema(**node)


# --------------------------------------------------------------------------- neurons


def neuron_schema(model: NeuronModel) -> dict[str, Any]:
    """The parameter names of ``model`` with their defaults (the generated schema)."""
    return dict(model.parameters._field_defaults)


def _field_annotation(default: Any) -> Any:
    if isinstance(default, str):
        return str
    if isinstance(default, bool):
        return bool
    if default is None:  # optional parameter, e.g. Izhikevich a-d taken from a preset
        return float | list[float] | None
    return float | list[float]


def resolve_model(key: str, name: Any, spiking: bool | None = None, where: str = "") -> NeuronModel:
    """The neuron model called ``name``; ``spiking`` demands a spiking/non-spiking one."""
    if name not in MODELS:
        raise ConfigError(f"{key} must be one of {', '.join(MODELS)} (got {_show(name)})")
    model = MODELS[name]
    if spiking is not None and model.spiking != spiking:
        valid = [n for n, m in MODELS.items() if m.spiking == spiking]
        kind = "spiking" if model.spiking else "non-spiking"
        raise ConfigError(
            f"{key}={name} is a {kind} model and cannot be used {where}; valid: {', '.join(valid)}"
        )
    return model


def validate_neuron(
    section: str, node: Mapping[str, Any], spiking: bool | None = None, where: str = ""
) -> dict[str, Any]:
    """Check a neuron config; return the constructor kwargs of its module.

    The result holds ``dt``, ``learnable`` and every parameter given (numbers as floats, lists of
    per-neuron values as tensors). The
    parameter values are checked with the model's own ``validate`` (time constants > 0, stable
    Euler step, ``v_th > v_reset`` ...).
    """
    model = resolve_model(f"{section}.model", node.get("model"), spiking, where)
    defaults = neuron_schema(model)
    valid = [*NEURON_KEYS, *defaults]
    check_keys(section, node, valid, f"{model.name} parameter")
    dt = node.get("dt", 1e-3)
    check_type(f"{section}.dt", dt, float)
    learnable = list(node.get("learnable", []))
    check_type(f"{section}.learnable", learnable, list[str])
    params: dict[str, Any] = {}
    for key, value in node.items():
        if key in NEURON_KEYS:
            continue
        check_type(f"{section}.{key}", value, _field_annotation(defaults[key]))
        if isinstance(value, list):  # per-neuron values, e.g. beta: [0, 0, 1.8, 1.8]
            value = torch.tensor(value, dtype=torch.get_default_dtype())
        params[key] = (
            float(value) if isinstance(value, int) and not isinstance(value, bool) else value
        )
    try:
        model.validate(model.parameters(**{**defaults, **params}), float(dt))
    except ValueError as error:
        raise ConfigError(f"{section}: {error}") from None
    numeric = [name for name, value in defaults.items() if not isinstance(value, str)]
    for name in learnable:
        if name not in numeric:
            raise ConfigError(
                f"{section}.learnable: {name!r} is not a numeric {model.name} parameter; "
                f"valid: {', '.join(numeric)}"
            )
    return {"model": model.name, "dt": float(dt), "learnable": learnable, **params}


def merge_neuron(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A per-layer neuron config: ``override`` on top of the global ``base``.

    If ``override`` switches ``model``, the parameters of ``base`` (another model's) are dropped
    and the new model starts from its defaults; ``dt`` and ``learnable`` are kept.
    """
    if "model" in override and override["model"] != base.get("model"):
        kept = {key: base[key] for key in ("dt",) if key in base}
        return {**kept, **override}
    return {**base, **override}


# --------------------------------------------------------------------------- plasticity

NO_PLASTICITY = "none"
PLASTICITY_KEYS = ("rule", "dt")
CONNECTION_OPTIONS: dict[str, Any] = {
    "mode": str,
    "normalize": float | None,
    "init_range": list[float] | None,
    "carry_state": bool,
}
"""Options of a plastic connection (:class:`spikeexp.module.plastic.PlasticConnection`), valid
next to the parameters of a weight rule."""
MODES = ("direct", "grad")


def _check_connection_options(section: str, node: Mapping[str, Any]) -> None:
    mode = node.get("mode", "direct")
    if mode not in MODES:
        raise ConfigError(f"{section}.mode must be one of {', '.join(MODES)} (got {_show(mode)})")
    normalize = node.get("normalize")
    if normalize is not None and not normalize > 0:
        raise ConfigError(f"{section}.normalize must be null or a number > 0 (got {normalize})")
    init_range = node.get("init_range")
    if init_range is not None and not (len(init_range) == 2 and init_range[0] < init_range[1]):
        raise ConfigError(
            f"{section}.init_range must be null or [low, high] with low < high (got {init_range})"
        )


def validate_plasticity(section: str, node: Any) -> dict[str, Any] | None:
    """Check a plasticity config; ``None`` for ``rule: none`` (or a null node), else the
    constructor kwargs of the plastic layer: ``rule``, ``dt``, the connection options given and
    every rule parameter given. The values are checked with the rule's own ``validate``."""
    if node is None:
        return None
    if not isinstance(node, Mapping):
        raise ConfigError(f"{section} must be a plasticity config (got {_show(node)})")
    name = node.get("rule")
    if name == NO_PLASTICITY:
        check_keys(section, node, list(PLASTICITY_KEYS), "key of rule none")
        return None
    if name not in RULES:
        valid = ", ".join([NO_PLASTICITY, *RULES])
        raise ConfigError(f"{section}.rule must be one of {valid} (got {_show(name)})")
    rule = RULES[name]
    hints = typing.get_type_hints(rule.parameters)
    options = CONNECTION_OPTIONS if rule.kind == "weight" else {}
    check_keys(section, node, [*PLASTICITY_KEYS, *options, *hints], f"{name} key")
    dt = node.get("dt", 1e-3)
    check_type(f"{section}.dt", dt, float)
    for key, annotation in options.items():
        if key in node:
            check_type(f"{section}.{key}", node[key], annotation)
    _check_connection_options(section, node)
    params: dict[str, Any] = {}
    for key, value in node.items():
        if key in hints:
            check_type(f"{section}.{key}", value, hints[key])
            params[key] = float(value) if type(value) is int else value
    try:
        rule.prepare(rule.parameters(**params), float(dt))
    except ValueError as error:
        raise ConfigError(f"{section}: {error}") from None
    given = {key: node[key] for key in options if key in node}
    return {"rule": name, "dt": float(dt), **given, **params}


def merge_plasticity(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A per-layer plasticity config: ``override`` on top of the global ``base``; if ``override``
    switches ``rule``, only ``dt`` of ``base`` is kept."""
    if "rule" in override and override["rule"] != base.get("rule"):
        kept = {key: base[key] for key in ("dt",) if key in base}
        return {**kept, **override}
    return {**base, **override}


# --------------------------------------------------------------------------- _target_ nodes


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The evaluated annotations of ``function``; where some name a type imported only for type
    checkers, the others one by one (the unresolvable ones are left out)."""
    try:
        return typing.get_type_hints(function)
    except Exception:
        pass
    hints = {}
    namespace = {**vars(typing), **getattr(function, "__globals__", {})}
    for name, annotation in inspect.get_annotations(function).items():
        try:
            hints[name] = eval(annotation, namespace) if isinstance(annotation, str) else annotation
        except Exception:  # a name only type checkers see: fall back to the default's type
            continue
    return hints


def _signature(target: Callable[..., Any]) -> tuple[dict[str, inspect.Parameter], dict, bool]:
    function = target.__init__ if inspect.isclass(target) else target
    signature = inspect.signature(function)
    hints = _type_hints(function)
    params = {n: p for n, p in signature.parameters.items() if n not in ("self", "args")}
    open_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    params = {n: p for n, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD}
    return params, hints, open_kwargs


def validate_target(
    section: str, node: Mapping[str, Any], reserved: tuple[str, ...] = (), skip: tuple = ()
) -> Callable[..., Any]:
    """Check a ``_target_`` node: importable target, known keyword arguments, plain types.

    ``reserved`` keys belong to the pipeline, not the target; ``skip`` are arguments the pipeline
    passes itself (e.g. ``params`` of an optimiser). Returns the target.
    """
    target = locate(section, node.get("_target_"))
    params, hints, open_kwargs = _signature(target)
    hydra_keys = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")
    valid = [*hydra_keys, *reserved, *(n for n in params if n not in skip)]
    if not open_kwargs:
        check_keys(section, node, valid)
    for key, value in node.items():
        if key not in params or key in hydra_keys:
            continue
        annotation = hints.get(key, inspect.Parameter.empty)
        default = params[key].default
        if annotation is inspect.Parameter.empty and isinstance(default, (bool, float)):
            annotation = type(default)
        if not (isinstance(value, Mapping) and "_target_" in value):
            check_type(f"{section}.{key}", value, annotation)
    return target
