"""Build a spikeexp network from a NIR graph: :func:`from_nir`, :func:`read_nir`.

The result is what the experiments use: a :class:`~spikeexp.module.SpikingNetwork` of
:class:`~spikeexp.module.Lift`-ed stateless layers and neuron sequence modules, ready to run on
``[T, batch, ...]`` input, to train further or to export again. Node names become layer names
(``.`` replaced by ``_``).

==========================================  ================================================
NIR                                         spikeexp layer
==========================================  ================================================
``Affine``, ``Linear``                      ``nn.Linear`` (with, without bias)
``Conv2d``                                  ``nn.Conv2d``
``AvgPool2d``, ``SumPool2d``                ``nn.AvgPool2d``, :class:`SumPool2d`
``SumPool2d`` + ``Threshold`` (in [0, 1))   max pooling, where the input is spikes
``Flatten``                                 ``nn.Flatten`` (dimensions shifted by the batch)
``Scale``                                   :class:`Scale`
``CubaLIF``, ``LIF``, ``IF``                ``LIF``, ``LIFBox`` (``PLIF`` if its metadata says
                                            so), ``IAF``; a gain on the input other than 1
                                            becomes a :class:`Scale` layer ``scale_<name>``
``CubaLI``, ``LI``                          ``LI``, ``LIBox``; ``LI`` -> ``LI`` with no leak
                                            voltage in the first: one ``LI``
neuron with a ``Linear``/``Affine`` cycle   the model's ``XRecurrent`` layer (input weights:
                                            the ``Linear`` before it, or the identity)
``Input``, ``Output``                       the network's ends
nested ``NIRGraph``                         inlined (its nodes named ``<graph>.<node>``)
==========================================  ================================================

The graph must be a chain from its input to its output, recurrence only as a ``Linear`` or
``Affine`` back edge on a neuron node. Anything else is refused with
:class:`~spikeexp.nir.conventions.NIRImportError`, one line naming the node.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from spikeexp.functional.neurons import MODELS
from spikeexp.module.container import Lift
from spikeexp.module.network import Scale, SpikingNetwork
from spikeexp.module.neuron import NEURON_MODULES
from spikeexp.module.pool import FusedMaxPool2d, SumPool2d
from spikeexp.nir.conventions import NIRImportError, is_one, parameter, uniform
from spikeexp.nir.neurons import (
    IMPORTERS,
    ImportedNeuron,
    NotExpressible,
    import_neuron,
    merge_li_chain,
    neuron_options,
)

NEURON_NODES = tuple(IMPORTERS)
WEIGHT_NODES = (nir.Linear, nir.Affine)
SUPPORTED = (
    "Input, Output, Affine, Linear, Scale, Conv2d, SumPool2d, AvgPool2d, Flatten, CubaLIF, LIF, "
    "IF, CubaLI, LI, Threshold after SumPool2d of spikes, nested NIRGraph"
)


def read_nir(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """Read a NIR file (HDF5); a missing or malformed file is a one-line :class:`NIRImportError`."""
    file = Path(path)
    if not file.is_file():
        raise NIRImportError(f"NIR file {file} does not exist")
    try:
        return nir.read(file)
    except (OSError, KeyError, ValueError, AssertionError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NIRImportError(f"{file} is not a readable NIR graph ({first})") from None


def _graph_dt(graph: nir.NIRGraph, dt: float | None) -> float:
    stored = (graph.metadata or {}).get("dt") if isinstance(graph.metadata, dict) else None
    if dt is None and stored is None:
        raise NIRImportError(
            "give dt=<seconds>: the graph's metadata records no dt, and NIR's continuous-time "
            "equations need one to be stepped"
        )
    step = float(dt if dt is not None else stored)
    if not (math.isfinite(step) and step > 0):
        raise NIRImportError(f"dt must be > 0 seconds (got {step})")
    return step


def _inline(graph: nir.NIRGraph) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]]]:
    """Nodes and edges of ``graph`` with every nested graph replaced by its own nodes."""
    nodes: dict[str, nir.NIRNode] = {}
    edges = [(str(a), str(b)) for a, b in graph.edges]
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner_nodes, inner_edges = _inline(node)
        entries = [n for n, inner in inner_nodes.items() if isinstance(inner, nir.Input)]
        exits = [n for n, inner in inner_nodes.items() if isinstance(inner, nir.Output)]
        if len(entries) != 1 or len(exits) != 1:
            raise NIRImportError(
                f"node {name!r} (NIRGraph) needs one Input and one Output node to be inlined"
            )
        inside = [(a, b) for a, b in inner_edges if a not in entries and b not in exits]
        first = [b for a, b in inner_edges if a == entries[0]]
        last = [a for a, b in inner_edges if b == exits[0]]
        nodes.update(
            {f"{name}.{n}": inner for n, inner in inner_nodes.items() if n not in entries + exits}
        )
        rewired = [(f"{name}.{a}", f"{name}.{b}") for a, b in inside]
        for a, b in edges:
            if b == name:
                rewired += [(a, f"{name}.{target}") for target in first]
            elif a == name:
                rewired += [(f"{name}.{source}", b) for source in last]
            else:
                rewired.append((a, b))
        edges = rewired
    return nodes, edges


def _structure(
    nodes: dict[str, nir.NIRNode], edges: list[tuple[str, str]]
) -> tuple[str, list[str], dict[str, str]]:
    """The Input node, the chain of nodes from it to the Output node, and each recurrent
    neuron's back-edge weight node."""
    for a, b in edges:
        for end in (a, b):
            if end not in nodes:
                raise NIRImportError(f"edge ({a!r}, {b!r}) names a node {end!r} the graph lacks")
        if a == b:
            raise NIRImportError(
                f"node {a!r} connects to itself; spikeexp reads recurrence as a Linear or Affine "
                f"node on a cycle through a neuron"
            )
    ends = {}
    for kind in (nir.Input, nir.Output):
        found = [name for name, node in nodes.items() if isinstance(node, kind)]
        if len(found) != 1:
            raise NIRImportError(f"the graph needs exactly one {kind.__name__} node (got {found})")
        ends[kind] = found[0]
    successors, predecessors = defaultdict(list), defaultdict(list)
    for a, b in edges:
        successors[a].append(b)
        predecessors[b].append(a)
    recurrent = {}
    for name, node in nodes.items():
        sources = predecessors[name]
        if isinstance(node, WEIGHT_NODES) and len(sources) == 1 and successors[name] == sources:
            neuron = sources[0]
            if isinstance(nodes[neuron], NEURON_NODES):
                if neuron in recurrent:
                    raise NIRImportError(f"node {neuron!r} has more than one recurrent edge")
                recurrent[neuron] = name
    for neuron, weight in recurrent.items():
        successors[neuron].remove(weight)
        predecessors[neuron].remove(weight)
    chain, current = [], ends[nir.Input]
    while True:
        following = successors[current]
        if len(following) != 1:
            raise NIRImportError(
                f"node {current!r} has {len(following)} outgoing edges {following}; spikeexp "
                f"builds a chain from input to output (recurrence only as a Linear back edge)"
            )
        target = following[0]
        if len(predecessors[target]) != 1:
            raise NIRImportError(
                f"node {target!r} has {len(predecessors[target])} incoming edges "
                f"{predecessors[target]}; spikeexp builds a chain from input to output"
            )
        if target == ends[nir.Output]:
            break
        if target in chain:
            raise NIRImportError(f"node {target!r} closes a cycle spikeexp cannot read")
        chain.append(target)
        current = target
    unused = set(nodes) - set(chain) - set(recurrent.values()) - set(ends.values())
    if unused:
        raise NIRImportError(f"node {sorted(unused)[0]!r} is not on the path from input to output")
    return ends[nir.Input], chain, recurrent


def _layer_name(name: str) -> str:
    return name.replace(".", "_")


def _tensor(array: Any) -> torch.Tensor:
    return torch.as_tensor(np.array(array, dtype=np.float32))


def _pair(value: Any) -> tuple[int, int]:
    values = np.asarray(value, dtype=np.int64).reshape(-1)
    return (int(values[0]), int(values[-1]))


class _NetworkBuilder:
    """Turns the chain of nodes into layers, tracking the per-sample shape and whether the
    signal is spikes (for max pooling)."""

    def __init__(
        self,
        nodes: dict[str, nir.NIRNode],
        recurrent: dict[str, str],
        input_shape: tuple[int, ...],
        dt: float,
        backend: str,
    ) -> None:
        self.nodes = nodes
        self.recurrent = recurrent
        self.shape = input_shape
        self.dt = dt
        self.backend = backend
        self.layers: OrderedDict[str, nn.Module] = OrderedDict()
        self.origin: dict[str, nir.NIRNode] = {}
        self.spiking: list[str] = []
        self.spikes = False

    def add(self, name: str, module: nn.Module, node: nir.NIRNode) -> None:
        """Append layer ``name`` and compute its output shape on zeros ``[1, 2, *shape]``."""
        layer = _layer_name(name)
        if layer in self.layers:
            raise NIRImportError(f"node {name!r}: a second layer would be named {layer!r}")
        with torch.no_grad():
            out = module(torch.zeros(1, 2, *self.shape))
        out = out[0] if isinstance(out, tuple) else out
        self.shape = tuple(out.shape[2:])
        self.layers[layer] = module
        self.origin[layer] = node

    def build(self, chain: list[str]) -> SpikingNetwork:
        index = 0
        while index < len(chain):
            name, node = chain[index], self.nodes[chain[index]]
            following = chain[index + 1] if index + 1 < len(chain) else None
            try:
                index += self.convert(name, node, following)
            except NotExpressible as reason:
                raise NIRImportError(f"node {name!r} ({type(node).__name__}): {reason}") from None
            except (RuntimeError, ValueError) as error:
                if isinstance(error, NIRImportError):
                    raise
                first = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise NIRImportError(f"node {name!r} ({type(node).__name__}): {first}") from None
        return SpikingNetwork(self.layers, self.spiking)

    def convert(self, name: str, node: nir.NIRNode, following_name: str | None) -> int:
        """Append the layer(s) of ``node`` (``following_name``: the next node in the chain);
        return how many chain nodes were consumed."""
        following = self.nodes[following_name] if following_name is not None else None
        spikes = False
        if isinstance(node, NEURON_NODES):
            return self.add_neuron(name, node, following_name)
        if isinstance(node, WEIGHT_NODES):
            self.add(name, Lift(self.linear(node)), node)
        elif isinstance(node, nir.Conv2d):
            self.add(name, Lift(self.conv(node)), node)
        elif isinstance(node, nir.SumPool2d) and self.is_max_pool(following):
            self.add(name, Lift(self.max_pool(node)), node)
            self.spikes = True
            return 2
        elif isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            pool = SumPool2d if isinstance(node, nir.SumPool2d) else nn.AvgPool2d
            fields = (_pair(node.kernel_size), _pair(node.stride), _pair(node.padding))
            self.add(name, Lift(pool(*fields)), node)
        elif isinstance(node, nir.Flatten):
            start, end = int(node.start_dim), int(node.end_dim)
            self.add(name, Lift(nn.Flatten(start + 1, end + 1 if end >= 0 else end)), node)
            spikes = self.spikes
        elif isinstance(node, nir.Scale):
            self.add(name, Lift(Scale(parameter(node.scale))), node)
        elif isinstance(node, nir.Threshold):
            raise NotExpressible(
                "a Threshold is read only right after a SumPool2d of spikes (max pooling)"
            )
        else:
            raise NotExpressible(f"{type(node).__name__} is not supported (supported: {SUPPORTED})")
        self.spikes = spikes
        return 1

    @staticmethod
    def linear(node: nir.Affine | nir.Linear) -> nn.Linear:
        weight = np.asarray(node.weight)
        if weight.ndim != 2:
            raise NotExpressible(f"weight of shape {weight.shape} (spikeexp reads 2-D weights)")
        bias = getattr(node, "bias", None)
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        with torch.no_grad():
            layer.weight.copy_(_tensor(weight))
            if bias is not None:
                layer.bias.copy_(_tensor(bias).reshape(-1))
        return layer

    @staticmethod
    def conv(node: nir.Conv2d) -> nn.Conv2d:
        weight = np.asarray(node.weight)
        padding = node.padding if isinstance(node.padding, str) else _pair(node.padding)
        groups = int(node.groups)
        layer = nn.Conv2d(
            weight.shape[1] * groups,
            weight.shape[0],
            tuple(weight.shape[2:]),
            stride=_pair(node.stride),
            padding=padding,
            dilation=_pair(node.dilation),
            groups=groups,
        )
        with torch.no_grad():
            layer.weight.copy_(_tensor(weight))
            layer.bias.copy_(_tensor(node.bias).reshape(-1))
        return layer

    def is_max_pool(self, following: nir.NIRNode | None) -> bool:
        """A SumPool2d of spikes followed by a Threshold in [0, 1): the maximum of 0/1 values."""
        if not (self.spikes and isinstance(following, nir.Threshold)):
            return False
        value = uniform(following.threshold)
        return value is not None and 0.0 <= value < 1.0

    @staticmethod
    def max_pool(node: nir.SumPool2d) -> nn.MaxPool2d:
        kernel, stride, padding = (_pair(node.kernel_size), _pair(node.stride), _pair(node.padding))
        if kernel[0] == kernel[1] and stride == kernel and padding == (0, 0):
            return FusedMaxPool2d(kernel[0])
        return nn.MaxPool2d(kernel, stride, padding)

    def neuron_module(self, node: nir.NIRNode, imported: ImportedNeuron, **sizes: Any) -> nn.Module:
        model = MODELS[imported.model]
        cls = NEURON_MODULES[f"{model.prefix}{'Recurrent' if sizes else ''}"]
        options = neuron_options(node)
        if not model.spiking:
            options = {key: value for key, value in options.items() if key == "learnable"}
        return cls(**sizes, dt=self.dt, backend=self.backend, **imported.params, **options)

    def add_neuron(self, name: str, node: nir.NIRNode, following_name: str | None) -> int:
        following = self.nodes[following_name] if following_name is not None else None
        merged = (
            isinstance(node, nir.LI)
            and isinstance(following, nir.LI)
            and name not in self.recurrent
            and following_name not in self.recurrent
            and not np.any(np.asarray(node.v_leak))
        )
        if merged:
            imported = merge_li_chain(node, following, self.dt)
            name, node = following_name, following
        else:
            imported = import_neuron(node, self.dt)
        if name in self.recurrent:
            self.add_recurrent(name, node, imported)
        else:
            if not is_one(imported.gain):
                scale = Lift(Scale(parameter(imported.gain)))
                self.add(f"scale_{_layer_name(name)}", scale, node)
            self.add(name, self.neuron_module(node, imported), node)
        spiking = MODELS[imported.model].spiking
        if spiking:
            self.spiking.append(_layer_name(name))
        self.spikes = spiking
        return 2 if merged else 1

    def add_recurrent(self, name: str, node: nir.NIRNode, imported: ImportedNeuron) -> None:
        back = self.nodes[self.recurrent[name]]
        shape = tuple(np.asarray(node.output_type["output"]).tolist())
        if len(shape) != 1:
            raise NotExpressible(f"a recurrent neuron node needs a 1-D shape (got {shape})")
        hidden = int(shape[0])
        recurrent_weights = _tensor(back.weight)
        recurrent_bias = getattr(back, "bias", None)
        if recurrent_bias is not None and not np.any(np.asarray(recurrent_bias)):
            recurrent_bias = None
        last = next(reversed(self.layers), None)
        previous = self.origin.get(last) if last is not None else None
        absorb = (
            isinstance(previous, WEIGHT_NODES)
            and not np.any(np.asarray(getattr(previous, "bias", 0.0)))
            and recurrent_bias is None
        )
        if absorb:
            input_weights = _tensor(previous.weight)
            self.layers.popitem()
            self.shape = (input_weights.shape[1],)
        else:
            if recurrent_bias is not None:
                self.add_bias(name, previous, recurrent_bias)
            input_weights = torch.eye(hidden)
        gain = np.array(np.broadcast_to(np.asarray(imported.gain, dtype=np.float64), (hidden,)))
        if not is_one(gain):
            factor = torch.as_tensor(gain, dtype=torch.float64).reshape(-1, 1)
            input_weights = (input_weights.double() * factor).float()
            recurrent_weights = (recurrent_weights.double() * factor).float()
        module = self.neuron_module(
            node,
            imported,
            input_size=int(input_weights.shape[1]),
            hidden_size=hidden,
            autapses=bool(torch.any(torch.diagonal(recurrent_weights) != 0)),
        )
        with torch.no_grad():
            module.input_weights.copy_(input_weights)
            module.recurrent_weights.copy_(recurrent_weights)
        self.add(name, module, node)

    def add_bias(self, name: str, previous: nir.NIRNode | None, bias: Any) -> None:
        """Add a recurrent edge's bias to the bias of the ``Linear`` layer before the neuron."""
        if not isinstance(previous, WEIGHT_NODES):
            raise NotExpressible(
                f"the bias of its recurrent edge {self.recurrent[name]!r} needs a Linear or "
                f"Affine node right before it to be added to"
            )
        last = next(reversed(self.layers))
        old = self.layers[last].module
        layer = nn.Linear(old.in_features, old.out_features, bias=True)
        with torch.no_grad():
            layer.weight.copy_(old.weight)
            total = _tensor(bias).reshape(-1)
            layer.bias.copy_(total + (old.bias if old.bias is not None else 0.0))
        self.layers[last] = Lift(layer)


def from_nir(
    graph: nir.NIRGraph | str | os.PathLike[str], dt: float | None = None, backend: str = "auto"
) -> SpikingNetwork:
    """A spikeexp network from a NIR graph (or the path of a NIR file).

    The graph is read as :mod:`spikeexp.nir.conventions` describes (forward Euler with step
    ``dt``, spikes of amplitude 1, recurrence delayed by one step): the network reproduces the
    graph's spikes and voltages step for step. Its input is ``[T, batch, *shape]`` with
    ``shape`` the graph's ``Input`` shape.

    Args:
        graph: a :class:`nir.NIRGraph` or a path to a NIR (HDF5) file.
        dt: integration step (s); default: the ``dt`` in the graph's metadata.
        backend: time-loop backend of the neuron layers (see :class:`~spikeexp.module.LIF`).

    Raises:
        NIRImportError: an unknown node, an unsupported field value or a graph that is not a
            chain, naming the node.
    """
    if isinstance(graph, (str, os.PathLike)):
        graph = read_nir(graph)
    if not isinstance(graph, nir.NIRGraph):
        raise NIRImportError(f"from_nir reads a nir.NIRGraph (got {type(graph).__name__})")
    step = _graph_dt(graph, dt)
    nodes, edges = _inline(graph)
    source, chain, recurrent = _structure(nodes, edges)
    input_shape = tuple(int(size) for size in np.asarray(nodes[source].input_type["input"]))
    return _NetworkBuilder(nodes, recurrent, input_shape, step, backend).build(chain)
