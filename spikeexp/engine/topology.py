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
* ``competitive``: [``flatten``] ``fc_exc`` ``exc``: the excitatory layer of Diehl & Cook (2015)
  with lateral inhibition and adaptive thresholds (:class:`~spikeexp.module.CompetitiveLIF`,
  parameters in the topology section); its spikes are the network's output: no ``fc_out`` and no
  ``readout`` (for tasks that read spikes themselves, e.g. label assignment).

A ``Linear`` layer whose input is the spikes of a spiking layer (directly, or through pooling,
flattening or dropout) is a :class:`~spikeexp.module.SpikeLinear` with the ``auto`` and ``fused``
backends: the event-driven product where the spike density is below its measured break-even,
else the dense one (same parameters, results equal to float32 rounding).

Every spiking layer uses the global ``neuron`` config, merged with
``topology.layers.<layer>.neuron`` if given (see :func:`spikeexp.engine.schema.merge_neuron`);
:mod:`spikeexp.engine.validate` checks the section and resolves each layer's neuron once, and the
builders here only build.
``topology.layers.<layer>.input_scale`` (a positive number ``s``, dimensionless) inserts a layer
``scale_<layer>`` that multiplies the layer's input by ``s``: for ``mlp`` and ``conv`` layers the
synaptic input ``I = s (W x + b)``, for ``recurrent`` layers the input spikes. Norse's ConvNet
scales its second convolution by 10 so that its sparse spikes drive the next layer. Shapes are
propagated through every layer while building, so a mismatch is reported before training with
the layer's name.

``topology.layers.<layer>.plasticity`` (merged over the global ``plasticity`` section, see
:func:`spikeexp.engine.schema.merge_plasticity`) makes the synapses onto a spiking layer plastic:
a weight rule (``stdp``, ``triplet``, ``mstdp``) turns its input connection (``fc{k}``,
``conv{k}``, ``fc_exc``) into a :class:`~spikeexp.module.PlasticLinear` /
:class:`~spikeexp.module.PlasticConv2d` (no bias) that learns from that layer's spikes; a
transmission rule (``stp``) inserts a :class:`~spikeexp.module.ShortTermPlasticity` layer
``stp_<layer>`` before the connection. Recurrent layers take no plasticity.

A new topology is a schema dataclass (its fields are the config keys; ``check`` validates the
values, ``spiking_layers`` names its spiking layers, ``plastic_layers`` those whose input
connection may be plastic, ``neuron_layers`` those built from the ``neuron`` config, ``readout``
whether ``fc_out`` and ``readout`` follow, an optional class attribute ``input_dims`` naming the
per-step input dimensions it needs, checked against the task and encoder by the validation pass)
and a builder, registered in :data:`TOPOLOGIES`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from spikeexp.engine.schema import ConfigError
from spikeexp.functional.competition import CompetitiveParameters, validate_competitive
from spikeexp.functional.neurons import MODELS
from spikeexp.functional.plasticity import RULES
from spikeexp.module import (
    NEURON_MODULES,
    CompetitiveLIF,
    FusedMaxPool2d,
    Lift,
    PlasticConv2d,
    PlasticLinear,
    Scale,
    ShortTermPlasticity,
    SpikeLinear,
    SpikingNetwork,
)
from spikeexp.module.competitive import check_repeats
from spikeexp.module.neuron import FUSING

SPARSITY_KEEPING = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.Flatten, nn.Dropout)
"""Stateless layers whose output is as sparse as their input (for :class:`SpikeLinear`)."""

LAYER_KEYS = frozenset({"neuron", "input_scale", "plasticity"})
"""Keys of a per-layer entry ``topology.layers.<layer>``."""

_COMPETITIVE_DEFAULTS = CompetitiveParameters._field_defaults
"""Defaults of the competitive layer's parameters, shared by ``topology=competitive``."""


def _check_sizes(key: str, sizes: list[int]) -> None:
    for size in sizes:
        if size < 1:
            raise ConfigError(f"topology.{key} must hold positive integers (got {sizes})")


def _check_dropout(dropout: float) -> None:
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"topology.dropout must be in [0, 1) (got {dropout})")


@dataclass
class MLPTopology:
    """``mlp``: hidden spiking layers of the given sizes (``hidden1``, ``hidden2``, ...)."""

    type: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128])
    dropout: float = 0.0
    batch_norm: bool = False
    layers: dict[str, Any] = field(default_factory=dict)

    readout: ClassVar[bool] = True

    def check(self) -> None:
        """Raise :class:`ConfigError` on a value outside its range."""
        _check_sizes("hidden", self.hidden)
        _check_dropout(self.dropout)

    def spiking_layers(self) -> list[str]:
        """Names of the spiking layers this topology builds, in order."""
        return [f"hidden{k}" for k in range(1, len(self.hidden) + 1)]

    def plastic_layers(self) -> list[str]:
        """Spiking layers whose input connection may be plastic."""
        return self.spiking_layers()

    def neuron_layers(self) -> list[str]:
        """Spiking layers built from the ``neuron`` config."""
        return self.spiking_layers()


@dataclass
class ConvTopology:
    """``conv``: conv/pool stages (``channels``), then dense spiking layers (``hidden``)."""

    input_dims: ClassVar[tuple[str, ...]] = ("channels", "height", "width")
    """The per-step input the stages take."""

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

    readout: ClassVar[bool] = True

    def check(self) -> None:
        """Raise :class:`ConfigError` on a value outside its range."""
        _check_sizes("channels", self.channels)
        _check_sizes("hidden", self.hidden)
        _check_dropout(self.dropout)
        for key in ("kernel_size", "pool"):
            if getattr(self, key) < 1:
                raise ConfigError(f"topology.{key} must be >= 1 (got {getattr(self, key)})")
        if self.padding < 0:
            raise ConfigError(f"topology.padding must be >= 0 (got {self.padding})")

    def spiking_layers(self) -> list[str]:
        """Names of the spiking layers this topology builds, in order."""
        convs = [f"spike_conv{k}" for k in range(1, len(self.channels) + 1)]
        return convs + [f"hidden{k}" for k in range(1, len(self.hidden) + 1)]

    plastic_layers = MLPTopology.plastic_layers
    neuron_layers = MLPTopology.neuron_layers


@dataclass
class RecurrentTopology:
    """``recurrent``: recurrent spiking layers of the given sizes."""

    type: str = "recurrent"
    hidden: list[int] = field(default_factory=lambda: [128])
    autapses: bool = False
    dropout: float = 0.0
    layers: dict[str, Any] = field(default_factory=dict)

    readout: ClassVar[bool] = True
    check = MLPTopology.check
    spiking_layers = MLPTopology.spiking_layers
    neuron_layers = MLPTopology.neuron_layers

    def plastic_layers(self) -> list[str]:
        """None: a recurrent layer's input weights live inside its neuron module."""
        return []


@dataclass
class CompetitiveTopology:
    """``competitive``: one excitatory layer ``exc`` of ``size`` neurons with lateral inhibition
    and adaptive thresholds (:mod:`spikeexp.functional.competition`; units: 1/s, s, the voltage
    units of the input), driven by the connection ``fc_exc``; no readout layer."""

    type: str = "competitive"
    size: int = 400
    tau_mem_inv: float = _COMPETITIVE_DEFAULTS["tau_mem_inv"]
    v_th: float = _COMPETITIVE_DEFAULTS["v_th"]
    v_reset: float = _COMPETITIVE_DEFAULTS["v_reset"]
    inhibition: float = _COMPETITIVE_DEFAULTS["inhibition"]
    refractory: float = _COMPETITIVE_DEFAULTS["refractory"]
    theta_plus: float = _COMPETITIVE_DEFAULTS["theta_plus"]
    tau_theta_inv: float = _COMPETITIVE_DEFAULTS["tau_theta_inv"]
    min_spikes: int = 0
    boost: float = 0.5
    max_repeats: int = 4
    layers: dict[str, Any] = field(default_factory=dict)

    readout: ClassVar[bool] = False

    def parameters(self) -> CompetitiveParameters:
        """The parameters of the competitive layer."""
        return CompetitiveParameters(
            **{name: getattr(self, name) for name in CompetitiveParameters._fields}
        )

    def check(self) -> None:
        """Raise :class:`ConfigError` on a value outside its range."""
        _check_sizes("size", [self.size])
        try:
            validate_competitive(self.parameters(), 1e-3)
            check_repeats(self.min_spikes, self.boost, self.max_repeats)
        except ValueError as error:
            raise ConfigError(f"topology.{error}") from None

    def spiking_layers(self) -> list[str]:
        """Names of the spiking layers this topology builds, in order."""
        return ["exc"]

    def plastic_layers(self) -> list[str]:
        """Spiking layers whose input connection may be plastic."""
        return ["exc"]

    def neuron_layers(self) -> list[str]:
        """None: the competitive layer has parameters of its own."""
        return []


TopologySpec = MLPTopology | ConvTopology | RecurrentTopology | CompetitiveTopology


def _describe(module: nn.Module) -> str:
    """One-line description of a (lifted) layer, e.g. ``Conv2d(16, 32, kernel_size=(5, 5))``."""
    inner = module.module if isinstance(module, Lift) else module
    return f"{type(inner).__name__}({inner.extra_repr()})"


class _Builder:
    """Appends named layers, tracking the per-sample shape by running every new layer once.

    ``neurons`` maps each spiking layer to the constructor arguments of its neuron module,
    ``plasticity`` each plastic layer to those of its plasticity (``None``: none), both validated
    (:func:`spikeexp.engine.validate.validate_config`)."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        neurons: Mapping[str, Mapping[str, Any]],
        overrides: Mapping[str, Any],
        backend: str = "auto",
        plasticity: Mapping[str, Mapping[str, Any] | None] | None = None,
        dt: float = 1e-3,
    ) -> None:
        self.shape = tuple(input_shape)
        self.backend = backend
        self.neurons = neurons
        self.overrides = dict(overrides)
        self.plasticity = dict(plasticity or {})
        self.dt = dt
        self.layers: OrderedDict[str, nn.Module] = OrderedDict()
        self.spiking: list[str] = []
        self.spike_input = False  # the next layer's input is the spikes of a spiking layer
        self.plastic: dict[str, str] = {}
        self.image_shape: tuple[int, ...] | None = None

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
        # The image a flattened input came from (for pictures of receptive fields).
        self.image_shape = self.shape if name == "flatten" else None
        self.shape = tuple(out.shape[2:])
        self.layers[name] = module

    def add_stateless(self, name: str, module: nn.Module, channels_last: bool = False) -> None:
        self.add(name, Lift(module, channels_last))
        # Pooling, flattening and dropout keep spikes sparse (zeros stay zeros).
        self.spike_input &= isinstance(module, SPARSITY_KEEPING)

    def linear(self, features: int) -> nn.Linear:
        """A ``Linear`` from the current features: :class:`~spikeexp.module.SpikeLinear` (the
        event-driven product, chosen by spike density) where its input is spikes and the
        backend fuses, else ``nn.Linear``."""
        if self.spike_input and self.backend in FUSING:
            return SpikeLinear(self.features, features)
        return nn.Linear(self.features, features)

    def flatten(self) -> None:
        if len(self.shape) != 1:
            self.add_stateless("flatten", nn.Flatten())

    @property
    def features(self) -> int:
        return math.prod(self.shape)

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
        self.spike_input = model.spiking
        if model.spiking:
            self.spiking.append(name)

    def add_connection(
        self, name: str, post: str, layer: nn.Linear | nn.Conv2d, channels_last: bool = False
    ) -> None:
        """Append the connection ``name`` that drives the spiking layer ``post``: ``layer``
        (lifted), or with a weight rule in ``post``'s plasticity a plastic connection of the same
        shape (no bias), or with a transmission rule ``stp_<post>`` followed by ``layer``."""
        spec = self.plasticity.get(post)
        if spec is None:
            self.add_stateless(name, layer, channels_last)
            return
        if RULES[spec["rule"]].kind == "transmission":
            self.add(f"stp_{post}", ShortTermPlasticity(**spec))
            self.add_stateless(name, layer, channels_last)
            return
        if isinstance(layer, nn.Linear):
            plastic = PlasticLinear(
                layer.in_features, layer.out_features, input_shape=self.image_shape, **spec
            )
        else:
            plastic = PlasticConv2d(
                layer.in_channels,
                layer.out_channels,
                layer.kernel_size[0],
                stride=layer.stride[0],
                padding=layer.padding[0],
                dilation=layer.dilation[0],
                **spec,
            )
        self.add(name, plastic)
        self.spike_input = False
        self.plastic[name] = post

    def dense_layers(self, hidden: list[int], dropout: float, batch_norm: bool) -> None:
        for index, size in enumerate(hidden, start=1):
            self.add_connection(f"fc{index}", f"hidden{index}", self.linear(size))
            if batch_norm:
                self.add_stateless(f"bn{index}", nn.BatchNorm1d(size))
            self.add_neuron(f"hidden{index}", self.neurons[f"hidden{index}"])
            if dropout > 0:
                self.add_stateless(f"dropout{index}", nn.Dropout(dropout))


def _build_mlp(spec: MLPTopology, builder: _Builder) -> None:
    builder.flatten()
    builder.dense_layers(spec.hidden, spec.dropout, spec.batch_norm)


def _build_conv(spec: ConvTopology, builder: _Builder) -> None:
    if len(builder.shape) != 3:
        raise ConfigError(
            f"topology conv needs image input [channels, height, width] per sample, "
            f"but the encoder gives shape {builder.shape}"
        )
    for index, channels in enumerate(spec.channels, start=1):
        conv = nn.Conv2d(builder.shape[0], channels, spec.kernel_size, padding=spec.padding)
        builder.add_connection(f"conv{index}", f"spike_conv{index}", conv, spec.channels_last)
        if spec.batch_norm:
            builder.add_stateless(f"bn_conv{index}", nn.BatchNorm2d(channels))
        builder.add_neuron(f"spike_conv{index}", builder.neurons[f"spike_conv{index}"])
        if spec.pool > 1:
            pool = nn.MaxPool2d if builder.backend == "reference" else FusedMaxPool2d
            builder.add_stateless(f"pool{index}", pool(spec.pool))
    builder.flatten()
    builder.dense_layers(spec.hidden, spec.dropout, spec.batch_norm)


def _build_recurrent(spec: RecurrentTopology, builder: _Builder) -> None:
    builder.flatten()
    for index, size in enumerate(spec.hidden, start=1):
        name = f"hidden{index}"
        builder.add_neuron(
            name,
            {**builder.neurons[name], "autapses": spec.autapses},
            input_size=builder.features,
            hidden_size=size,
        )
        if spec.dropout > 0:
            builder.add_stateless(f"dropout{index}", nn.Dropout(spec.dropout))


def _build_competitive(spec: CompetitiveTopology, builder: _Builder) -> None:
    builder.flatten()
    builder.add_connection("fc_exc", "exc", nn.Linear(builder.features, spec.size, bias=False))
    scale = builder.overrides.get("exc", {}).get("input_scale")
    if scale is not None:
        builder.add_stateless("scale_exc", Scale(scale))
    layer = CompetitiveLIF(
        spec.size,
        spec.parameters(),
        builder.dt,
        min_spikes=spec.min_spikes,
        boost=spec.boost,
        max_repeats=spec.max_repeats,
    )
    builder.add("exc", layer)
    builder.spiking.append("exc")


Builder = Callable[[Any, _Builder], None]
TOPOLOGIES: dict[str, tuple[type, Builder]] = {
    "mlp": (MLPTopology, _build_mlp),
    "conv": (ConvTopology, _build_conv),
    "recurrent": (RecurrentTopology, _build_recurrent),
    "competitive": (CompetitiveTopology, _build_competitive),
}
"""``topology.type`` -> (schema dataclass, builder)."""


def build_network(
    spec: TopologySpec,
    neurons: Mapping[str, Mapping[str, Any]],
    readout: Mapping[str, Any],
    input_shape: tuple[int, ...],
    num_outputs: int,
    backend: str = "auto",
    plasticity: Mapping[str, Mapping[str, Any] | None] | None = None,
    dt: float = 1e-3,
) -> SpikingNetwork:
    """Build the network of a validated topology (:func:`spikeexp.engine.validate.validate_config`).

    Args:
        spec: the validated ``topology`` section (an instance of a schema of :data:`TOPOLOGIES`).
        neurons: constructor arguments of each spiking layer's neuron module.
        readout: constructor arguments of the readout layer (``decoder.readout``).
        input_shape: per-sample shape of the encoder's output (without time and batch).
        num_outputs: readout neurons (number of classes).
        backend: time-loop backend of every neuron sequence layer (``unroll.backend``; see
            :class:`spikeexp.module.NeuronSequence`).
        plasticity: constructor arguments of the plasticity of each plastic layer (``None``
            for none), see the module docstring.
        dt: integration step (s) of the layers that take no neuron config (competitive).
    """
    builder = _Builder(input_shape, neurons, spec.layers, backend, plasticity, dt)
    TOPOLOGIES[spec.type][1](spec, builder)
    if spec.readout:
        builder.flatten()
        builder.add_stateless("fc_out", builder.linear(num_outputs))
        builder.add_neuron("readout", readout)
    return SpikingNetwork(builder.layers, builder.spiking, builder.plastic)
