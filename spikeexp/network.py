"""Build a time-first spiking network from the ``topology`` config.

A network is a :class:`~spikeexp.module.SequentialState` of named layers: stateless layers
(``Linear``, ``Conv2d``, pooling, dropout, batch-norm, flatten) wrapped in
:class:`~spikeexp.module.Lift`, so each runs once over the whole ``[T * batch, ...]`` block, and
neuron sequence modules (``LIF``, ``LSNNRecurrent`` ...) that unroll time. The last two layers are
``fc_out`` (``Linear`` to the number of classes) and ``readout`` (LI neurons for voltage decoders,
spiking neurons for spike-count decoders).

Topologies (``topology.type``) and their layer names:

* ``mlp``: ``flatten``, then per hidden size ``fc{k}`` [``bn{k}``] ``hidden{k}`` [``dropout{k}``].
* ``conv``: per channel count ``conv{k}`` (Conv2d) [``bn_conv{k}``] ``spike_conv{k}`` ``pool{k}``,
  then ``flatten`` and the ``mlp`` layers. With ``channels_last`` the convolutions get their
  input in channels-last memory order, which the feature maps keep up to ``flatten``. Pooling
  is :class:`~spikeexp.module.FusedMaxPool2d` (``nn.MaxPool2d`` with ``unroll.backend=reference``).
* ``recurrent``: ``flatten``, then per hidden size a recurrent spiking layer ``hidden{k}``
  [``dropout{k}``].

Every spiking layer uses the global ``neuron`` config, merged with
``topology.layers.<layer>.neuron`` if given (see :func:`spikeexp.schema.merge_neuron`).
``topology.layers.<layer>.input_scale`` (a positive number ``s``, dimensionless) inserts a layer
``scale_<layer>`` that multiplies the layer's input by ``s``: for ``mlp`` and ``conv`` layers the
synaptic input ``I = s (W x + b)``, for ``recurrent`` layers the input spikes. Norse's ConvNet
scales its second convolution by 10 so that its sparse spikes drive the next layer. Shapes are
propagated through every layer while building, so a mismatch is reported before training with
the layer's name. New topologies register a schema and a builder in :data:`TOPOLOGIES`.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from spikeexp.functional.neurons import MODELS
from spikeexp.module import NEURON_MODULES, FusedMaxPool2d, Lift, SequentialState
from spikeexp.schema import ConfigError, merge_neuron, validate_dataclass, validate_neuron

LAYER_KEYS = frozenset({"neuron", "input_scale"})
"""Keys of a per-layer entry ``topology.layers.<layer>``."""


@dataclass
class MLPTopology:
    """``mlp``: hidden spiking layers of the given sizes (``hidden1``, ``hidden2``, ...)."""

    type: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.0
    batch_norm: bool = False
    layers: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConvTopology:
    """``conv``: conv/pool stages (``channels``), then dense spiking layers (``hidden``)."""

    type: str = "conv"
    channels: list[int] = field(default_factory=lambda: [16, 32])
    kernel_size: int = 3
    padding: int = 1
    pool: int = 2
    hidden: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.0
    batch_norm: bool = False
    channels_last: bool = False
    layers: dict[str, Any] = field(default_factory=dict)


@dataclass
class RecurrentTopology:
    """``recurrent``: recurrent spiking layers of the given sizes."""

    type: str = "recurrent"
    hidden: list[int] = field(default_factory=lambda: [128])
    autapses: bool = False
    dropout: float = 0.0
    layers: dict[str, Any] = field(default_factory=dict)


class Scale(nn.Module):
    """Multiply the input by a constant ``factor`` (dimensionless): ``y = factor * x``."""

    time_invariant = True  # see spikeexp.module.container.is_time_invariant

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor:g}"


class SpikingNetwork(nn.Module):
    """A :class:`SequentialState` that also records the output of every spiking layer.

    ``readout, state = net(x)`` with ``x`` of shape ``[T, batch, ...]`` starts from rest (a fresh
    state), ``net(x, state)`` continues. After a call, :attr:`records` maps each spiking layer's
    name to its spikes ``[T, batch, ...]`` (collected by forward hooks, still in the graph, so
    regularisers can use them).
    """

    def __init__(self, layers: Mapping[str, nn.Module], spiking_layers: list[str]) -> None:
        super().__init__()
        self.layers = SequentialState(OrderedDict(layers))
        self.spiking_layers = list(spiking_layers)
        self.records: dict[str, torch.Tensor] = {}
        for name in self.spiking_layers:
            self.layers.get_submodule(name).register_forward_hook(self._recorder(name))

    def _recorder(self, name: str) -> Callable[..., None]:
        # A partial of a bound method, not a closure: the network stays picklable (ddp_spawn).
        return functools.partial(self._record, name)

    def _record(
        self, name: str, _module: nn.Module, _args: Any, output: tuple[torch.Tensor, Any]
    ) -> None:
        self.records[name] = output[0]

    def forward(self, x: torch.Tensor, state: list[Any] | None = None) -> tuple[torch.Tensor, Any]:
        self.records = {}
        return self.layers(x, state)


def _describe(module: nn.Module) -> str:
    """One-line description of a (lifted) layer, e.g. ``Conv2d(16, 32, kernel_size=(5, 5))``."""
    inner = module.module if isinstance(module, Lift) else module
    return f"{type(inner).__name__}({inner.extra_repr()})"


class _Builder:
    """Appends named layers, tracking the per-sample shape by running every new layer once."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        neuron: Mapping[str, Any],
        overrides: Mapping[str, Any],
        backend: str = "auto",
    ) -> None:
        self.shape = tuple(input_shape)
        self.backend = backend
        self.neuron = dict(neuron)
        self.overrides = dict(overrides)
        self.layers: OrderedDict[str, nn.Module] = OrderedDict()
        self.spiking: list[str] = []

    def add(self, name: str, module: nn.Module) -> None:
        """Append ``module`` and compute its output shape on a dummy ``[1, 2, *shape]`` input."""
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module(torch.zeros(1, 2, *self.shape))
        except (RuntimeError, ValueError) as error:
            first_line = str(error).splitlines()[0]
            raise ConfigError(
                f"topology: layer {name!r} ({_describe(module)}) does not fit its input of shape "
                f"{self.shape} per sample: {first_line}"
            ) from None
        module.train(was_training)
        out = out[0] if isinstance(out, tuple) else out
        self.shape = tuple(out.shape[2:])
        self.layers[name] = module

    def add_stateless(self, name: str, module: nn.Module, channels_last: bool = False) -> None:
        self.add(name, Lift(module, channels_last))

    def flatten(self) -> None:
        if len(self.shape) != 1:
            self.add_stateless("flatten", nn.Flatten())

    @property
    def features(self) -> int:
        return math.prod(self.shape)

    def layer_neuron(self, name: str, spiking: bool = True) -> dict[str, Any]:
        override = self.overrides.get(name, {}).get("neuron", {})
        spec = merge_neuron(self.neuron, override)
        section = f"topology.layers.{name}.neuron" if override else "neuron"
        return validate_neuron(section, spec, spiking=spiking, where=f"in layer {name!r}")

    def add_neuron(self, name: str, spec: Mapping[str, Any], **sizes: int) -> None:
        """Append the neuron sequence module of ``spec`` (recurrent if ``sizes`` are given),
        preceded by ``scale_<name>`` if ``topology.layers.<name>.input_scale`` is given."""
        scale = self.overrides.get(name, {}).get("input_scale")
        if scale is not None:
            self.add_stateless(f"scale_{name}", Scale(scale))
        model = MODELS[spec["model"]]
        suffix = "Recurrent" if sizes else ""
        cls = NEURON_MODULES[f"{model.prefix}{suffix}"]
        kwargs = {key: value for key, value in spec.items() if key != "model"}
        self.add(name, cls(**sizes, backend=self.backend, **kwargs))
        if model.spiking:
            self.spiking.append(name)

    def dense_layers(self, hidden: list[int], dropout: float, batch_norm: bool) -> None:
        for index, size in enumerate(hidden, start=1):
            self.add_stateless(f"fc{index}", nn.Linear(self.features, size))
            if batch_norm:
                self.add_stateless(f"bn{index}", nn.BatchNorm1d(size))
            self.add_neuron(f"hidden{index}", self.layer_neuron(f"hidden{index}"))
            if dropout > 0:
                self.add_stateless(f"dropout{index}", nn.Dropout(dropout))


def _check_sizes(key: str, sizes: list[int]) -> None:
    for size in sizes:
        if size < 1:
            raise ConfigError(f"topology.{key} must hold positive integers (got {sizes})")


def _check_layer_override(name: str, override: Any) -> None:
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


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"topology.dropout must be in [0, 1) (got {dropout})")


def _build_mlp(spec: MLPTopology, builder: _Builder) -> None:
    _check_sizes("hidden", spec.hidden)
    _check_dropout(spec.dropout)
    builder.flatten()
    builder.dense_layers(spec.hidden, spec.dropout, spec.batch_norm)


def _build_conv(spec: ConvTopology, builder: _Builder) -> None:
    _check_sizes("channels", spec.channels)
    _check_sizes("hidden", spec.hidden)
    _check_dropout(spec.dropout)
    for key in ("kernel_size", "pool"):
        if getattr(spec, key) < 1:
            raise ConfigError(f"topology.{key} must be >= 1 (got {getattr(spec, key)})")
    if len(builder.shape) != 3:
        raise ConfigError(
            f"topology conv needs image input [channels, height, width] per sample, "
            f"but the encoder gives shape {builder.shape}"
        )
    for index, channels in enumerate(spec.channels, start=1):
        conv = nn.Conv2d(builder.shape[0], channels, spec.kernel_size, padding=spec.padding)
        builder.add_stateless(f"conv{index}", conv, spec.channels_last)
        if spec.batch_norm:
            builder.add_stateless(f"bn_conv{index}", nn.BatchNorm2d(channels))
        builder.add_neuron(f"spike_conv{index}", builder.layer_neuron(f"spike_conv{index}"))
        if spec.pool > 1:
            pool = nn.MaxPool2d if builder.backend == "reference" else FusedMaxPool2d
            builder.add_stateless(f"pool{index}", pool(spec.pool))
    builder.flatten()
    builder.dense_layers(spec.hidden, spec.dropout, spec.batch_norm)


def _build_recurrent(spec: RecurrentTopology, builder: _Builder) -> None:
    _check_sizes("hidden", spec.hidden)
    _check_dropout(spec.dropout)
    builder.flatten()
    for index, size in enumerate(spec.hidden, start=1):
        name = f"hidden{index}"
        neuron = builder.layer_neuron(name)
        builder.add_neuron(
            name,
            {**neuron, "autapses": spec.autapses},
            input_size=builder.features,
            hidden_size=size,
        )
        if spec.dropout > 0:
            builder.add_stateless(f"dropout{index}", nn.Dropout(spec.dropout))


Topology = Callable[[Any, _Builder], None]
TOPOLOGIES: dict[str, tuple[type, Topology]] = {
    "mlp": (MLPTopology, _build_mlp),
    "conv": (ConvTopology, _build_conv),
    "recurrent": (RecurrentTopology, _build_recurrent),
}


def build_network(
    topology: Mapping[str, Any],
    neuron: Mapping[str, Any],
    readout: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_outputs: int,
    readout_spiking: bool = False,
    backend: str = "auto",
) -> SpikingNetwork:
    """Build the network of a (resolved, plain) config.

    Args:
        topology: the ``topology`` section (``type`` selects a builder in :data:`TOPOLOGIES`).
        neuron: the global ``neuron`` section, used by every spiking layer.
        readout: the neuron config of the readout layer (``decoder.readout``).
        input_shape: per-sample shape of the encoder's output (without time and batch).
        num_outputs: readout neurons (number of classes).
        readout_spiking: whether the decoder reads spikes (else voltages) from the readout.
        backend: time-loop backend of every neuron sequence layer (``unroll.backend``: auto,
            reference or fused; see :class:`spikeexp.module.NeuronSequence`).
    """
    kind = topology.get("type")
    if kind not in TOPOLOGIES:
        raise ConfigError(f"topology.type must be one of {', '.join(TOPOLOGIES)} (got {kind!r})")
    schema, build = TOPOLOGIES[kind]
    spec = validate_dataclass("topology", topology, schema)
    for name, override in spec.layers.items():
        _check_layer_override(name, override)
    builder = _Builder(input_shape, neuron, spec.layers, backend)
    build(spec, builder)
    unknown = sorted(set(spec.layers) - set(builder.spiking))
    if unknown:
        raise ConfigError(
            f"topology.layers: no spiking layer named {unknown[0]!r}; "
            f"valid: {', '.join(builder.spiking)}"
        )
    builder.flatten()
    builder.add_stateless("fc_out", nn.Linear(builder.features, num_outputs))
    reads = "spikes" if readout_spiking else "voltages"
    readout_spec = validate_neuron(
        "decoder.readout",
        readout,
        spiking=readout_spiking,
        where=f"by a decoder that reads {reads}",
    )
    builder.add_neuron("readout", readout_spec)
    return SpikingNetwork(builder.layers, builder.spiking)
