r"""Input encoders: a static input ``x [batch, ...]`` becomes a time-first ``[T, batch, ...]``.

All functions are pure; the stochastic ones draw from an explicit :class:`torch.Generator`
(a CPU generator; samples are moved to the input's device). ``dt`` is in seconds, rates in Hz.

=====================  =====================================================================
encoder                output at step :math:`t = 0 .. T-1`
=====================  =====================================================================
constant current       :math:`s\,x` every step (analog, "direct" encoding)
constant current LIF   spikes of LIF neurons driven by the constant current :math:`s\,x`
Poisson                :math:`z_t \sim \mathrm{Bernoulli}(f_{max}\,\Delta t\, x)`, i.e. rate
                       :math:`f_{max}\,x` Hz
spike latency          one spike at :math:`t(x) = \mathrm{round}((1 - x)(T - 1))` if
                       :math:`x > \theta`, none otherwise
population             Gaussian tuning curves :math:`a_j(x) = \exp(-(x - \mu_j)^2 / 2\sigma^2)`,
                       then constant current or Poisson on :math:`a_j`
=====================  =====================================================================

:func:`threshold_crossing_encode` turns a sequence (``[batch, T, features]``, e.g. the pixels of an
image read one after another) into up and down spikes at threshold crossings, the input code of
sequential MNIST in Bellec et al. 2018.
"""

from __future__ import annotations

import torch

from spikeexp.functional.neurons.lif import LIFParameters, lif_initial_state, lif_step
from spikeexp.functional.validation import check_in_range, check_positive

__all__ = [
    "constant_current_encode",
    "constant_current_lif_encode",
    "gaussian_tuning",
    "poisson_encode",
    "population_centres",
    "spike_latency_encode",
    "threshold_crossing_encode",
    "uniform_thresholds",
]


def check_seq_length(seq_length: int) -> None:
    """``seq_length`` is an integer >= 1."""
    if isinstance(seq_length, bool) or not isinstance(seq_length, int) or seq_length < 1:
        raise ValueError(f"seq_length must be an integer >= 1 (got {seq_length!r})")


def check_unit_input(name: str, x: torch.Tensor) -> None:
    """Every element of ``x`` lies in [0, 1] (intensities, probabilities)."""
    check_in_range(f"{name} input", x.detach(), 0.0, 1.0)


def check_rate(f_max: float, dt: float) -> None:
    """``f_max > 0`` Hz and the spike probability per step ``f_max * dt`` is at most 1."""
    check_positive("dt", dt)
    check_positive("f_max", f_max)
    if f_max * dt > 1.0:
        raise ValueError(
            f"f_max * dt must be <= 1 (a spike probability per step; got f_max={f_max:g} Hz, "
            f"dt={dt:g} s; use f_max <= {1.0 / dt:g} or dt <= {1.0 / f_max:g})"
        )


def constant_current_encode(x: torch.Tensor, seq_length: int, scale: float = 1.0) -> torch.Tensor:
    r"""The input repeated at every step: :math:`c_t = s\,x` for :math:`t = 0 .. T-1`.

    Returns a ``[T, batch, ...]`` expanded view (no copy; do not write into it in place).
    """
    check_seq_length(seq_length)
    return (x * scale).unsqueeze(0).expand(seq_length, *x.shape)


def constant_current_lif_encode(
    x: torch.Tensor,
    seq_length: int,
    p: LIFParameters = LIFParameters(),
    dt: float = 1e-3,
    scale: float = 1.0,
) -> torch.Tensor:
    r"""Spikes of LIF neurons (:func:`~spikeexp.functional.neurons.lif.lif_step`) from rest, each
    fed the constant current :math:`s\,x` at every step; returns ``[T, batch, ...]``.

    Larger inputs fire earlier and more often; inputs too weak to reach ``v_th`` never fire.
    """
    check_seq_length(seq_length)
    current = x * scale
    state = lif_initial_state(p, current)
    spikes = []
    for _ in range(seq_length):
        z, state = lif_step(current, state, p, dt)
        spikes.append(z)
    return torch.stack(spikes)


def poisson_encode(
    x: torch.Tensor,
    seq_length: int,
    f_max: float = 100.0,
    dt: float = 1e-3,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    r"""Independent Bernoulli spikes with probability :math:`f_{max}\,\Delta t\,x` per step.

    ``x`` must lie in [0, 1]; the mean firing rate of an input is :math:`f_{max}\,x` Hz
    (``f_max`` in Hz, ``dt`` in seconds, :math:`f_{max}\,\Delta t \le 1`). Random numbers come from
    ``generator`` (CPU; the global CPU generator if ``None``); spikes have ``x``'s dtype and device.
    """
    check_seq_length(seq_length)
    check_rate(f_max, dt)
    check_unit_input("poisson", x)
    probability = (x.detach() * (f_max * dt)).cpu()
    uniform = torch.rand((seq_length, *x.shape), generator=generator, dtype=probability.dtype)
    return (uniform < probability).to(device=x.device, dtype=x.dtype)


def spike_latency_encode(x: torch.Tensor, seq_length: int, threshold: float = 0.0) -> torch.Tensor:
    r"""One spike per input at step :math:`t(x) = \mathrm{round}\big((1 - x)(T - 1)\big)`.

    ``x`` must lie in [0, 1]: :math:`x = 1` fires at step 0, inputs just above ``threshold`` fire
    last, and inputs :math:`x \le \theta` (``threshold``, in [0, 1)) never fire. Returns
    ``[T, batch, ...]`` with ``x``'s dtype.
    """
    check_seq_length(seq_length)
    check_in_range("threshold", threshold, 0.0, 1.0)
    if threshold >= 1.0:
        raise ValueError(f"threshold must be < 1 (got {threshold:g})")
    check_unit_input("spike_latency", x)
    x = x.detach()
    latency = torch.round((1.0 - x) * (seq_length - 1)).long()
    steps = torch.arange(seq_length, device=x.device).view(-1, *([1] * x.dim()))
    return ((steps == latency) & (x > threshold)).to(x.dtype)


def population_centres(size: int, low: float, high: float) -> torch.Tensor:
    """Preferred values :math:`\\mu_j = low + j\\,(high - low)/(size - 1)`, ``j = 0 .. size-1``
    (``size = 1``: the midpoint)."""
    if size == 1:
        return torch.tensor([(low + high) / 2.0])
    return torch.linspace(low, high, size)


def gaussian_tuning(
    x: torch.Tensor, size: int, low: float = 0.0, high: float = 1.0, sigma: float | None = None
) -> torch.Tensor:
    r"""Activation in [0, 1] of ``size`` neurons per input with Gaussian tuning curves.

    :math:`a_j(x) = \exp\!\big(-(x - \mu_j)^2 / (2\sigma^2)\big)`, preferred values
    :math:`\mu_j` evenly spaced over ``[low, high]`` (:func:`population_centres`); ``sigma``
    defaults to the spacing :math:`(high - low)/(size - 1)`. Returns ``[*x.shape, size]``.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be an integer >= 1 (got {size!r})")
    if not high > low:
        raise ValueError(f"high must be > low (got low={low:g}, high={high:g})")
    if sigma is None:
        sigma = (high - low) / max(size - 1, 1)
    check_positive("sigma", sigma)
    centres = population_centres(size, low, high).to(device=x.device, dtype=x.dtype)
    return torch.exp(-((x.unsqueeze(-1) - centres) ** 2) / (2.0 * sigma**2))


def uniform_thresholds(count: int) -> torch.Tensor:
    r"""``count`` thresholds evenly inside (0, 1): :math:`\theta_k = (k + 1) / (K + 1)`,
    ``k = 0 .. K-1`` (none at 0 or 1, where a crossing of [0, 1] values could never happen)."""
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"thresholds must be an integer >= 1 (got {count!r})")
    return torch.arange(1, count + 1, dtype=torch.float32) / (count + 1)


def threshold_crossing_encode(x: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    r"""Up and down spikes where a sequence crosses each of ``K`` thresholds.

    For the sequence :math:`x_t` (``x`` of shape ``[batch, T, features]``, time on dim 1, values
    usually in [0, 1]) and thresholds :math:`\theta_k`, with :math:`x_{-1} = 0` (the sequence
    starts from black):

    .. math::
        \mathrm{up}_{t,k} = [x_{t-1} < \theta_k \le x_t], \qquad
        \mathrm{down}_{t,k} = [x_t < \theta_k \le x_{t-1}]

    Returns ``[batch, T, features * 2K]`` in ``x``'s dtype; feature ``f`` owns channels
    ``f * 2K + k`` (up, threshold ``k``) and ``f * 2K + K + k`` (down). A pixel sequence with
    ``K = 40`` gives the 80 input channels of sequential MNIST in Bellec et al. 2018 ("Long
    short-term memory and learning-to-learn in networks of spiking neurons").
    """
    if x.dim() != 3:
        raise ValueError(
            f"threshold_crossing_encode expects x [batch, T, features] (got shape {tuple(x.shape)})"
        )
    if thresholds.dim() != 1 or thresholds.numel() < 1:
        raise ValueError(
            f"thresholds must be a 1-D tensor of >= 1 values (got shape {tuple(thresholds.shape)})"
        )
    theta = thresholds.to(device=x.device, dtype=x.dtype)
    previous = torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], dim=1).unsqueeze(-1)
    current = x.unsqueeze(-1)
    up = (previous < theta) & (theta <= current)
    down = (current < theta) & (theta <= previous)
    return torch.cat([up, down], dim=-1).flatten(2).to(x.dtype)
