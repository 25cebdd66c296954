"""Build objects from ``_target_`` nodes of a plain config, without Hydra; the config error.

A node is a mapping whose ``_target_`` names a class or function by its import path; the other
keys are its keyword arguments. The same keys as Hydra's ``instantiate`` are understood, so the
YAML of ``conf/`` reads the same whether Hydra or the engine builds it:

* ``_target_``: ``package.module.Name`` (imported with :func:`importlib.import_module`);
* ``_partial_: true``: return ``functools.partial(target, **kwargs)`` (an optimiser factory that
  gets its ``params`` later);
* ``_args_``: positional arguments (a list);
* ``_recursive_: false``: keep nested ``_target_`` nodes as plain mappings (default: build them
  first, depth first);
* ``_convert_``: accepted and ignored (arguments are plain containers already).

:class:`ConfigError` is the error of a bad config value everywhere (a one-line message naming the
key, the bad value and what is valid). A ``ValueError`` raised by the target becomes a one-line
:class:`ConfigError` prefixed with the config section (``data: batch_size
must be >= 1 (got 0)``).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Mapping
from typing import Any

SPECIAL_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")


class ConfigError(ValueError):
    """A config value is unknown, mistyped or invalid; the message is one line."""


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def locate(section: str, target: Any) -> Callable[..., Any]:
    """Import the object named by ``_target_`` (``package.module.Name``) of config ``section``."""
    if not isinstance(target, str) or "." not in target:
        raise ConfigError(f"{section}._target_ must be a dotted import path (got {_show(target)})")
    module_name, _, attribute = target.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"{section}._target_: cannot import {module_name} ({error})") from None
    if not hasattr(module, attribute):
        raise ConfigError(f"{section}._target_: {module_name} has no {attribute!r}")
    return getattr(module, attribute)


def _build_nested(section: str, value: Any) -> Any:
    if isinstance(value, Mapping) and "_target_" in value:
        return instantiate(section, value)
    if isinstance(value, Mapping):
        return {key: _build_nested(f"{section}.{key}", item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_build_nested(f"{section}[{index}]", item) for index, item in enumerate(value)]
    return value


def instantiate(section: str, node: Mapping[str, Any], **kwargs: Any) -> Any:
    """Build the object described by ``node`` (config section ``section``, for messages);
    ``kwargs`` are added to (and override) the node's keyword arguments."""
    if not isinstance(node, Mapping) or "_target_" not in node:
        raise ConfigError(f"{section} must be a mapping with a _target_ (got {node!r})")
    target = locate(section, node["_target_"])
    recursive = node.get("_recursive_", True)
    arguments = {key: value for key, value in node.items() if key not in SPECIAL_KEYS}
    positional = list(node.get("_args_", []))
    if recursive:
        arguments = {key: _build_nested(f"{section}.{key}", v) for key, v in arguments.items()}
        positional = _build_nested(f"{section}._args_", positional)
    arguments.update(kwargs)
    if node.get("_partial_", False):
        return functools.partial(target, *positional, **arguments)
    try:
        return target(*positional, **arguments)
    except ValueError as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        prefix = "" if message.startswith(section) else f"{section}: "
        raise ConfigError(f"{prefix}{message}") from None
