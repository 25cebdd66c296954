r"""The fused sequence operations as PyTorch custom operators (namespace ``spikeexp``).

Each operation is one ``torch.library`` operator with a backward operator of its own, a fake
(meta) implementation that gives shapes, dtypes and strides without computing (what
``torch.compile`` traces with), and an autograd formula that calls the backward operator.
The computing implementation is chosen by device type (:data:`IMPLEMENTATIONS`): the C++
kernels of ``kernels.cpp`` on the CPU (:mod:`~spikeexp.functional.fused.cpu`), the Triton kernels
on CUDA (:mod:`~spikeexp.functional.fused.gpu`). ``torch.compile(model, fullgraph=True)`` sees
one opaque node per operator on both devices; eager mode runs the same operators.

=========================================  ==================================================
operator                                   computes
=========================================  ==================================================
``spikeexp::lif_sequence``                 feed-forward LIF over ``[T, ...]``
``spikeexp::lsnn_sequence``                feed-forward LSNN (both adaptation conventions)
``spikeexp::li_sequence``                  leaky-integrator readout over ``[T, ...]``
``spikeexp::recurrent_sequence``           recurrent LIF / LSNN layer (``W_rec`` inside)
``spikeexp::max_pool2d``                   non-overlapping max pooling, 1-byte positions
=========================================  ==================================================

Each has a ``<name>_backward`` operator. Conventions shared by the sequence operators:

* ``x`` is ``[T, *S]``: time steps that are dense blocks laid out alike (contiguous,
  channels-last ...), or one contiguous step repeated with time stride 0 (a constant input, read
  in place). Outputs over time are laid out like ``x`` (contiguous for a stride-0 input).
* dtypes: ``x`` float32, float64 or bfloat16; the state, the saved values and the parameters
  are in the state dtype (:func:`~spikeexp.functional.fused.common.state_dtype`: float32 for
  bfloat16 inputs), spikes in ``x``'s dtype. The initial state ``[*S]`` is laid out like one
  step of the outputs.
* Parameters are arrays of the state shape ``[*S]``, or (not with parameter gradients) of one
  sample's shape ``S[1:]``, repeated over the batch.
* Rate constants arrive multiplied by ``dt``: ``a = dt tau_mem_inv``, ``b = dt tau_syn_inv``,
  ``c = dt tau_adapt_inv``.
* The saved values (pre-reset voltage, threshold distance, synaptic current) are outputs of the
  forward operator; with ``save`` off they are empty and no gradient can be taken.

The Python wrappers (:func:`~spikeexp.functional.fused.lif.lif_fused_sequence` and the others)
check eligibility, lay the arguments out and fall back to the reference loop outside the
operators.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import torch
from torch import Tensor

from spikeexp.functional.fused import cpu
from spikeexp.functional.fused.common import first_order_only

NAMESPACE = "spikeexp"


def _triton_implementation() -> ModuleType:
    return importlib.import_module("spikeexp.functional.fused.gpu")


IMPLEMENTATIONS: dict[str, Callable[[], ModuleType]] = {
    "cpu": lambda: cpu,
    "cuda": _triton_implementation,
}
"""Device type -> loader of the module that implements the operators there (the interface of
:mod:`~spikeexp.functional.fused.cpu`)."""


_recorders: list[list[str]] = []


def implementation(device: torch.device) -> ModuleType:
    """The implementation module for ``device`` (see :data:`IMPLEMENTATIONS`); its ``NAME`` is
    appended to every list :func:`recording` has open."""
    try:
        module = IMPLEMENTATIONS[device.type]()
    except KeyError:
        raise NotImplementedError(
            f"spikeexp's fused operators have no kernels for device type {device.type!r}; "
            f"valid: {', '.join(IMPLEMENTATIONS)}"
        ) from None
    for names in _recorders:
        names.append(module.NAME)
    return module


@contextlib.contextmanager
def recording() -> Iterator[list[str]]:
    """Within the block, the ``NAME`` of every implementation an operator runs (``"C++
    kernels"``, ``"Triton kernels"``) is appended to the list it yields, in call order (what
    :class:`~spikeexp.callbacks.backends.BackendReport` reports)."""
    names: list[str] = []
    _recorders.append(names)
    try:
        yield names
    finally:
        _recorders.remove(names)


def steps_like(x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """An uninitialised ``[T, *S]`` tensor with ``x``'s step layout (contiguous if ``x`` repeats
    one step with time stride 0); the same in the real and the fake implementations."""
    if x.shape[0] > 1 and x.stride(0) == 0:
        return torch.empty(x.shape, dtype=dtype or x.dtype, device=x.device)
    return torch.empty_like(x, dtype=dtype)


def steps_of(state: Tensor, steps: int, dtype: torch.dtype) -> Tensor:
    """An uninitialised ``[steps, *S]`` tensor whose steps are laid out like ``state`` (a dense
    ``[*S]`` tensor: contiguous, channels-last ...)."""
    return state.new_empty_strided(
        (steps, *state.shape), (state.numel(), *state.stride()), dtype=dtype
    )


def _saved(x: Tensor, dtype: torch.dtype, keep: bool) -> Tensor:
    return steps_like(x, dtype) if keep else x.new_empty(0, dtype=dtype)


def _empty(like: Tensor) -> Tensor:
    return like.new_empty(0)


def _none_if_empty(tensor: Tensor) -> Tensor | None:
    return None if tensor.numel() == 0 else tensor


def _input_grads(ctx: Any, grads: tuple[Tensor | None, ...]) -> tuple[Tensor | None, ...]:
    """The gradients of the first ``len(grads)`` inputs, ``None`` where none is needed."""
    return tuple(g if need else None for g, need in zip(grads, ctx.needs_input_grad, strict=False))


def _no_materialised_grads(ctx: Any, *saved_outputs: Tensor) -> None:
    """Saved values are outputs without gradients; unused output gradients stay ``None`` (no
    ``[T, ...]`` zero tensors in backward)."""
    ctx.mark_non_differentiable(*saved_outputs)
    ctx.set_materialize_grads(False)


# --- LIF (feed-forward) ----------------------------------------------------------------------


@torch.library.custom_op(f"{NAMESPACE}::lif_sequence", mutates_args=())
def lif_sequence(
    x: Tensor,
    v0: Tensor,
    i0: Tensor,
    a: Tensor,
    b: Tensor,
    v_leak: Tensor,
    v_th: Tensor,
    v_reset: Tensor,
    method: str,
    alpha: float,
    save: int,
    steps: int = 0,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    r"""LIF over ``x [T, *S]`` from ``(v0, i0)``. Returns spikes, final ``v`` and ``i``, and the
    saved values: the pre-reset voltages :math:`u_t` (``save >= 1``) and the synaptic currents
    :math:`j_t` after the input (``save == 2``, for parameter gradients). With ``steps > 0``,
    ``x`` is one contiguous step ``[*S]``, the input at each of ``steps`` steps; its gradient is
    then summed over time by the backward (no per-step gradient written)."""
    x = _repeated(x, steps)
    z, u, j = _lif_outputs(x, v0, save)
    v, i = v0.clone(), i0.clone()
    implementation(x.device).lif_forward(x, z, u, j, v, i, a, b, v_leak, v_th, v_reset)
    return z, v, i, u, j


def _repeated(x: Tensor, steps: int) -> Tensor:
    """``x`` as a ``[T, *S]`` sequence: itself, or one step repeated ``steps`` times (stride 0)."""
    return x if steps == 0 else x.unsqueeze(0).expand(steps, *x.shape)


def _lif_outputs(x: Tensor, v0: Tensor, save: int) -> tuple[Tensor, Tensor, Tensor]:
    return steps_like(x), _saved(x, v0.dtype, save >= 1), _saved(x, v0.dtype, save >= 2)


@lif_sequence.register_fake
def _(x, v0, i0, a, b, v_leak, v_th, v_reset, method, alpha, save, steps=0):
    z, u, j = _lif_outputs(_repeated(x, steps), v0, save)
    return z, torch.empty_like(v0), torch.empty_like(i0), u, j


@torch.library.custom_op(f"{NAMESPACE}::lif_sequence_backward", mutates_args=())
def lif_sequence_backward(
    grad_z: Tensor | None,
    grad_v: Tensor | None,
    grad_i: Tensor | None,
    u: Tensor,
    j: Tensor,
    v0: Tensor,
    a: Tensor,
    b: Tensor,
    v_leak: Tensor,
    v_th: Tensor,
    v_reset: Tensor,
    method: str,
    alpha: float,
    parameter_grads: bool,
    x_dtype: torch.dtype,
    summed: bool = False,
) -> list[Tensor]:
    """Gradients of :func:`lif_sequence`: ``[x, v0, i0, a, b, v_leak, v_th, v_reset]`` (the
    parameter gradients per neuron, empty without ``parameter_grads``); with ``summed`` the
    input gradient summed over time (``x`` was one step repeated)."""
    gx, gv, gi, grads = _lif_grads(u, v0, parameter_grads, x_dtype, summed)
    _copy_or_zero(gv, grad_v)
    _copy_or_zero(gi, grad_i)
    given = (grad_v is not None, grad_i is not None)
    impl = implementation(u.device)
    arguments = (grad_z, gv, gi, v0, j, a, b, v_leak, v_th, v_reset, grads, given)
    if summed and getattr(impl, "SUMS_OVER_TIME", False):
        total = gx if gx.dtype == u.dtype else torch.empty_like(v0)
        impl.lif_backward(method, alpha, u, None, *arguments, time_sum=total)
    else:
        g = gx if gx.dtype == u.dtype and not summed else torch.empty_like(u)
        impl.lif_backward(method, alpha, u, g, *arguments)
        total = g.sum(0) if summed else g
    if total is not gx:
        gx.copy_(total)
    return [gx, gv, gi, *grads]


def _lif_grads(
    u: Tensor, v0: Tensor, parameter_grads: bool, x_dtype: torch.dtype, summed: bool = False
):
    gx = torch.empty_like(v0 if summed else u, dtype=x_dtype)
    gv, gi = torch.empty_like(v0), torch.empty_like(v0)
    grads = [torch.zeros_like(v0) if parameter_grads else _empty(v0) for _ in range(5)]
    return gx, gv, gi, grads


def _copy_or_zero(target: Tensor, grad: Tensor | None) -> None:
    if grad is None:
        target.zero_()
    else:
        target.copy_(grad)


@lif_sequence_backward.register_fake
def _(gz, gv, gi, u, j, v0, a, b, v_leak, v_th, v_reset, method, alpha, pg, x_dtype, summed=False):
    gx, gv, gi, grads = _lif_grads(u, v0, pg, x_dtype, summed)
    return [gx, gv, gi, *grads]


def _lif_setup(ctx, inputs, output):
    x, v0, _, a, b, v_leak, v_th, v_reset, method, alpha, _, *steps = inputs
    _, _, _, u, j = output
    _no_materialised_grads(ctx, u, j)
    ctx.save_for_backward(u, j, v0, a, b, v_leak, v_th, v_reset)
    ctx.method, ctx.alpha, ctx.x_dtype = method, alpha, x.dtype
    ctx.summed = bool(steps and steps[0])


def _lif_backward(ctx, grad_z, grad_v, grad_i, _grad_u, _grad_j):
    u, j, v0, *params = ctx.saved_tensors
    _check_saved(u, "lif_sequence")
    parameter_grads = any(ctx.needs_input_grad[3:8])
    if parameter_grads and j.numel() == 0:
        raise RuntimeError("spikeexp::lif_sequence: parameter gradients need save=2")
    grads: list[Tensor | None] = list(lif_sequence_backward(
        grad_z, grad_v, grad_i, u, j, v0, *params, ctx.method, ctx.alpha, parameter_grads,
        ctx.x_dtype, ctx.summed,
    ))  # fmt: skip
    if grad_z is None and grad_v is None:  # no gradient reaches v: autograd's stay absent
        for index in (1, 3, 5, 6, 7):  # v0, a, v_leak, v_th, v_reset
            grads[index] = None
    grads = first_order_only("spikeexp::lif_sequence", grads, (grad_z, grad_v, grad_i))
    return (*_input_grads(ctx, tuple(grads)), None, None, None, None)


def _check_saved(saved: Tensor, name: str) -> None:
    if saved.numel() == 0:
        raise RuntimeError(
            f"spikeexp::{name} was run without saving for backward (save=0): no gradient"
        )


lif_sequence.register_autograd(_lif_backward, setup_context=_lif_setup)


# --- LSNN (feed-forward) ---------------------------------------------------------------------

LSNN_MODES = {"norse": 1, "bellec": 2}
"""Adaptation conventions of :mod:`spikeexp.functional.neurons.lsnn` -> operator ``mode``."""


@torch.library.custom_op(f"{NAMESPACE}::lsnn_sequence", mutates_args=())
def lsnn_sequence(
    x: Tensor,
    v0: Tensor,
    i0: Tensor,
    b0: Tensor,
    a: Tensor,
    bs: Tensor,
    c: Tensor,
    v_leak: Tensor,
    v_th: Tensor,
    v_reset: Tensor,
    beta: Tensor,
    mode: int,
    method: str,
    alpha: float,
    save: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    r"""Feed-forward LSNN (reset not detached) over ``x [T, *S]`` from ``(v0, i0, b0)``;
    ``mode`` of :data:`LSNN_MODES`, ``bs = dt tau_syn_inv``. Returns spikes, final ``v``,
    ``i``, ``b`` and the saved pre-reset voltages :math:`u_t` and threshold distances
    :math:`d_t` (empty without ``save``)."""
    z, u, d = _lsnn_outputs(x, v0, save)
    v, i, adapt = v0.clone(), i0.clone(), b0.clone()
    params = (a, bs, c, v_leak, v_th, v_reset, beta)
    implementation(x.device).lsnn_forward(mode, x, z, u, d, v, i, adapt, *params)
    return z, v, i, adapt, u, d


def _lsnn_outputs(x: Tensor, v0: Tensor, save: bool) -> tuple[Tensor, Tensor, Tensor]:
    return steps_like(x), _saved(x, v0.dtype, save), _saved(x, v0.dtype, save)


@lsnn_sequence.register_fake
def _(x, v0, i0, b0, a, bs, c, v_leak, v_th, v_reset, beta, mode, method, alpha, save):
    z, u, d = _lsnn_outputs(x, v0, save)
    return z, torch.empty_like(v0), torch.empty_like(i0), torch.empty_like(b0), u, d


@torch.library.custom_op(f"{NAMESPACE}::lsnn_sequence_backward", mutates_args=())
def lsnn_sequence_backward(
    grad_z: Tensor | None,
    grad_v: Tensor | None,
    grad_i: Tensor | None,
    grad_b: Tensor | None,
    u: Tensor,
    d: Tensor,
    a: Tensor,
    bs: Tensor,
    c: Tensor,
    v_reset: Tensor,
    beta: Tensor,
    mode: int,
    method: str,
    alpha: float,
    v0: Tensor,
    x_dtype: torch.dtype,
) -> list[Tensor]:
    """Gradients of :func:`lsnn_sequence` for ``[x, v0, i0, b0]`` (``v0`` gives the state
    layout)."""
    gx = torch.empty_like(u, dtype=x_dtype)
    g = gx if gx.dtype == u.dtype else torch.empty_like(u)
    gv, gi, gb = (torch.empty_like(v0) for _ in range(3))
    for target, grad in ((gv, grad_v), (gi, grad_i), (gb, grad_b)):
        _copy_or_zero(target, grad)
    params = (a, bs, c, v_reset, beta)
    implementation(u.device).lsnn_backward(
        mode, method, alpha, u, d, g, grad_z, gv, gi, gb, *params
    )
    if g is not gx:
        gx.copy_(g)
    return [gx, gv, gi, gb]


@lsnn_sequence_backward.register_fake
def _(grad_z, grad_v, grad_i, grad_b, u, d, a, bs, c, v_reset, beta, mode, method, alpha, v0, dt):
    return [torch.empty_like(u, dtype=dt), *(torch.empty_like(v0) for _ in range(3))]


def _lsnn_setup(ctx, inputs, output):
    x, v0, _, _, a, bs, c, _, _, v_reset, beta, mode, method, alpha, _ = inputs
    *_, u, d = output
    _no_materialised_grads(ctx, u, d)
    ctx.save_for_backward(u, d, a, bs, c, v_reset, beta, v0)
    ctx.mode, ctx.method, ctx.alpha, ctx.x_dtype = mode, method, alpha, x.dtype


def _lsnn_backward(ctx, grad_z, grad_v, grad_i, grad_b, _grad_u, _grad_d):
    u, d, *params, v0 = ctx.saved_tensors
    _check_saved(u, "lsnn_sequence")
    if any(ctx.needs_input_grad[4:11]):
        raise RuntimeError("spikeexp::lsnn_sequence has no gradients for neuron parameters")
    grads = lsnn_sequence_backward(
        grad_z, grad_v, grad_i, grad_b, u, d, *params, ctx.mode, ctx.method, ctx.alpha, v0,
        ctx.x_dtype,
    )  # fmt: skip
    incoming = (grad_z, grad_v, grad_i, grad_b)
    grads = first_order_only("spikeexp::lsnn_sequence", grads, incoming)
    return (*_input_grads(ctx, tuple(grads)), *([None] * 11))


lsnn_sequence.register_autograd(_lsnn_backward, setup_context=_lsnn_setup)


# --- LI (readout) ----------------------------------------------------------------------------


@torch.library.custom_op(f"{NAMESPACE}::li_sequence", mutates_args=())
def li_sequence(
    x: Tensor,
    v0: Tensor,
    i0: Tensor,
    a: Tensor,
    b: Tensor,
    v_leak: Tensor,
    save: bool,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Leaky integrators over ``x [T, *S]`` from ``(v0, i0)``. Returns the voltages
    ``[T, *S]`` (state dtype), final ``v`` and ``i``, and the synaptic currents :math:`j_t`
    after the input (``save``: for parameter gradients; input gradients need nothing saved)."""
    out = steps_like(x, v0.dtype)
    j = _saved(x, v0.dtype, save)
    v, i = v0.clone(), i0.clone()
    implementation(x.device).li_forward(x, out, j, v, i, a, b, v_leak)
    return out, v, i, j


@li_sequence.register_fake
def _(x, v0, i0, a, b, v_leak, save):
    out = steps_like(x, v0.dtype)
    return out, torch.empty_like(v0), torch.empty_like(i0), _saved(x, v0.dtype, save)


@torch.library.custom_op(f"{NAMESPACE}::li_sequence_backward", mutates_args=())
def li_sequence_backward(
    grad_out: Tensor | None,
    grad_v: Tensor | None,
    grad_i: Tensor | None,
    out: Tensor | None,
    j: Tensor,
    v0: Tensor,
    a: Tensor,
    b: Tensor,
    v_leak: Tensor,
    steps: int,
    x_dtype: torch.dtype,
) -> list[Tensor]:
    """Gradients of :func:`li_sequence`: ``[x, v0, i0, a, b, v_leak]``; parameter gradients
    (empty unless ``out`` and ``j`` are given) per neuron. ``x``'s gradient has its steps laid
    out like the state."""
    gx, gv, gi, grads = _li_grads(v0, steps, out is not None, x_dtype)
    g = gx if gx.dtype == v0.dtype else steps_of(v0, steps, v0.dtype)
    _copy_or_zero(gv, grad_v)
    _copy_or_zero(gi, grad_i)
    implementation(v0.device).li_backward(grad_out, g, gv, gi, out, v0, j, a, b, v_leak, grads)
    if g is not gx:
        gx.copy_(g)
    return [gx, gv, gi, *grads]


def _li_grads(v0: Tensor, steps: int, parameter_grads: bool, x_dtype: torch.dtype):
    gx = steps_of(v0, steps, x_dtype)
    gv, gi = torch.empty_like(v0), torch.empty_like(v0)
    grads = [torch.zeros_like(v0) if parameter_grads else _empty(v0) for _ in range(3)]
    return gx, gv, gi, grads


@li_sequence_backward.register_fake
def _(grad_out, grad_v, grad_i, out, j, v0, a, b, v_leak, steps, x_dtype):
    gx, gv, gi, grads = _li_grads(v0, steps, out is not None, x_dtype)
    return [gx, gv, gi, *grads]


def _li_setup(ctx, inputs, output):
    x, v0, _, a, b, v_leak, save = inputs
    out, _, _, j = output
    ctx.mark_non_differentiable(j)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(out if save else None, j, v0, a, b, v_leak)
    ctx.steps, ctx.x_dtype = x.shape[0], x.dtype


def _li_backward(ctx, grad_out, grad_v, grad_i, _grad_j):
    out, j, v0, *params = ctx.saved_tensors
    if any(ctx.needs_input_grad[3:6]) and out is None:
        raise RuntimeError("spikeexp::li_sequence: parameter gradients need save=True")
    grads = li_sequence_backward(
        grad_out, grad_v, grad_i, out, j, v0, *params, ctx.steps, ctx.x_dtype
    )
    grads = first_order_only("spikeexp::li_sequence", grads, (grad_out, grad_v, grad_i))
    return (*_input_grads(ctx, tuple(grads)), None)


li_sequence.register_autograd(_li_backward, setup_context=_li_setup)


def _state_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """Matrix products inside an operator in the state dtype: autocast (``bf16-mixed``) would
    otherwise round the recurrent currents of a float32 state to bfloat16."""
    return torch.autocast(device.type, enabled=False)


# --- recurrent LIF / LSNN --------------------------------------------------------------------

RECURRENT_MODES = {"lif": 0, **LSNN_MODES}
"""Recurrent layer kinds -> operator ``mode`` (0: LIF; 1, 2: LSNN conventions)."""


@torch.library.custom_op(f"{NAMESPACE}::recurrent_sequence", mutates_args=())
def recurrent_sequence(
    projected: Tensor,
    weights: Tensor,
    z0: Tensor,
    v0: Tensor,
    i0: Tensor,
    b0: Tensor | None,
    a: Tensor,
    bs: Tensor,
    c: Tensor,
    v_leak: Tensor,
    v_th: Tensor,
    v_reset: Tensor,
    beta: Tensor,
    mode: int,
    method: str,
    alpha: float,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    r"""Recurrent layer over the projected input ``[T, B, H]`` (contiguous) with recurrent
    weights ``W [H, H]``: current :math:`c_t = p_t + W z_{t-1}`, reset detached, state
    ``[B, H]`` contiguous (``b0`` ``None`` for LIF); ``method`` and ``alpha`` name the surrogate
    of the backward. Returns spikes, final spikes, ``v``, ``i``,
    ``b`` (empty for LIF) and the threshold distances :math:`d_t` (saved for backward)."""
    z, d, z_final = _recurrent_outputs(projected, v0)
    v, i = v0.clone(), i0.clone()
    adapt = _empty(v0) if b0 is None else b0.clone()
    params = (a, bs, c, v_leak, v_th, v_reset, beta)
    impl = implementation(projected.device)
    with _state_precision(projected.device):
        impl.recurrent_forward(mode, projected, weights, z0, z, d, v, i, adapt, *params)
    z_final.copy_(z[-1])
    return z, z_final, v, i, adapt, d


def _recurrent_outputs(projected: Tensor, v0: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    z = torch.empty_like(projected)
    return z, torch.empty_like(projected, dtype=v0.dtype), torch.empty_like(v0)


@recurrent_sequence.register_fake
def _(projected, weights, z0, v0, i0, b0, a, bs, c, v_leak, v_th, v_reset, beta, mode, *_):
    z, d, z_final = _recurrent_outputs(projected, v0)
    adapt = _empty(v0) if b0 is None else torch.empty_like(b0)
    return z, z_final, torch.empty_like(v0), torch.empty_like(i0), adapt, d


@torch.library.custom_op(f"{NAMESPACE}::recurrent_sequence_backward", mutates_args=())
def recurrent_sequence_backward(
    grad_z: Tensor | None,
    grad_z_final: Tensor | None,
    grad_v: Tensor | None,
    grad_i: Tensor | None,
    grad_b: Tensor | None,
    d: Tensor,
    z: Tensor,
    weights: Tensor,
    z0: Tensor,
    a: Tensor,
    bs: Tensor,
    c: Tensor,
    beta: Tensor,
    mode: int,
    method: str,
    alpha: float,
    weight_grad: bool,
    x_dtype: torch.dtype,
) -> list[Tensor]:
    r"""Gradients of :func:`recurrent_sequence`: ``[projected, W, z0, v0, i0, b0]`` (``W``'s
    :math:`\sum_t g_t^\top z_{t-1}` only with ``weight_grad``; ``b0``'s empty for LIF)."""
    gp, gw, gz0, gv, gi, gb = _recurrent_grads(d, weights, z0, mode, weight_grad, x_dtype)
    g = gp if gp.dtype == d.dtype else torch.empty_like(d)
    for target, grad in ((gz0, grad_z_final), (gv, grad_v), (gi, grad_i), (gb, grad_b)):
        if target.numel():
            _copy_or_zero(target, grad)
    impl = implementation(d.device)
    with _state_precision(d.device):
        impl.recurrent_backward(
            mode, method, alpha, d, weights, grad_z, g, gv, gi, gb, gz0, a, bs, c, beta
        )
        if weight_grad:
            hidden = d.shape[-1]
            spikes = z.to(d.dtype)
            torch.mm(g[0].t(), z0, out=gw)
            if d.shape[0] > 1:
                gw.addmm_(g[1:].reshape(-1, hidden).t(), spikes[:-1].reshape(-1, hidden))
    if g is not gp:
        gp.copy_(g)
    return [gp, gw, gz0, gv, gi, gb]


def _recurrent_grads(d, weights, z0, mode, weight_grad, x_dtype):
    gp = torch.empty_like(d, dtype=x_dtype)
    gw = torch.empty_like(weights, dtype=d.dtype) if weight_grad else _empty(d)
    state = [torch.empty_like(z0) for _ in range(3)]
    gb = torch.empty_like(z0) if mode else _empty(z0)
    return gp, gw, *state, gb


@recurrent_sequence_backward.register_fake
def _(gz, gzf, gv, gi, gb, d, z, weights, z0, a, bs, c, beta, mode, method, alpha, wg, dt):
    return list(_recurrent_grads(d, weights, z0, mode, wg, dt))


def _recurrent_setup(ctx, inputs, output):
    projected, weights, z0, *_, a, bs, c, _, _, _, beta, mode, method, alpha = inputs
    z, _, _, _, _, d = output
    ctx.mark_non_differentiable(d)
    ctx.set_materialize_grads(False)
    ctx.save_for_backward(d, z, weights, z0, a, bs, c, beta)
    ctx.mode, ctx.method, ctx.alpha = mode, method, alpha
    ctx.x_dtype, ctx.weight_dtype = projected.dtype, weights.dtype


def _recurrent_backward(ctx, grad_z, grad_z_final, grad_v, grad_i, grad_b, _grad_d):
    d, z, weights, z0, *params = ctx.saved_tensors
    if any(ctx.needs_input_grad[6:13]):
        raise RuntimeError("spikeexp::recurrent_sequence has no gradients for neuron parameters")
    grads = recurrent_sequence_backward(
        grad_z, grad_z_final, grad_v, grad_i, grad_b, d, z, weights, z0, *params, ctx.mode,
        ctx.method, ctx.alpha, ctx.needs_input_grad[1], ctx.x_dtype,
    )  # fmt: skip
    gp, gw, gz0, gv, gi, gb = grads
    gw = gw.to(ctx.weight_dtype) if ctx.needs_input_grad[1] else None
    incoming = (grad_z, grad_z_final, grad_v, grad_i, grad_b)
    outgoing = first_order_only(
        "spikeexp::recurrent_sequence", (gp, gw, gz0, gv, gi, _none_if_empty(gb)), incoming
    )
    return (*_input_grads(ctx, outgoing), *([None] * 10))


recurrent_sequence.register_autograd(_recurrent_backward, setup_context=_recurrent_setup)


# --- max pooling -----------------------------------------------------------------------------


@torch.library.custom_op(f"{NAMESPACE}::max_pool2d", mutates_args=())
def max_pool2d(x: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Max pooling of a contiguous ``[*, H, W]`` input with kernel = stride = ``size`` (at most
    15), no padding. Returns the maxima and each maximum's position in its window
    (``r * size + c``, uint8)."""
    y, where = _pool_outputs(x, size)
    implementation(x.device).max_pool_forward(x, y, where, size)
    return y, where


def _pool_outputs(x: Tensor, size: int) -> tuple[Tensor, Tensor]:
    shape = (*x.shape[:-2], x.shape[-2] // size, x.shape[-1] // size)
    return x.new_empty(shape), x.new_empty(shape, dtype=torch.uint8)


max_pool2d.register_fake(_pool_outputs)


@torch.library.custom_op(f"{NAMESPACE}::max_pool2d_backward", mutates_args=())
def max_pool2d_backward(
    grad_y: Tensor, where: Tensor, height: int, width: int, size: int
) -> Tensor:
    """Gradient of :func:`max_pool2d`: each output gradient to its window's recorded maximum,
    zero elsewhere (``[*, height, width]``, contiguous)."""
    grad_x = grad_y.new_empty((*grad_y.shape[:-2], height, width))
    implementation(grad_y.device).max_pool_backward(grad_y.contiguous(), where, grad_x, size)
    return grad_x


@max_pool2d_backward.register_fake
def _(grad_y, where, height, width, size):
    return grad_y.new_empty((*grad_y.shape[:-2], height, width))


def _pool_setup(ctx, inputs, output):
    x, size = inputs
    _, where = output
    ctx.mark_non_differentiable(where)
    ctx.save_for_backward(where)
    ctx.height, ctx.width, ctx.size = x.shape[-2], x.shape[-1], size


def _pool_backward(ctx, grad_y, _grad_where):
    (where,) = ctx.saved_tensors
    grad_x = max_pool2d_backward(grad_y, where, ctx.height, ctx.width, ctx.size)
    return (*first_order_only("spikeexp::max_pool2d", (grad_x,), (grad_y,)), None)


max_pool2d.register_autograd(_pool_backward, setup_context=_pool_setup)
