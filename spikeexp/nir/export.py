"""Write a spikeexp network as a NIR graph: :func:`to_nir`, :func:`write_nir`, :func:`export_nir`.

The graph starts after the encoder (its input is what the network receives, per step) and ends
at the readout (the decoder that turns readout voltages into logits stays outside). Layer names
become node names; a layer that becomes several nodes adds a suffix (``hidden1.input_weights``,
``hidden1.recurrent_weights``, ``readout.synapse``, ``pool1.threshold``).

=========================================  ===================================================
spikeexp layer                             NIR
=========================================  ===================================================
``nn.Linear``                              ``Affine`` (``Linear`` without bias)
``nn.Conv2d``                              ``Conv2d`` (bias zeros if none)
``nn.BatchNorm1d/2d`` in eval mode         folded into the ``Linear``/``Conv2d`` before it
``nn.AvgPool2d``, :class:`SumPool2d`       ``AvgPool2d``, ``SumPool2d``
``nn.MaxPool2d`` of spikes                 ``SumPool2d`` + ``Threshold(0.5)`` (on 0/1 input
                                           the maximum is 1 exactly where the sum is > 0.5)
``nn.Flatten``                             ``Flatten`` (dimensions counted without the batch)
:class:`Scale` before a neuron layer       folded into the neuron's input gain (``w_in`` or
                                           ``r``; a recurrent layer's input weights)
:class:`Scale` elsewhere                   ``Scale``
``nn.Dropout`` in eval mode, ``Identity``  nothing (the identity)
neuron layers                              :mod:`spikeexp.nir.neurons`
``XRecurrent``                             ``Linear`` (input weights) -> neuron, and a
                                           ``Linear`` back edge (recurrent weights): a cycle
:class:`LILinear`                          ``Linear`` -> LI node
=========================================  ===================================================

Anything else is refused with :class:`~spikeexp.nir.conventions.NIRExportError`, one line naming
the layer and the reason, before any file is written.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from spikeexp.module.container import Lift, SequentialState
from spikeexp.module.network import Scale, SpikingNetwork
from spikeexp.module.neuron import NeuronModule, NeuronRecurrent, NeuronSequence
from spikeexp.module.pool import SumPool2d
from spikeexp.module.readout import LILinear
from spikeexp.nir.conventions import (
    READOUTS,
    RESISTANCES,
    NIRExportError,
    full,
    graph_metadata,
    weights,
)
from spikeexp.nir.neurons import ExportContext, NotExpressible, export_neuron
from spikeexp.runtime.atomic import atomic_write

MAX_POOL_THRESHOLD = 0.5
"""Threshold after the sum of a pooling window of spikes: 1 where any spike is in the window."""


def _layers(network: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of ``network`` in signal order, :class:`Lift` and ``nn.Sequential`` unwrapped."""
    container = network.layers if isinstance(network, SpikingNetwork) else network
    if not isinstance(container, SequentialState):
        raise NIRExportError(
            f"to_nir converts a SpikingNetwork or SequentialState (got {type(network).__name__})"
        )
    return list(_unwrap(container.named_children()))


def _unwrap(children: Iterable[tuple[str, nn.Module]]) -> Iterable[tuple[str, nn.Module]]:
    for name, module in children:
        inner = module.module if isinstance(module, Lift) else module
        if isinstance(inner, nn.Sequential) and not isinstance(inner, SequentialState):
            yield from _unwrap((f"{name}.{child}", sub) for child, sub in inner.named_children())
        else:
            yield name, inner


def _network_dt(layers: list[tuple[str, nn.Module]], dt: float | None) -> float:
    """The integration step of the network's neuron layers (all the same), checked against
    ``dt`` if given."""
    steps = [(name, module.dt) for name, module in layers if isinstance(module, NeuronModule)]
    for name, step in steps:
        if not math.isclose(step, steps[0][1], rel_tol=1e-12):
            raise NIRExportError(
                f"layer {name!r} runs with dt={step:g} but layer {steps[0][0]!r} with "
                f"dt={steps[0][1]:g}: a NIR graph is simulated with one dt"
            )
    if dt is not None and steps and not math.isclose(dt, steps[0][1], rel_tol=1e-12):
        raise NIRExportError(
            f"dt={dt:g} differs from the step dt={steps[0][1]:g} layer {steps[0][0]!r} runs "
            f"with; the graph describes the network as it runs (leave dt out to use it)"
        )
    if dt is None and not steps:
        raise NIRExportError("give dt=<seconds>: the network has no neuron layer to read it from")
    step = float(dt if dt is not None else steps[0][1])
    if not (math.isfinite(step) and step > 0):
        raise NIRExportError(f"dt must be > 0 seconds (got {step})")
    return step


def _input_shape(layers: list[tuple[str, nn.Module]]) -> tuple[int, ...]:
    """The per-sample input shape read from the first layer that fixes it (``Linear``, a
    recurrent or ``LILinear`` layer), behind layers that keep the shape."""
    for name, module in layers:
        if isinstance(module, nn.Linear):
            return (module.in_features,)
        if isinstance(module, (NeuronRecurrent, LILinear)):
            return (module.input_size,)
        if not isinstance(module, (nn.Identity, nn.Dropout, Scale, NeuronSequence)):
            raise NIRExportError(
                f"give input_shape=(...), the per-sample shape of the network's input: it "
                f"cannot be read from layer {name!r} ({type(module).__name__})"
            )
    raise NIRExportError("give input_shape=(...), the per-sample shape of the network's input")


def _output_shape(module: nn.Module, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Per-sample output shape of a stateless layer (run on zeros of its dtype, two samples)."""
    tensors = [*module.parameters(), *module.buffers()]
    like = tensors[0] if tensors else torch.zeros(())
    with torch.no_grad():
        return tuple(module(like.new_zeros(2, *shape)).shape[1:])


def _pair(value: Any) -> np.ndarray:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    return np.array(values, dtype=np.int64)


class _GraphBuilder:
    """Appends the NIR nodes of one layer after another, tracking the per-sample shape, whether
    the signal is spikes (0/1), a pending input scale and the last foldable layer."""

    def __init__(
        self, input_shape: tuple[int, ...], dt: float, resistance: str, readout: str
    ) -> None:
        self.input_shape = input_shape
        self.shape = input_shape
        self.dt = dt
        self.resistance = resistance
        self.readout = readout
        self.nodes: dict[str, nir.NIRNode] = {}
        self.chain: list[str] = []
        self.cycles: dict[str, list[tuple[str, str]]] = {}
        self.spikes = False
        self.scale: tuple[str, float | torch.Tensor] | None = None
        self.foldable: str | None = None

    def append(self, name: str, node: nir.NIRNode) -> None:
        self.nodes[name] = node
        self.chain.append(name)

    def add(self, name: str, module: nn.Module) -> None:
        """Append the nodes of layer ``name``; raise :class:`NotExpressible` if it has none."""
        if isinstance(module, Scale):
            previous = 1.0 if self.scale is None else self.scale[1]
            self.scale = (name, previous * module.factor)
            self.spikes, self.foldable = False, None
            return
        if not isinstance(module, NeuronModule) or isinstance(module, LILinear):
            self.flush_scale()
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            self.fold_batch_norm(module)
            return
        foldable = None
        if isinstance(module, NeuronRecurrent):
            self.add_recurrent(name, module)
        elif isinstance(module, LILinear):
            self.append(f"{name}.linear", nir.Linear(weight=weights(module.linear.weight)))
            self.add_neuron(name, module, (*self.shape[:-1], module.hidden_size))
        elif isinstance(module, NeuronSequence):
            self.add_neuron(name, module, self.shape)
        elif isinstance(module, (nn.Identity, nn.Dropout)):
            if isinstance(module, nn.Dropout) and module.training and module.p > 0:
                raise NotExpressible(
                    "dropout in training mode is random; call network.eval() first (in eval "
                    "mode it is the identity and is left out)"
                )
        else:
            self.add_stateless(name, module)
            foldable = name if isinstance(module, (nn.Linear, nn.Conv2d)) else None
        self.foldable = foldable

    def flush_scale(self) -> None:
        """Write a pending scale that no neuron follows as a ``Scale`` node."""
        if self.scale is not None:
            name, factor = self.scale
            self.append(name, nir.Scale(scale=full(factor, self.shape)))
            self.scale = None

    def take_gain(self, shape: tuple[int, ...]) -> np.ndarray:
        """The pending input scale broadcast to ``shape`` (ones if none), consumed."""
        factor = 1.0 if self.scale is None else self.scale[1]
        self.scale = None
        return full(factor, shape)

    def add_neuron(self, name: str, module: NeuronModule, shape: tuple[int, ...]) -> None:
        p = module.p
        extra: dict[str, Any] = {"class": type(module).__name__}
        if "method" in p._fields:
            extra.update(method=str(p.method), alpha=float(p.alpha))
        extra["learnable"] = ",".join(module.learnable)
        context = ExportContext(
            self.dt, shape, self.take_gain(shape), self.resistance, self.readout
        )
        for suffix, node in export_neuron(module.model.name, p, context, extra):
            self.append(f"{name}{suffix}", node)
        self.shape = shape
        self.spikes = module.model.spiking

    def add_recurrent(self, name: str, module: NeuronRecurrent) -> None:
        input_weights = module.input_weights.detach().to(torch.float64)
        gain = self.take_gain(self.shape)
        input_weights = input_weights * torch.as_tensor(gain.reshape(1, -1))
        self.append(f"{name}.input_weights", nir.Linear(weight=weights(input_weights)))
        self.add_neuron(name, module, (module.hidden_size,))
        recurrent = f"{name}.recurrent_weights"
        weight = weights(module.effective_recurrent_weights())
        self.nodes[recurrent] = nir.Linear(weight=weight)
        self.cycles[name] = [(name, recurrent), (recurrent, name)]

    def add_stateless(self, name: str, module: nn.Module) -> None:
        shape = _output_shape(module, self.shape)
        spikes = False
        if isinstance(module, nn.Linear):
            if module.bias is None:
                self.append(name, nir.Linear(weight=weights(module.weight)))
            else:
                self.append(
                    name, nir.Affine(weight=weights(module.weight), bias=weights(module.bias))
                )
        elif isinstance(module, nn.Conv2d):
            self.append(name, self.conv(module))
        elif isinstance(module, SumPool2d):
            self.append(name, nir.SumPool2d(**self.pool_fields(module)))
        elif isinstance(module, nn.AvgPool2d):
            self.check_avg_pool(module)
            self.append(name, nir.AvgPool2d(**self.pool_fields(module)))
        elif isinstance(module, nn.MaxPool2d):
            self.check_max_pool(module)
            self.append(name, nir.SumPool2d(**self.pool_fields(module)))
            threshold = nir.Threshold(threshold=full(MAX_POOL_THRESHOLD, shape))
            self.append(f"{name}.threshold", threshold)
            spikes = True
        elif isinstance(module, nn.Flatten):
            spikes = self.spikes
            self.append(name, self.flatten(module))
        else:
            raise NotExpressible(
                f"NIR has no node for {type(module).__name__} (exportable: Linear, Conv2d, "
                f"AvgPool2d, SumPool2d, MaxPool2d of spikes, Flatten, Scale, BatchNorm in eval "
                f"mode, Dropout in eval mode and the neuron layers of LIF, LIFBox, PLIF, IAF, LI, "
                f"LIBox)"
            )
        self.shape, self.spikes = shape, spikes

    def conv(self, module: nn.Conv2d) -> nir.Conv2d:
        if module.padding_mode != "zeros":
            raise NotExpressible(
                f"padding_mode={module.padding_mode!r} is not expressible (NIR pads with zeros)"
            )
        padding = module.padding if isinstance(module.padding, str) else tuple(module.padding)
        bias = module.bias if module.bias is not None else torch.zeros(module.out_channels)
        return nir.Conv2d(
            input_shape=tuple(self.shape[1:]),
            weight=weights(module.weight),
            stride=tuple(module.stride),
            padding=padding,
            dilation=tuple(module.dilation),
            groups=module.groups,
            bias=weights(bias),
        )

    @staticmethod
    def pool_fields(module: nn.Module) -> dict[str, np.ndarray]:
        stride = module.stride if module.stride is not None else module.kernel_size
        return {
            "kernel_size": _pair(module.kernel_size),
            "stride": _pair(stride),
            "padding": _pair(module.padding),
        }

    @staticmethod
    def check_avg_pool(module: nn.AvgPool2d) -> None:
        if module.ceil_mode:
            raise NotExpressible("ceil_mode=True is not expressible (NIR pools whole windows)")
        if module.divisor_override is not None:
            raise NotExpressible("divisor_override is not expressible (NIR averages)")
        if not module.count_include_pad and np.any(_pair(module.padding) > 0):
            raise NotExpressible(
                "count_include_pad=False with padding is not expressible (NIR's average counts "
                "the padded zeros)"
            )

    def check_max_pool(self, module: nn.MaxPool2d) -> None:
        if not self.spikes:
            raise NotExpressible(
                "NIR has no max pooling; it is exported only where it pools spikes (right after "
                "a spiking layer, where max = 1 exactly if the window sum > 0.5), not here"
            )
        if module.ceil_mode or module.return_indices or np.any(_pair(module.dilation) != 1):
            raise NotExpressible(
                "max pooling with ceil_mode, return_indices or dilation is not expressible"
            )

    def flatten(self, module: nn.Flatten) -> nir.Flatten:
        if module.start_dim < 1:
            raise NotExpressible(f"start_dim={module.start_dim} would flatten the batch dimension")
        end = module.end_dim - 1 if module.end_dim > 0 else module.end_dim
        return nir.Flatten(
            input_type={"input": np.array(self.shape)}, start_dim=module.start_dim - 1, end_dim=end
        )

    def fold_batch_norm(self, module: nn.modules.batchnorm._BatchNorm) -> None:
        r"""Fold eval-mode batch norm into the layer before it: :math:`W' = \gamma W /
        \sqrt{\sigma^2 + \epsilon}`, :math:`b' = \gamma (b - \mu) / \sqrt{\sigma^2 + \epsilon}
        + \beta`, per output feature or channel."""
        if module.training or module.running_mean is None:
            raise NotExpressible(
                "batch norm in training mode normalises with each batch's statistics; call "
                "network.eval() first to fold it into the Linear/Conv2d before it"
            )
        if self.foldable is None:
            raise NotExpressible(
                "batch norm is folded into a Linear or Conv2d layer right before it; there is "
                "none here"
            )
        node = self.nodes[self.foldable]
        factor = module.weight.detach().double() if module.weight is not None else 1.0
        factor = factor / torch.sqrt(module.running_var.double() + module.eps)
        shift = -module.running_mean.double() * factor
        if module.bias is not None:
            shift = shift + module.bias.detach().double()
        weight = torch.as_tensor(node.weight, dtype=torch.float64)
        bias = torch.as_tensor(
            getattr(node, "bias", np.zeros(weight.shape[0])), dtype=torch.float64
        )
        folded_weight = weights(weight * factor.reshape(-1, *([1] * (weight.dim() - 1))))
        folded_bias = weights(bias * factor + shift)
        if isinstance(node, nir.Conv2d):
            node.weight, node.bias = folded_weight, folded_bias
        else:
            self.nodes[self.foldable] = nir.Affine(weight=folded_weight, bias=folded_bias)

    def graph(self, metadata: dict[str, Any]) -> nir.NIRGraph:
        names = set(self.nodes)
        source = _unused("input", names)
        sink = _unused("output", names | {source})
        nodes = {
            source: nir.Input(input_type={"input": np.array(self.input_shape)}),
            **self.nodes,
            sink: nir.Output(output_type={"output": np.array(self.shape)}),
        }
        chain = [source, *self.chain, sink]
        # Each cycle right after the edge into its neuron, before the neuron's forward edge: the
        # order in which a step evaluates them (Norse's executor returns the output of the
        # node its depth-first walk of the edges reaches last, which is then the Output node).
        edges = []
        for a, b in itertools.pairwise(chain):
            edges += [(a, b), *self.cycles.get(b, [])]
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata, type_check=True)


def _unused(name: str, taken: set[str]) -> str:
    candidate, index = name, 0
    while candidate in taken:
        index += 1
        candidate = f"{name}_{index}"
    return candidate


def to_nir(
    network: nn.Module,
    dt: float | None = None,
    *,
    input_shape: Iterable[int] | None = None,
    resistance: str = "unit",
    readout: str = "cuba_li",
    metadata: dict[str, Any] | None = None,
) -> nir.NIRGraph:
    """The NIR graph of ``network`` (a :class:`SpikingNetwork` or :class:`SequentialState`).

    Simulated by forward Euler with step ``dt`` under the conventions of
    :mod:`spikeexp.nir.conventions` (recorded in the graph's metadata), the graph gives the
    network's spikes and voltages step for step.

    Args:
        network: the network, as it runs now (call ``network.eval()`` first: dropout and batch
            norm in training mode are refused).
        dt: integration step (s); default: the step of the network's neuron layers (a different
            value is refused: the graph describes the network as it runs).
        input_shape: per-sample shape of the network's input (the encoder's output, e.g.
            ``(1, 28, 28)``); read from the first layer when that is a ``Linear`` or a recurrent
            layer.
        resistance: ``unit`` (voltages as spikeexp's) or ``tau_over_dt``
            (:math:`R = \\tau_{mem}/\\Delta t`, the form snnTorch's importer requires).
        readout: ``cuba_li`` (one ``CubaLI`` per LI layer) or ``li_li`` (two ``LI`` nodes).
        metadata: more graph metadata (strings, numbers or arrays), e.g. the encoder used.

    Raises:
        NIRExportError: a layer NIR cannot express, naming it and the reason.
    """
    if resistance not in RESISTANCES:
        raise NIRExportError(
            f"resistance must be one of {', '.join(RESISTANCES)} (got {resistance!r})"
        )
    if readout not in READOUTS:
        raise NIRExportError(f"readout must be one of {', '.join(READOUTS)} (got {readout!r})")
    layers = _layers(network)
    step = _network_dt(layers, dt)
    shape = tuple(int(size) for size in input_shape) if input_shape is not None else None
    builder = _GraphBuilder(shape or _input_shape(layers), step, resistance, readout)
    for name, module in layers:
        try:
            builder.add(name, module)
        except NotExpressible as reason:
            raise NIRExportError(f"layer {name!r} ({type(module).__name__}): {reason}") from None
        except (RuntimeError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise NIRExportError(
                f"layer {name!r} ({type(module).__name__}) does not fit its input of shape "
                f"{builder.shape} per sample: {first}"
            ) from None
    builder.flush_scale()
    return builder.graph(graph_metadata(step, resistance, metadata))


def write_nir(graph: nir.NIRGraph, path: str | os.PathLike[str]) -> Path:
    """Write ``graph`` to the HDF5 file ``path`` atomically: a failure leaves no file, or the
    previous one, never a half-written one. Returns the path."""
    return atomic_write(path, lambda temporary: nir.write(temporary, graph))


def export_nir(network: nn.Module, path: str | os.PathLike[str], **options: Any) -> nir.NIRGraph:
    """:func:`to_nir` with ``options``, then :func:`write_nir` to ``path``; nothing is written if
    the network cannot be exported. Returns the graph."""
    graph = to_nir(network, **options)
    write_nir(graph, path)
    return graph
