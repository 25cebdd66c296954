r"""Whole-sequence LIF (feed-forward): one operator call for all ``T`` steps.

Forward runs the LIF equations of :mod:`spikeexp.functional.neurons.lif` in one pass over
``[T, ...]`` (``spikeexp::lif_sequence``, :mod:`spikeexp.functional.fused.ops`; same operation
order as the step function, no fused multiply-add). Saved for backward: the pre-reset voltage
:math:`u_t` only (4 bytes per neuron-step; spikes are recomputed as :math:`H(u_t - v_{th})`, the
post-reset voltage as :math:`(1 - z_t) u_t + z_t v_{reset}`). With learnable parameters the
synaptic current after the input :math:`j_t` is saved too. Backward walks time in reverse with
the adjoint of each step (reset *not* detached, as in
:func:`~spikeexp.functional.neurons.lif.lif_step`), the surrogate derivative evaluated inside the
kernel where the device's kernels have it (:mod:`spikeexp.functional.fused.cpu`,
:mod:`spikeexp.functional.fused.gpu`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from spikeexp.functional.fused import ops
from spikeexp.functional.fused.common import (
    any_requires_grad,
    feed_forward_applies,
    laid_out_like,
    neuron_parameters,
    sequence_input,
    state_step,
)
from spikeexp.functional.fused.recurrent import fused_recurrent
from spikeexp.functional.unroll import reference_sequence

if TYPE_CHECKING:
    from spikeexp.functional.neurons.base import NeuronModel


def lif_fused_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_sequence`` with the LIF model: spikes ``[T, ...]``, final state.

    Runs ``spikeexp::lif_sequence`` where a kernel applies
    (:func:`~spikeexp.functional.fused.common.kernel_applies`: C++ on the CPU, Triton on CUDA;
    float32, float64, or bfloat16 with a float32 state); otherwise (other devices or dtypes, no
    kernels, recorded states, parameters or states that do not broadcast to the state shape)
    the exact pure-PyTorch step loop. A dense ``x`` keeps its memory layout (channels_last
    feature maps stay channels_last); a contiguous input repeated over time with stride 0 (a
    constant input, e.g. after :class:`~spikeexp.module.Lift` of a constant current) is read in
    place; others are made contiguous.
    """
    values = [p.tau_mem_inv, p.tau_syn_inv, p.v_leak, p.v_th, p.v_reset, state.v, state.i]
    if not feed_forward_applies(x, values, record_states):
        return reference_sequence(model, x, state, p, dt, record_states)
    x = sequence_input(x)
    like = state_step(x)
    raw = [dt * p.tau_mem_inv, dt * p.tau_syn_inv, p.v_leak, p.v_th, p.v_reset]
    params = neuron_parameters(raw, like)
    v0 = laid_out_like(state.v, like)
    i0 = laid_out_like(state.i, like)
    save = save_level([x, v0, i0], params)
    step = repeated_step(x)
    inputs, steps = (x, 0) if step is None else (step, x.shape[0])
    z, v, i, _, _ = ops.lif_sequence(inputs, v0, i0, *params, p.method, float(p.alpha), save, steps)
    return z, type(state)(v, i)


def repeated_step(x: torch.Tensor) -> torch.Tensor | None:
    """The contiguous ``[*S]`` tensor that ``x [T, *S]`` repeats over time when ``x`` is a
    stride-0 view of it (what :class:`~spikeexp.module.Lift` returns for a constant input), else
    ``None``. Given to the operator instead of ``x``, its gradient is summed over time inside
    the kernel: no ``[T, ...]`` input gradient is written and summed afterwards. Eager mode only
    (``torch.compile`` traces the view instead)."""
    if torch.compiler.is_compiling() or x.shape[0] < 2 or x.stride(0) != 0:
        return None
    base = x._base
    same = (
        base is not None
        and base.shape == x.shape[1:]
        and base.stride() == x.stride()[1:]
        and base.data_ptr() == x.data_ptr()
        and base.is_contiguous()
    )
    return base if same else None


def save_level(inputs: list[torch.Tensor], params: list[torch.Tensor]) -> int:
    """What a feed-forward operator saves for backward: 0 nothing (no gradient needed), 1 what
    input gradients need, 2 also what parameter gradients need."""
    if not torch.is_grad_enabled():
        return 0
    if any_requires_grad(params):
        return 2
    return 1 if any_requires_grad(inputs) else 0


def lif_fused_recurrent_sequence(
    model: NeuronModel,
    x: torch.Tensor,
    state: Any,
    input_weights: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: Any,
    dt: float,
    record_states: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Drop-in for ``reference_recurrent_sequence`` with the LIF model (see
    :mod:`spikeexp.functional.fused.recurrent`)."""
    return fused_recurrent(
        model, x, state, input_weights, recurrent_weights, p, dt, record_states, "lif"
    )
