"""A small forward-Euler simulator of NIR graphs, written from NIR's node equations and the
conventions in the graph metadata, independent of spikeexp's code (float64, batch first).

Conventions: step ``dt``; spikes of amplitude 1; inside a node the current first, then the
voltage from the new current, then threshold (strictly greater) and reset; rest as the initial
state (``IF``: ``v_reset``); a cycle's back edge carries the previous step's output.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
from torch.nn import functional

Signal = torch.Tensor


def _order(graph: nir.NIRGraph) -> tuple[list[str], set[tuple[str, str]]]:
    """Nodes in depth-first finishing order reversed (topological without back edges), and the
    back edges (those that point to a node that comes earlier)."""
    successors: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for a, b in graph.edges:
        successors[a].append(b)
    finished: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        seen.add(name)
        for child in successors[name]:
            if child not in seen:
                visit(child)
        finished.append(name)

    (source,) = [n for n, node in graph.nodes.items() if isinstance(node, nir.Input)]
    visit(source)
    order = finished[::-1]
    position = {name: i for i, name in enumerate(order)}
    back = {(a, b) for a, b in graph.edges if position[b] <= position[a]}
    return order, back


def _array(value: np.ndarray) -> Signal:
    return torch.as_tensor(np.asarray(value), dtype=torch.float64)


class EulerSimulator:
    """Forward Euler over a NIR graph, float64, batch first in every signal."""

    def __init__(self, graph: nir.NIRGraph, dt: float) -> None:
        self.graph, self.dt = graph, dt
        self.order, self.back = _order(graph)
        self.sources = {name: [a for a, b in graph.edges if b == name] for name in graph.nodes}
        self.state: dict[str, dict[str, Signal]] = {}
        self.voltages: dict[str, list[Signal]] = {}

    def run(self, x: Signal) -> dict[str, Signal]:
        """Every node's output ``[T, batch, ...]`` for the input sequence ``x``."""
        previous: dict[str, Signal] = {}
        history: dict[str, list[Signal]] = {name: [] for name in self.order}
        for step in x:
            current: dict[str, Signal] = {}
            for name in self.order:
                node = self.graph.nodes[name]
                if isinstance(node, nir.Input):
                    current[name] = step
                    continue
                inputs = [
                    previous.get(a) if (a, name) in self.back else current[a]
                    for a in self.sources[name]
                ]
                inputs = [value for value in inputs if value is not None]
                total = torch.stack(inputs).sum(0) if len(inputs) > 1 else inputs[0]
                current[name] = self.apply(name, node, total)
                history[name].append(current[name])
            previous = current
        return {name: torch.stack(values) for name, values in history.items() if values}

    def apply(self, name: str, node: nir.NIRNode, x: Signal) -> Signal:
        dt = self.dt
        if isinstance(node, nir.Output):
            return x
        if isinstance(node, nir.Affine):
            return x @ _array(node.weight).T + _array(node.bias)
        if isinstance(node, nir.Linear):
            return x @ _array(node.weight).T
        if isinstance(node, nir.Scale):
            return x * _array(node.scale)
        if isinstance(node, nir.Flatten):
            return x.flatten(int(node.start_dim) + 1, int(node.end_dim) + (node.end_dim >= 0))
        if isinstance(node, nir.Conv2d):
            return functional.conv2d(
                x,
                _array(node.weight),
                _array(node.bias),
                tuple(node.stride),
                node.padding if isinstance(node.padding, str) else tuple(node.padding),
                tuple(node.dilation),
                int(node.groups),
            )
        if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
            kernel, stride = tuple(node.kernel_size), tuple(node.stride)
            padding = tuple(int(p) for p in node.padding)
            summed = functional.avg_pool2d(x, kernel, stride, padding, divisor_override=1)
            return summed if isinstance(node, nir.SumPool2d) else summed / (kernel[0] * kernel[1])
        if isinstance(node, nir.Threshold):
            return (x > _array(node.threshold)).to(x.dtype)
        return self.neuron(name, node, x, dt)

    def neuron(self, name: str, node: nir.NIRNode, x: Signal, dt: float) -> Signal:
        """NIR's neuron equations, one Euler step."""
        rest = _array(node.v_reset if isinstance(node, nir.IF) else node.v_leak)
        state = self.state.setdefault(
            name, {"v": rest.expand_as(x).clone(), "i": torch.zeros_like(x)}
        )
        r = _array(node.r)
        if isinstance(node, (nir.CubaLIF, nir.CubaLI)):
            tau_syn, tau_mem = _array(node.tau_syn), _array(node.tau_mem)
            state["i"] = state["i"] + dt / tau_syn * (-state["i"] + _array(node.w_in) * x)
            drive = r * state["i"]
        elif isinstance(node, nir.IF):
            state["v"] = state["v"] + dt * r * x
        else:
            tau_mem, drive = _array(node.tau), r * x
        if not isinstance(node, nir.IF):
            state["v"] = state["v"] + dt / tau_mem * (_array(node.v_leak) - state["v"] + drive)
        if isinstance(node, (nir.LI, nir.CubaLI)):
            self.voltages.setdefault(name, []).append(state["v"])
            return state["v"]
        spikes = (state["v"] > _array(node.v_threshold)).to(x.dtype)
        state["v"] = torch.where(spikes > 0, _array(node.v_reset).expand_as(x), state["v"])
        self.voltages.setdefault(name, []).append(state["v"])
        return spikes
