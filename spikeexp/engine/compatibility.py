"""Whether the chosen task, encoder, topology and decoder can work together.

Part of the validation pass (:func:`spikeexp.engine.validate.validate_config`), so a composition
that cannot work is refused before any data are loaded or any run directory is filled. Every
part declares what it needs or gives, next to its own code:

* the task: :class:`~spikeexp.tasks.base.TaskNeeds` (:meth:`~spikeexp.tasks.base.Task.needs`,
  asked from the task class and its constructed, not yet loaded, data module): the per-sample
  input shape, whether the samples are sequences already, whether it decodes with the ``decoder``
  group or reads its readout itself;
* an encoder: ``sequence_input`` (it takes sequences, ``encoder=none``, or static samples) and
  ``output_shape`` (the per-step shape it gives);
* a topology: ``input_dims`` (the per-step input dimensions it needs; ``conv``: channels, height,
  width);
* a decoder: ``reads`` (``voltage`` or ``spikes``).

The rules, checked in this order:

1. input: a task whose samples are sequences needs an encoder that takes sequences; static
   samples need an encoder that makes sequences of them;
2. shape: the per-step shape the encoder gives has the dimensions the topology needs;
3. readout layer: a task that needs the ``fc_out`` + ``readout`` layers needs a topology that
   builds them (``competitive`` does not: its task reads the excitatory spikes itself);
4. readout: the readout neuron spikes exactly when what reads it (the decoder, or the task
   itself) reads spikes (topologies without a readout layer skip it).

A refusal is one :class:`ConfigError` naming the groups involved (as chosen on the command line,
when the command passes its choices) and the shipped options of those groups that pass every
rule, e.g. ``task=memory provides sequences of 2400 steps of shape (20,) itself, but
encoder=constant_current makes seq_length steps of static samples; use encoder=none``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from itertools import combinations, product
from typing import Any

from omegaconf import OmegaConf

from spikeexp.engine.schema import ConfigError, resolve_model
from spikeexp.engine.topology import TOPOLOGIES
from spikeexp.runtime.targets import instantiate, locate
from spikeexp.tasks.base import Task, TaskNeeds

CONFIG_PACKAGE = "spikeexp.conf"
"""Where the shipped config groups live (their options are the alternatives offered)."""
NAMED_GROUPS = ("task", "encoder", "topology", "decoder")
"""The groups a refusal names."""


@dataclass(frozen=True)
class Composition:
    """What the validation pass learned about a composition that works.

    Attributes:
        needs: the task's needs.
        encoded_shape: per-step shape of the network's input (the encoder's output per sample).
    """

    needs: TaskNeeds
    encoded_shape: tuple[int, ...]


class _Refusal(Exception):
    """A rule a composition breaks: the message (its groups as placeholders) and the groups
    whose options may repair it."""

    def __init__(self, message: str, groups: tuple[str, ...]) -> None:
        super().__init__(message)
        self.message = message
        self.groups = groups


def _short(target: Any) -> str:
    return str(target).rpartition(".")[2]


class _Names:
    """How a message names a group: ``encoder=poisson`` as chosen on the command line, else by
    its class (plain configs built without the command line)."""

    def __init__(self, config: Mapping[str, Any], choices: Mapping[str, str]) -> None:
        self.config = config
        self.choices = choices

    def __call__(self, group: str) -> str:
        if group in self.choices:
            return f"{group}={self.choices[group]}"
        if group == "topology":
            return f"topology.type={self.config['topology'].get('type')}"
        if group == "task":
            task, data = (_short(self.config[key].get("_target_")) for key in ("task", "data"))
            return f"task {task} (data: {data})"
        return f"{group} {_short(self.config[group].get('_target_'))}"


def _encoder_shape(config: Mapping[str, Any], needs: TaskNeeds) -> tuple[int, ...]:
    """Rule 1, then the encoder's per-step output shape."""
    node = config["encoder"]
    takes_sequences = getattr(locate("encoder", node.get("_target_")), "sequence_input", None)
    if needs.sequence_steps is not None and takes_sequences is False:
        raise _Refusal(
            f"{{task}} provides sequences of {needs.sequence_steps} steps of shape "
            f"{needs.step_shape} itself, but {{encoder}} makes seq_length steps of static samples",
            ("encoder",),
        )
    if needs.sequence_steps is None and takes_sequences:
        raise _Refusal(
            f"{{task}} gives static samples of shape {needs.input_shape}, but {{encoder}} takes "
            f"sequences and would read their first axis as time",
            ("encoder",),
        )
    encoder = instantiate("encoder", node)
    try:
        return tuple(int(size) for size in encoder.output_shape(needs.input_shape))
    except ValueError as error:
        raise ConfigError(
            f"encoder: {type(encoder).__name__} does not fit the task's input shape "
            f"{needs.input_shape}: {error}"
        ) from None


def _check_rank(config: Mapping[str, Any], shape: tuple[int, ...]) -> None:
    """Rule 2."""
    dims = getattr(TOPOLOGIES[config["topology"]["type"]][0], "input_dims", None)
    if dims is not None and len(shape) != len(dims):
        raise _Refusal(
            f"{{topology}} needs input [{', '.join(dims)}] per time step, but {{task}} with "
            f"{{encoder}} gives shape {shape}",
            ("topology", "encoder"),
        )


def _check_readout_layer(config: Mapping[str, Any], needs: TaskNeeds) -> None:
    """Rule 3."""
    if needs.readout_layer and not TOPOLOGIES[config["topology"]["type"]][0].readout:
        raise _Refusal(
            "{topology} has no readout layer, but {task} needs one (a task that reads the "
            "network's spikes itself, spikeexp.tasks.assignment.LabelAssignmentTask, does not)",
            ("topology",),
        )


def _check_readout(config: Mapping[str, Any], needs: TaskNeeds, names: _Names) -> None:
    """Rule 4."""
    if not TOPOLOGIES[config["topology"]["type"]][0].readout:
        return
    decoder = config["decoder"]
    decoder_reads = getattr(locate("decoder", decoder.get("_target_")), "reads", "voltage")
    reads = decoder_reads if needs.decoder else needs.readout
    model = decoder["readout"].get("model")
    if not needs.decoder and decoder_reads != needs.readout:
        raise _Refusal(
            f"{{task}} reads the {needs.readout} of its readout layer itself, but {{decoder}} "
            f"decodes {decoder_reads} (readout model {model})",
            ("decoder",),
        )
    reader = "a decoder" if needs.decoder else names("task")
    resolve_model(
        "decoder.readout.model",
        model,
        spiking=reads == "spikes",
        where=f"by {reader} that reads {'spikes' if reads == 'spikes' else 'voltages'}",
    )


def _check(config: Mapping[str, Any], needs: TaskNeeds, names: _Names) -> tuple[int, ...]:
    """Every rule; the network's per-step input shape."""
    shape = _encoder_shape(config, needs)
    _check_rank(config, shape)
    _check_readout_layer(config, needs)
    _check_readout(config, needs, names)
    return shape


@cache
def _option_files(group: str) -> dict[str, dict[str, Any]]:
    """The shipped options of ``group`` (unresolved), with the entries of their defaults list
    that fill a key (``/neuron@readout: li``) merged in."""
    folder = files(CONFIG_PACKAGE) / group
    if not folder.is_dir():
        return {}
    options = {}
    for path in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if not path.name.endswith(".yaml"):
            continue
        node = OmegaConf.to_container(OmegaConf.create(path.read_text()), resolve=False)
        for entry in node.pop("defaults", None) or []:
            if isinstance(entry, Mapping):
                for choice, option in entry.items():
                    other, _, key = str(choice).lstrip("/").partition("@")
                    if key and option in _option_files(other):
                        node[key] = _option_files(other)[option]
        options[path.name.removesuffix(".yaml")] = node
    return options


def _resolved_options(config: Mapping[str, Any], group: str) -> dict[str, Any]:
    """The shipped options of ``group``, their interpolations resolved against ``config``."""
    root = OmegaConf.create(dict(config))
    resolved = {}
    for name, node in _option_files(group).items():
        root[group] = node
        resolved[name] = OmegaConf.to_container(root[group], resolve=True)
    return resolved


def _passes(config: Mapping[str, Any], needs: TaskNeeds, names: _Names) -> bool:
    try:
        _check(config, needs, names)
    except (_Refusal, ValueError):
        return False
    return True


def _alternatives(
    config: Mapping[str, Any], needs: TaskNeeds, names: _Names, groups: tuple[str, ...]
) -> str | None:
    """The advice of a refusal: the shipped options that make the composition pass every rule.

    First one group changed (``use topology=mlp (or recurrent) or encoder=constant_current``),
    else the first combination of two or three changes, a refused group's first
    (``use encoder=none and topology=mlp``); None if nothing fits.
    """
    order = [*groups, *(g for g in NAMED_GROUPS[1:] if g not in groups)]
    resolved = {group: _resolved_options(config, group) for group in order}
    single = []
    for group in groups:
        passing = [
            name
            for name, node in resolved[group].items()
            if _passes({**config, group: node}, needs, names)
        ]
        if passing:
            others = f" (or {', '.join(passing[1:])})" if len(passing) > 1 else ""
            single.append(f"{group}={passing[0]}{others}")
    if single:
        return f"use {' or '.join(single)}"
    for count in range(2, len(order) + 1):
        for changed in combinations(order, count):
            if changed[0] not in groups:
                continue
            for picked in product(*(resolved[group].items() for group in changed)):
                chosen = list(zip(changed, picked, strict=True))
                if _passes({**config, **{g: node for g, (_, node) in chosen}}, needs, names):
                    texts = [f"{g}={name}" for g, (name, _) in chosen]
                    return f"use {', '.join(texts[:-1])} and {texts[-1]}"
    return None


def check_composition(config: Mapping[str, Any], choices: Mapping[str, str]) -> Composition:
    """Check the rules of the module docstring on a validated plain ``config``; ``choices`` are
    the command line's group choices (``{"encoder": "poisson", ...}``, empty without one)."""
    datamodule = instantiate("data", config["data"])
    task_class = locate("task", config["task"].get("_target_"))
    if not (isinstance(task_class, type) and issubclass(task_class, Task)):
        raise ConfigError(
            f"task._target_ must name a subclass of spikeexp.tasks.base.Task "
            f"(got {config['task'].get('_target_')!r})"
        )
    needs = task_class.needs(datamodule)
    names = _Names(config, choices)
    try:
        return Composition(needs, _check(config, needs, names))
    except _Refusal as refusal:
        message = refusal.message.format(**{group: names(group) for group in NAMED_GROUPS})
        advice = _alternatives(config, needs, names, refusal.groups)
        raise ConfigError(f"{message}; {advice or 'no shipped option fits'}") from None
