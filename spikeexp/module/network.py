"""A whole spiking network as one module, and the constant input scaling between layers.

:class:`SpikingNetwork` is what the engine's topology builders
(:mod:`spikeexp.engine.topology`) produce and what NIR export and import convert: a
:class:`~spikeexp.module.SequentialState` of named layers that also records the spikes of every
spiking layer in each forward pass, and lets its plastic connections
(:mod:`spikeexp.module.plastic`) learn from those spikes.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from spikeexp.module.container import SequentialState
from spikeexp.module.plastic import PlasticConnection


class Scale(nn.Module):
    """Multiply the input by a constant ``factor`` (dimensionless): ``y = factor * x``.

    ``factor`` is a number, or a tensor that broadcasts against the trailing (per-sample)
    dimensions of the input, e.g. one factor per neuron ``[features]`` (held as a buffer).
    """

    time_invariant = True  # see spikeexp.module.container.is_time_invariant

    def __init__(self, factor: float | torch.Tensor) -> None:
        super().__init__()
        if isinstance(factor, torch.Tensor) and factor.numel() > 1:
            self.register_buffer("factor", factor.detach().clone())
        else:
            self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor

    def extra_repr(self) -> str:
        if isinstance(self.factor, torch.Tensor):
            return f"factor=tensor of shape {list(self.factor.shape)}"
        return f"factor={self.factor:g}"


class SpikingNetwork(nn.Module):
    """A :class:`SequentialState` that also records the output of every spiking layer.

    ``readout, state = net(x)`` with ``x`` of shape ``[T, batch, ...]`` starts from rest (a fresh
    state), ``net(x, state)`` continues. After a call, :attr:`records` maps each spiking layer's
    name to its spikes ``[T, batch, ...]`` (collected by forward hooks, still in the graph, so
    regularisers can use them).

    ``plastic`` maps the name of each plastic connection
    (:class:`~spikeexp.module.plastic.PlasticConnection`) to the spiking layer it drives. After
    every forward pass in training mode each of them observes that layer's spikes and learns
    (:meth:`PlasticConnection.observe`); reward-modulated ones wait for :meth:`reward`, and
    connections in ``grad`` mode for :meth:`write_plastic_grads` after ``loss.backward()``.
    """

    def __init__(
        self,
        layers: Mapping[str, nn.Module],
        spiking_layers: list[str],
        plastic: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.layers = SequentialState(OrderedDict(layers))
        self.spiking_layers = list(spiking_layers)
        self.plastic = dict(plastic or {})
        for connection, post in self.plastic.items():
            if not isinstance(self.layers._modules.get(connection), PlasticConnection):
                raise ValueError(f"plastic: {connection!r} is not a plastic connection layer")
            if post not in self.spiking_layers:
                raise ValueError(
                    f"plastic: connection {connection!r} drives {post!r}, which is not a spiking "
                    f"layer; valid: {', '.join(self.spiking_layers)}"
                )
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
        out = self.layers(x, state)
        if self.training:
            for name, connection in self.plastic_connections().items():
                connection.observe(self.records[self.plastic[name]])
        return out

    def plastic_connections(self) -> dict[str, PlasticConnection]:
        """The plastic connections by layer name."""
        return {name: self.layers.get_submodule(name) for name in self.plastic}

    @property
    def modulated(self) -> bool:
        """Whether a connection learns by a reward-modulated rule (needs :meth:`reward`)."""
        return any(c.rule.modulated for c in self.plastic_connections().values())

    def reward(self, reward: torch.Tensor | float) -> None:
        """Deliver the reward of the last training sequence (``[batch]`` or one number) to every
        reward-modulated connection."""
        for connection in self.plastic_connections().values():
            if connection.rule.modulated and connection.training and connection.plastic:
                connection.reward(reward)

    def write_plastic_grads(self) -> None:
        """Add the pending changes of connections in ``grad`` mode to their ``.grad``."""
        for connection in self.plastic_connections().values():
            connection.write_grad()
