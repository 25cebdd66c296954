"""Encoder modules: ``encoder(x [batch, ...]) -> [T, batch, ...]`` (time-first).

Each wraps a function of :mod:`spikeexp.functional.encode` (see there for the equations) and adds
``output_shape(input_shape)``: the per-sample output shape (without ``T`` and batch), so a pipeline
can check that encoder and network fit before training.

Stochastic encoders (:class:`PoissonEncoder`, :class:`PopulationEncoder` with ``mode="poisson"``)
draw from their own CPU :class:`torch.Generator` seeded by ``seed``; its state is part of the
module's ``state_dict`` (extra state), so a run resumed from a checkpoint continues the same random
stream.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from spikeexp.functional.encode import (
    check_rate,
    check_seq_length,
    constant_current_encode,
    gaussian_tuning,
    poisson_encode,
    spike_latency_encode,
)
from spikeexp.functional.validation import check_choice, check_finite, check_in_range
from spikeexp.module.neurons import LIF

__all__ = [
    "ConstantCurrentEncoder",
    "ConstantCurrentLIFEncoder",
    "Encoder",
    "PoissonEncoder",
    "PopulationEncoder",
    "PreEncoded",
    "SpikeLatencyEncoder",
]


class Encoder(nn.Module):
    """Base of the encoders: a sequence length ``T`` (steps, >= 1) and ``output_shape``.

    An encoder turns a static sample into ``T`` steps; ``sequence_input`` (``False``) tells the
    validation pass so, and a task whose data are sequences already is refused with it.
    """

    sequence_input: ClassVar[bool] = False
    """Whether the encoder takes sequences ``[batch, T, ...]`` (else static samples)."""

    def __init__(self, seq_length: int) -> None:
        super().__init__()
        check_seq_length(seq_length)
        self.seq_length = seq_length

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample output shape for per-sample input shape ``input_shape`` (same by default)."""
        return tuple(input_shape)

    def check_input(self, x: torch.Tensor) -> None:
        """The input has a batch axis: ``[batch, ...]``."""
        if x.dim() < 1:
            raise ValueError(
                f"{type(self).__name__} expects input [batch, ...] (got a 0-dim tensor); "
                "it returns [seq_length, batch, ...]"
            )

    def extra_repr(self) -> str:
        return f"seq_length={self.seq_length}"


class _SeededGenerator(Encoder):
    """An encoder owning a seeded CPU generator saved in (and restored from) the state dict."""

    def __init__(self, seq_length: int, seed: int) -> None:
        super().__init__(seq_length)
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0 (got {seed!r})")
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator_state": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator_state"])


class ConstantCurrentEncoder(Encoder):
    r"""The analog input at every step ("direct" encoding): :math:`c_t = s\,x`.

    Args:
        seq_length: number of steps ``T`` (>= 1).
        scale: factor :math:`s` applied to the input.
    """

    def __init__(self, seq_length: int, scale: float = 1.0) -> None:
        super().__init__(seq_length)
        check_finite("scale", scale)
        self.scale = float(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return constant_current_encode(x, self.seq_length, self.scale)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:g}"


class ConstantCurrentLIFEncoder(Encoder):
    r"""LIF neurons from rest driven by the constant current :math:`s\,x`; outputs their spikes.

    One LIF neuron per input element, run with the library's LIF sequence module (its equations in
    :mod:`spikeexp.functional.neurons.lif`). With the default parameters (``dt`` = 1 ms) an input
    of 1 first fires at step 5 (0-based), then every 3 steps; inputs below about 0.2 never fire.

    Args:
        seq_length: number of steps ``T`` (>= 1).
        dt: integration step (s).
        p: :class:`~spikeexp.functional.neurons.lif.LIFParameters` (default: its defaults).
        scale: factor :math:`s` applied to the input current.
        **overrides: single LIF parameters replacing those of ``p`` (``tau_mem_inv=50.0``).
    """

    def __init__(
        self,
        seq_length: int,
        dt: float = 1e-3,
        p: Any = None,
        scale: float = 1.0,
        **overrides: Any,
    ) -> None:
        super().__init__(seq_length)
        check_finite("scale", scale)
        self.scale = float(scale)
        self.lif = LIF(p=p, dt=dt, **overrides)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        current = constant_current_encode(x, self.seq_length, self.scale)
        spikes, _ = self.lif(current)
        return spikes

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, scale={self.scale:g}"


class PoissonEncoder(_SeededGenerator):
    r"""Poisson spike trains: spike probability :math:`f_{max}\,\Delta t\,x` per step.

    Inputs must lie in [0, 1]; an input ``x`` fires at :math:`f_{max}\,x` Hz on average.

    Args:
        seq_length: number of steps ``T`` (>= 1).
        f_max: firing rate (Hz) of an input of 1; ``f_max * dt <= 1``.
        dt: step length (s).
        seed: seed of the encoder's own generator (>= 0).
    """

    def __init__(
        self, seq_length: int, f_max: float = 100.0, dt: float = 1e-3, seed: int = 0
    ) -> None:
        super().__init__(seq_length, seed)
        check_rate(f_max, dt)
        self.f_max = float(f_max)
        self.dt = float(dt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return poisson_encode(x, self.seq_length, self.f_max, self.dt, self.generator)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, f_max={self.f_max:g}, dt={self.dt:g}, seed={self.seed}"


class SpikeLatencyEncoder(Encoder):
    r"""Time-to-first-spike code: exactly one spike per input above ``threshold``.

    Input ``x`` in [0, 1] fires at step :math:`\mathrm{round}((1 - x)(T - 1))`: 1 at step 0,
    brighter inputs earlier; inputs :math:`\le` ``threshold`` (e.g. 0, background) never fire.

    Args:
        seq_length: number of steps ``T`` (>= 1).
        threshold: inputs at or below it stay silent, in [0, 1).
    """

    def __init__(self, seq_length: int, threshold: float = 0.0) -> None:
        super().__init__(seq_length)
        check_in_range("threshold", threshold, 0.0, 1.0)
        if threshold >= 1.0:
            raise ValueError(f"threshold must be < 1 (got {threshold:g})")
        self.threshold = float(threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return spike_latency_encode(x, self.seq_length, self.threshold)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, threshold={self.threshold:g}"


POPULATION_MODES = ("current", "poisson")
POPULATION_LAYOUTS = ("trailing", "flat", "channels")


class PopulationEncoder(_SeededGenerator):
    r"""Population code: ``size`` neurons per input with Gaussian tuning curves.

    Neuron :math:`j` prefers :math:`\mu_j` (evenly spaced over ``[low, high]``) and has activation
    :math:`a_j(x) = \exp(-(x - \mu_j)^2 / 2\sigma^2)` in [0, 1]; ``mode="current"`` feeds
    :math:`s\,a_j` at every step, ``mode="poisson"`` fires at :math:`f_{max}\,a_j` Hz.

    Output layout for a per-sample input shape ``S`` (e.g. ``(1, 8, 8)``):

    * ``trailing``: ``[T, batch, *S, size]`` (population axis last);
    * ``flat``: ``[T, batch, prod(S) * size]`` (for dense networks);
    * ``channels``: ``[T, batch, S[0] * size, *S[1:]]``, neuron ``j`` of channel ``c`` at
      channel ``c * size + j`` (for convolutional networks).

    Args:
        seq_length: number of steps ``T`` (>= 1).
        size: neurons per input (>= 1).
        low: lower end of the range of preferred values.
        high: upper end of the range of preferred values (``high > low``).
        sigma: tuning width (> 0); ``None`` uses the spacing ``(high - low) / (size - 1)``.
        mode: ``current`` or ``poisson``.
        scale: current factor :math:`s` (``current`` mode).
        f_max: rate (Hz) at the peak of a tuning curve (``poisson`` mode); ``f_max * dt <= 1``.
        dt: step length (s) (``poisson`` mode).
        layout: ``trailing``, ``flat`` or ``channels`` (above).
        seed: seed of the encoder's generator (>= 0; ``poisson`` mode).
    """

    def __init__(
        self,
        seq_length: int,
        size: int = 8,
        low: float = 0.0,
        high: float = 1.0,
        sigma: float | None = None,
        mode: str = "current",
        scale: float = 1.0,
        f_max: float = 100.0,
        dt: float = 1e-3,
        layout: str = "trailing",
        seed: int = 0,
    ) -> None:
        super().__init__(seq_length, seed)
        check_choice("mode", mode, POPULATION_MODES)
        check_choice("layout", layout, POPULATION_LAYOUTS)
        check_finite("low", low)
        check_finite("high", high)
        check_finite("scale", scale)
        check_rate(f_max, dt)
        gaussian_tuning(torch.zeros(1), size, low, high, sigma)  # validates size, range, sigma
        self.size = size
        self.low = float(low)
        self.high = float(high)
        self.sigma = None if sigma is None else float(sigma)
        self.mode = mode
        self.scale = float(scale)
        self.f_max = float(f_max)
        self.dt = float(dt)
        self.layout = layout

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        shape = tuple(input_shape)
        if self.layout == "flat":
            return (math.prod(shape) * self.size,)
        if self.layout == "channels":
            self._check_channels(len(shape))
            return (shape[0] * self.size, *shape[1:])
        return (*shape, self.size)

    def _check_channels(self, sample_dims: int) -> None:
        if sample_dims < 1:
            raise ValueError(
                "PopulationEncoder layout 'channels' expects input [batch, channels, ...] "
                "(got input without a channel axis)"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        activation = gaussian_tuning(x, self.size, self.low, self.high, self.sigma)
        if self.layout == "channels":
            self._check_channels(x.dim() - 1)
            activation = activation.movedim(-1, 2).flatten(1, 2)
        elif self.layout == "flat":
            activation = activation.flatten(1)
        if self.mode == "poisson":
            return poisson_encode(activation, self.seq_length, self.f_max, self.dt, self.generator)
        return constant_current_encode(activation, self.seq_length, self.scale)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, size={self.size}, low={self.low:g}, high={self.high:g}, "
            f"sigma={self.sigma}, mode={self.mode}, layout={self.layout}"
        )


class PreEncoded(nn.Module):
    """For tasks that provide spike trains themselves (e.g. the memory task): no encoding.

    The input ``[batch, T, ...]`` (batch-first, as every task's ``inputs`` is) is returned as the
    time-first view ``[T, batch, ...]``, without a copy. The sequence length is the task's.
    """

    sequence_input: ClassVar[bool] = True

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Per-sample ``(T, *features)`` in, ``features`` out (time is not a sample dimension)."""
        if len(input_shape) < 2:
            raise ValueError(
                f"PreEncoded expects per-sample input (T, features...) (got {tuple(input_shape)})"
            )
        return tuple(input_shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(0, 1)
