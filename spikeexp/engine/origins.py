"""Where a config value was written: the key an interpolated value comes from.

A composed config passes values on by interpolation: ``scheduler.scheduler.T_max:
${trainer.max_epochs}``, ``neuron.dt: ${dt}``, ``decoder.readout: ${neuron}`` (a whole section).
Once resolved, a bad value typed as ``trainer.max_epochs=abc`` sits under
``scheduler.scheduler.T_max`` too, and a check may meet it there first. :class:`Origins` maps every
interpolated key back to the key the user wrote, following chains and interpolated sections
(``decoder.readout.dt`` -> ``neuron.dt`` -> ``dt``), and :meth:`Origins.explain` rewrites a
:class:`~spikeexp.engine.schema.ConfigError` of the validation pass so that it names that key::

    scheduler.scheduler.T_max must be an integer (got 'abc')
    # becomes
    trainer.max_epochs must be an integer (got 'abc');
    scheduler.scheduler.T_max = ${trainer.max_epochs}

The map is read from the unresolved OmegaConf config (:meth:`Origins.of_config`); the validation
pass itself only sees plain data. Interpolations understood: ``${key}``, relative ``${.key}`` /
``${..key}`` and ``${oc.select:key,default}``; resolvers (``${now:...}``, ``${hydra:...}``) and
strings that merely contain an interpolation have no single origin and are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from spikeexp.runtime.targets import ConfigError

_KEY = r"[A-Za-z_][\w-]*(?:\.[\w-]+)*"
INTERPOLATION = re.compile(
    rf"^\$\{{\s*(?:oc\.select:\s*)?(?P<dots>\.*)(?P<key>{_KEY})\s*(?:,[^}}]*)?\}}$"
)
"""A value that is exactly one key interpolation (optionally through ``oc.select``)."""
_LEADING_KEY = re.compile(rf"^(?P<key>{_KEY})(?P<colon>:)?(?=[\s=:]|$)")
_WORD = re.compile(r"[A-Za-z_][\w-]*(?:\.[\w-]+)*")


def _absolute(dots: str, key: str, path: list[str]) -> str:
    """The absolute key of an interpolation found at ``path`` (``.x``: a sibling, ``..x``: a
    sibling of the parent, ...)."""
    if not dots:
        return key
    parent = path[: max(len(path) - len(dots), 0)]
    return ".".join([*parent, key])


def _interpolations(node: Any, path: list[str]) -> Iterator[tuple[str, str]]:
    if isinstance(node, Mapping):
        for name, value in node.items():
            yield from _interpolations(value, [*path, str(name)])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _interpolations(value, [*path, str(index)])
    elif isinstance(node, str):
        match = INTERPOLATION.match(node)
        if match:
            yield ".".join(path), _absolute(match["dots"], match["key"], path)


def _exists(config: Mapping[str, Any], key: str) -> bool:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


@dataclass(frozen=True)
class Origins:
    """Interpolation links of a config: ``links[key]`` is the key ``key``'s value is written as
    (``"scheduler.scheduler.T_max": "trainer.max_epochs"``); a linked key may be a whole section
    (``"decoder.readout": "neuron"``)."""

    links: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of_config(cls, config: DictConfig | ListConfig | Mapping[str, Any]) -> Origins:
        """The links of an unresolved config (OmegaConf, or a plain mapping holding ``${...}``
        strings); a plain resolved mapping has none."""
        if isinstance(config, DictConfig | ListConfig):
            config = OmegaConf.to_container(config, resolve=False)
        return cls(dict(_interpolations(config, [])))

    def _step(self, key: str) -> str | None:
        """The key ``key`` is interpolated from, one link on (None if not interpolated)."""
        parts = key.split(".")
        for end in range(len(parts), 0, -1):
            prefix = ".".join(parts[:end])
            if prefix in self.links:
                return ".".join([self.links[prefix], *parts[end:]])
        return None

    def of(self, key: str) -> str:
        """The key the value of ``key`` is written as (``key`` itself if not interpolated)."""
        return self.written_at(key)

    def written_at(self, key: str, config: Mapping[str, Any] | None = None) -> str:
        """The end of the chain of links from ``key``; given ``config``, the last key on it that
        ``config`` defines (where an interpolation of a missing key was written)."""
        seen = {key}
        while True:
            source = self._step(key)
            if source is None or source in seen:  # a cycle: OmegaConf refuses to resolve it
                return key
            if config is not None and not _exists(config, source):
                return key
            seen.add(source)
            key = source

    def explain(self, error: ConfigError, config: Mapping[str, Any] | None = None) -> ConfigError:
        """``error`` naming the keys the user wrote (module docstring); unchanged when the keys it
        names are not interpolated.

        The keys an error is about are read from its message: its leading key (``a.b must ...``
        or ``a.b: ...``) and, given the ``config`` the error is about, the words that are keys of
        that key's section in it (``neuron: dt * tau_syn_inv must be < 1`` is about ``neuron.dt``
        and ``neuron.tau_syn_inv``).
        """
        message = str(error)
        leading = _LEADING_KEY.match(message)
        if leading is None:
            return error
        lead = leading["key"]
        section = lead if leading["colon"] else lead.rpartition(".")[0]
        keys = [lead]
        for word in _WORD.findall(message[leading.end() :]) if section and config else ():
            for key in (word, f"{section}.{word}") if "." in word else (f"{section}.{word}",):
                if _exists(config, key):
                    keys.append(key)
        notes = []
        for key in dict.fromkeys(keys):
            source = self.of(key)
            if source == key:
                continue
            if key == lead:
                message = source + message[len(lead) :]
            notes.append(f"{key} = ${{{source}}}")
        if not notes:
            return error
        return ConfigError(f"{message}; {'; '.join(notes)}")
