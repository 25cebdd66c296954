r"""Plastic connections: dense and convolutional weights learnt by a local rule, and short-term
plasticity of transmission (the rules are in :mod:`spikeexp.functional.plasticity`).

A :class:`PlasticLinear` or :class:`PlasticConv2d` is used like ``Lift(nn.Linear)`` /
``Lift(nn.Conv2d)``: ``current = layer(x)`` for a time-first input ``x [T, batch, ...]``, with
the weights of the start of the sequence for every step. Learning takes two calls after the
forward pass of a training sequence, both under ``no_grad``:

1. :meth:`~PlasticConnection.observe` with the postsynaptic spikes ``[T, batch, ...]`` of the
   layer the connection drives (a :class:`~spikeexp.module.network.SpikingNetwork` does this
   itself after each training forward pass): the rule's change over the sequence,
   :math:`\Delta w = \sum_t \Delta w_t` with :math:`w` fixed, hard bounds applied once
   (:func:`~spikeexp.functional.plasticity.sequence.reference_weight_sequence`);
2. for reward-modulated rules, :meth:`~PlasticConnection.reward` with the reward of each sample
   ``[batch]`` (or one number), delivered at the last step of the sequence.

What happens to :math:`\Delta w` depends on ``mode``:

* ``direct``: ``w += dw``, then the hard bounds are enforced and, with ``normalize``, each
  postsynaptic neuron's incoming weights are scaled to sum to ``normalize`` (Diehl & Cook 2015).
  The weights are no ``nn.Parameter`` of any optimiser (``requires_grad=False``); gradients
  still flow through the connection to its input, so it can sit between gradient-trained layers.
* ``grad``: :meth:`~PlasticConnection.write_grad` adds :math:`-\Delta w` to ``weight.grad``
  (call it after ``loss.backward()``), so any optimiser applies the rule (plain SGD with
  ``lr=1`` applies it exactly); the loss gives the weights no gradient of its own. Bounds and
  normalisation are enforced at the start of the next forward pass.

In a data-parallel run (``torch.distributed`` initialised) the changes are summed over the
processes before they are applied, so every replica keeps the same weights: the change of the
global batch.

Rule state (traces, eligibility) starts from rest for every sequence; with ``carry_state`` it
continues from the previous sequence (for streams whose consecutive batches continue in time,
e.g. truncated BPTT chunks), restarting from rest when the batch shape changes. The carried state
is part of the ``state_dict`` (extra state), so a resumed run continues exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from spikeexp.functional.plasticity import RULES, Conv2d, Dense, PlasticityRule
from spikeexp.functional.plasticity.connection import Connection
from spikeexp.functional.plasticity.sequence import weight_sequence
from spikeexp.functional.validation import check_choice
from spikeexp.module.neuron import check_layer_sizes

MODES = ("direct", "grad")


def sum_over_processes(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed in place over the processes of a ``torch.distributed`` run (unchanged
    in a single process): the local changes of data-parallel replicas add up to the change of
    the global batch, the same on every replica."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(tensor)
    return tensor


def _rule(name: str | PlasticityRule, kind: str) -> PlasticityRule:
    rule = RULES.get(name) if isinstance(name, str) else name
    valid = [n for n, r in RULES.items() if r.kind == kind]
    if not isinstance(rule, PlasticityRule) or rule.kind != kind:
        raise ValueError(f"rule must be one of {', '.join(valid)} (got {name!r})")
    return rule


def _parameters(rule: PlasticityRule, p: Any, dt: float, overrides: dict[str, Any]) -> Any:
    p = rule.parameters() if p is None else p
    rule.check_type(p)
    unknown = sorted(set(overrides) - set(p._fields))
    if unknown:
        raise ValueError(
            f"unknown {rule.name} parameter {unknown[0]!r}; valid: {', '.join(p._fields)}"
        )
    return rule.prepare(p._replace(**overrides), dt)


class PlasticConnection(nn.Module):
    """Weights learnt by a local weight rule (module docstring); see the two subclasses.

    Args:
        weight: the initial weights (their shape fixes the connection's).
        connection: :class:`~spikeexp.functional.plasticity.Dense` or ``Conv2d`` geometry.
        rule: name of a weight rule in :data:`~spikeexp.functional.plasticity.RULES` (``stdp``,
            ``triplet``, ``mstdp``) or the rule itself.
        p: the rule's parameters tuple (default: its defaults).
        dt: integration step (s).
        mode: ``direct`` or ``grad`` (module docstring).
        normalize: target sum of each postsynaptic neuron's incoming weights, or ``None``.
        carry_state: continue the rule state across sequences (module docstring).
        **overrides: single rule parameters replacing those of ``p`` (``a_plus=0.01``).
    """

    stateful = False

    def __init__(
        self,
        weight: torch.Tensor,
        connection: Connection,
        rule: str | PlasticityRule = "stdp",
        p: Any = None,
        dt: float = 1e-3,
        mode: str = "direct",
        normalize: float | None = None,
        carry_state: bool = False,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.rule = _rule(rule, "weight")
        self.p = _parameters(self.rule, p, dt, overrides)
        self.dt = float(dt)
        check_choice("mode", mode, MODES)
        if normalize is not None and not (math.isfinite(normalize) and normalize > 0):
            raise ValueError(f"normalize must be null or a number > 0 (got {normalize!r})")
        self.mode = mode
        self.normalize = None if normalize is None else float(normalize)
        self.carry_state = bool(carry_state)
        self.connection = connection
        self.weight = nn.Parameter(weight, requires_grad=mode == "grad")
        self.plastic = True
        self._pre: torch.Tensor | None = None
        self._awaiting: tuple[torch.Tensor, torch.Tensor, Any] | None = None
        self._pending: torch.Tensor | None = None
        self._state: Any = None
        self.update_stats = {"updates": 0, "mean_abs": 0.0, "relative": 0.0}
        with torch.no_grad():
            self.project()

    # ------------------------------------------------------------------ forward

    def _apply_weights(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The input current ``[T, batch, ...]`` of ``x [T, batch, ...]``; in training mode the
        input is kept for :meth:`observe`."""
        if x.dim() < 2:
            raise ValueError(
                f"{type(self).__name__} expects time-first input [T, batch, ...] "
                f"(got shape {tuple(x.shape)})"
            )
        if self.mode == "grad":
            with torch.no_grad():
                self.project()
        weight = self.weight.detach() if self.mode == "grad" else self.weight
        if x.requires_grad and torch.is_grad_enabled():
            # Backward needs the weights of the forward pass; the update (direct mode) changes
            # them in place before that.
            weight = weight.clone()
        out = self._apply_weights(x, weight)
        if self.training and self.plastic:
            self._pre = x.detach()
        return out

    # ------------------------------------------------------------------ learning

    def _start_state(self, pre: torch.Tensor, post: torch.Tensor) -> Any:
        fresh = self.rule.initial_state(self.p, pre[0], post[0], self.weight)
        state = self._state
        same_shape = state is not None and all(
            a.shape == b.shape for a, b in zip(state, fresh, strict=True)
        )
        return state if self.carry_state and same_shape else fresh

    @torch.no_grad()
    def observe(self, post: torch.Tensor) -> None:
        """Learn from the last training forward pass and its postsynaptic spikes ``post``."""
        if not (self.training and self.plastic):
            return
        if self._pre is None:
            raise RuntimeError(
                f"{type(self).__name__}.observe() needs a training forward pass first"
            )
        pre, self._pre = self._pre, None
        post = post.detach().to(pre.dtype)
        if post.shape[:2] != pre.shape[:2]:
            raise ValueError(
                f"postsynaptic spikes must be [T, batch, ...] = {tuple(pre.shape[:2])} like the "
                f"input (got shape {tuple(post.shape)})"
            )
        state = self._start_state(pre, post)
        if self.rule.modulated:
            if self._awaiting is not None:
                raise RuntimeError(
                    f"the {self.rule.name} connection got no reward for its previous sequence; "
                    "call reward(r) after every training sequence"
                )
            self._awaiting = (pre, post, state)
            return
        dw, state = weight_sequence(
            self.rule, pre, post, self.weight, state, self.p, self.dt, self.connection
        )
        self._finish(dw, state)

    @torch.no_grad()
    def reward(self, reward: torch.Tensor | float) -> None:
        """Deliver the reward (``[batch]`` or one number, dimensionless) of the observed sequence
        at its last step (reward-modulated rules only)."""
        if not self.rule.modulated:
            raise RuntimeError(f"the {self.rule.name} rule takes no reward")
        if self._awaiting is None:
            raise RuntimeError("reward() needs an observed training sequence (observe() first)")
        pre, post, state = self._awaiting
        self._awaiting = None
        steps, batch = pre.shape[:2]
        rewards = torch.zeros(steps, batch, dtype=self.weight.dtype, device=self.weight.device)
        rewards[-1] = torch.as_tensor(reward, dtype=rewards.dtype, device=rewards.device)
        dw, state = weight_sequence(
            self.rule, pre, post, self.weight, state, self.p, self.dt, self.connection, rewards
        )
        self._finish(dw, state)

    def _finish(self, dw: torch.Tensor, state: Any) -> None:
        self._state = state if self.carry_state else None
        dw = sum_over_processes(dw)
        norm = self.weight.norm()
        stats = self.update_stats
        stats["updates"] += 1
        stats["mean_abs"] += float(dw.abs().mean())
        stats["relative"] += float(dw.norm() / norm) if float(norm) > 0 else 0.0
        if self.mode == "direct":
            self.weight.add_(dw)
            self.project()
        else:
            self._pending = dw if self._pending is None else self._pending + dw

    def write_grad(self) -> None:
        """``mode="grad"``: add the pending change as ``-dw`` to ``weight.grad`` (then clear it)."""
        if self._pending is None:
            return
        grad = -self._pending
        self._pending = None
        self.weight.grad = grad if self.weight.grad is None else self.weight.grad + grad

    @torch.no_grad()
    def project(self) -> None:
        """Enforce the hard bounds (if the rule has them on), then the normalisation."""
        if self.p.hard_bounds:
            low = torch.as_tensor(self.p.w_min, dtype=self.weight.dtype)
            high = torch.as_tensor(self.p.w_max, dtype=self.weight.dtype)
            self.weight.copy_(torch.minimum(torch.maximum(self.weight, low), high))
        if self.normalize is not None:
            sums = self.weight.sum(dim=tuple(range(1, self.weight.dim())), keepdim=True)
            self.weight.mul_(self.normalize / sums.clamp(min=torch.finfo(sums.dtype).tiny))

    def pop_update_stats(self) -> dict[str, float]:
        """Mean ``|dw|`` and ``||dw|| / ||w||`` per update since the last call, and the count."""
        stats = self.update_stats
        count = stats["updates"]
        self.update_stats = {"updates": 0, "mean_abs": 0.0, "relative": 0.0}
        if count == 0:
            return {"updates": 0.0}
        return {
            "updates": float(count),
            "mean_abs": stats["mean_abs"] / count,
            "relative": stats["relative"] / count,
        }

    # ------------------------------------------------------------------ checkpoints

    def get_extra_state(self) -> dict[str, Any]:
        if self._state is None:
            return {}
        return {"rule_state": dict(zip(self._state._fields, self._state, strict=True))}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        saved = state.get("rule_state") if isinstance(state, dict) else None
        self._state = None if saved is None else self.rule.state(**saved)

    def extra_repr(self) -> str:
        return (
            f"rule={self.rule.name}, mode={self.mode}, normalize={self.normalize}, "
            f"p={self.p}, dt={self.dt:g}"
        )


def _initial_weights(
    shape: tuple[int, ...], fan_in: int, init_range: Sequence[float] | None
) -> torch.Tensor:
    """Uniform in ``init_range``, or PyTorch's default for ``nn.Linear``/``nn.Conv2d``
    (:math:`U(-1/\\sqrt{fan_{in}}, 1/\\sqrt{fan_{in}})`)."""
    if init_range is None:
        bound = 1.0 / math.sqrt(fan_in)
        low, high = -bound, bound
    else:
        if len(init_range) != 2 or not init_range[0] < init_range[1]:
            raise ValueError(f"init_range must be [low, high] with low < high (got {init_range})")
        low, high = float(init_range[0]), float(init_range[1])
    return torch.empty(shape).uniform_(low, high)


class PlasticLinear(PlasticConnection):
    """A dense plastic connection ``w [out_features, in_features]``, no bias, input
    ``[T, batch, in_features]``.

    Args:
        in_features, out_features: sizes.
        init_range: ``[low, high]`` of uniform initial weights (before normalisation), or
            ``None`` for ``nn.Linear``'s default.
        input_shape: per-sample shape of the input before flattening (e.g. ``(1, 28, 28)``),
            used to show each neuron's weights as an image (receptive field); ``None`` if unknown.
        rule, p, dt, mode, normalize, carry_state, overrides: see :class:`PlasticConnection`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rule: str | PlasticityRule = "stdp",
        p: Any = None,
        dt: float = 1e-3,
        mode: str = "direct",
        normalize: float | None = None,
        init_range: Sequence[float] | None = None,
        carry_state: bool = False,
        input_shape: Sequence[int] | None = None,
        **overrides: Any,
    ) -> None:
        check_layer_sizes(in_features, out_features)
        weight = _initial_weights((out_features, in_features), in_features, init_range)
        super().__init__(weight, Dense(), rule, p, dt, mode, normalize, carry_state, **overrides)
        self.in_features = in_features
        self.out_features = out_features
        self.input_shape = None if input_shape is None else tuple(input_shape)

    def _apply_weights(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise ValueError(
                f"PlasticLinear expects input [T, batch, {self.in_features}] "
                f"(got shape {tuple(x.shape)})"
            )
        return F.linear(x, weight)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " + (
            super().extra_repr()
        )


class PlasticConv2d(PlasticConnection):
    """A convolutional plastic connection ``w [out, in, k, k]``, no bias, input
    ``[T, batch, in_channels, H, W]``; the rule's change of a shared weight sums over all the
    positions that use it (:mod:`spikeexp.functional.plasticity.connection`).

    Args:
        in_channels, out_channels, kernel_size, stride, padding, dilation: as ``nn.Conv2d``.
        init_range: ``[low, high]`` of uniform initial weights, or ``None`` for the default.
        rule, p, dt, mode, normalize, carry_state, overrides: see :class:`PlasticConnection`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        rule: str | PlasticityRule = "stdp",
        p: Any = None,
        dt: float = 1e-3,
        mode: str = "direct",
        normalize: float | None = None,
        init_range: Sequence[float] | None = None,
        carry_state: bool = False,
        **overrides: Any,
    ) -> None:
        check_layer_sizes(in_channels, out_channels)
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        fan_in = in_channels * kernel_size * kernel_size
        weight = _initial_weights(shape, fan_in, init_range)
        geometry = Conv2d(stride=stride, padding=padding, dilation=dilation)
        super().__init__(weight, geometry, rule, p, dt, mode, normalize, carry_state, **overrides)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size

    def _apply_weights(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[2] != self.in_channels:
            raise ValueError(
                f"PlasticConv2d expects input [T, batch, {self.in_channels}, H, W] "
                f"(got shape {tuple(x.shape)})"
            )
        steps, batch = x.shape[:2]
        geometry = self.connection
        y = F.conv2d(
            x.reshape(steps * batch, *x.shape[2:]),
            weight,
            stride=geometry.stride,
            padding=geometry.padding,
            dilation=geometry.dilation,
        )
        return y.reshape(steps, batch, *y.shape[1:])

    def extra_repr(self) -> str:
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"kernel_size={self.kernel_size}, {self.connection}, " + super().extra_repr()
        )


class ShortTermPlasticity(nn.Module):
    """Short-term plasticity of transmission over ``[T, batch, ...]`` (a ``transmission`` rule,
    e.g. Tsodyks-Markram ``stp``): each input neuron's spikes become the fraction they release.

    ``released, state = layer(z)`` starts from rest, ``layer(z, state)`` continues (truncated
    BPTT carries it). Placed before a connection, it makes that connection's synapses short-term
    plastic; the connection's weights are trained as usual.

    Args:
        rule: name of a transmission rule (``stp``) or the rule.
        p: its parameters tuple (default: its defaults).
        dt: integration step (s).
        **overrides: single parameter values replacing those of ``p``.
    """

    stateful = True

    def __init__(
        self,
        rule: str | PlasticityRule = "stp",
        p: Any = None,
        dt: float = 1e-3,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.rule = _rule(rule, "transmission")
        self.p = _parameters(self.rule, p, dt, overrides)
        self.dt = float(dt)

    def forward(self, z: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        if z.dim() < 2:
            raise ValueError(
                f"ShortTermPlasticity expects time-first input [T, batch, ...] "
                f"(got shape {tuple(z.shape)})"
            )
        if state is None:
            state = self.rule.initial_state(self.p, z[0])
        released = []
        for z_t in z:
            out, state = self.rule.step(z_t, state, self.p, self.dt)
            released.append(out)
        return torch.stack(released), state

    def extra_repr(self) -> str:
        return f"rule={self.rule.name}, p={self.p}, dt={self.dt:g}"
