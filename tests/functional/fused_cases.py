"""Fused sequence operators against the reference loop: the cases shared by the C++ kernels
(``test_ops.py``) and the Triton kernels (``test_triton.py``, in Triton's interpreter).

Each ``check_*`` function runs one layer through its fused wrapper (whatever implementation
:data:`spikeexp.functional.fused.ops.IMPLEMENTATIONS` gives the CPU) and through the reference
step loop, and asserts: spikes identical, other outputs and final states within 1e-6, every
gradient within 1e-5 (relative to the largest value), NaN and infinity in the same places.
Sizes are small: the interpreter runs a kernel in Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from spikeexp.functional.fused import ops
from spikeexp.functional.neurons import MODELS
from spikeexp.functional.unroll import (
    RecurrentState,
    reference_recurrent_sequence,
    reference_sequence,
)

LIF, LSNN, LI = MODELS["lif"], MODELS["lsnn"], MODELS["li"]
DEVICE = torch.device("cpu")
"""Where the cases run (``tests/functional/test_gpu.py`` sets CUDA); data are drawn on the CPU
and moved there, so every device sees the same numbers."""
FORWARD_TOL = 1e-6
GRAD_TOL = 1e-5
BF16_TOL = 2.0**-7  # two bfloat16 roundings of a gradient


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    """Equal NaN/infinity positions; finite values within ``tol`` x max(1, largest |value|)."""
    actual, expected = actual.detach().double(), expected.detach().double()
    assert actual.shape == expected.shape, what
    assert torch.equal(actual.isnan(), expected.isnan()), f"{what}: NaN positions differ"
    infinite = expected.isinf()
    assert torch.equal(actual.isinf(), infinite), f"{what}: infinite positions differ"
    assert torch.equal(actual[infinite], expected[infinite]), f"{what}: infinities differ"
    finite = expected.isfinite()
    if finite.any():
        scale = max(1.0, float(expected[finite].abs().max()))
        error = float((actual[finite] - expected[finite]).abs().max())
        assert error <= tol * scale, f"{what}: off by {error:.3g} (scale {scale:.3g})"


def _loss(out: torch.Tensor, final: Sequence[torch.Tensor]) -> torch.Tensor:
    """A loss on every output step (spike counts against a target) and the final state."""
    target = torch.linspace(0.0, 3.0, out[0].numel(), device=out.device).reshape(out.shape[1:])
    loss = ((out.float().sum(0) - target) ** 2).mean()
    return loss + sum((0.3 + k) * t.float().pow(2).mean() for k, t in enumerate(final))


def _grads(loss: torch.Tensor, leaves: list[torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
    return torch.autograd.grad(loss, leaves, allow_unused=True)


def compare(
    fused: Callable[[], tuple[torch.Tensor, Any]],
    reference: Callable[[], tuple[torch.Tensor, Any]],
    leaves: list[torch.Tensor],
    spiking: bool = True,
    grad_tol: float = GRAD_TOL,
    check_activity: bool = True,
) -> None:
    """Run both, compare outputs, final states and the gradients of :func:`_loss`."""
    results = []
    for run in (reference, fused):
        out, final = run() if run is reference else _through_an_operator(run)
        states = final.neuron if isinstance(final, RecurrentState) else final
        states = [final.z, *states] if isinstance(final, RecurrentState) else list(states)
        results.append((out, states, _grads(_loss(out, states), leaves)))
    (out_ref, states_ref, grads_ref), (out, states, grads) = results
    if spiking:
        assert torch.equal(out.float(), out_ref.float()), "spikes differ"
        if check_activity:
            assert 0.02 < float(out_ref.detach().float().mean()) < 0.9, (
                "the case needs spikes and silence"
            )
    else:
        assert_close(out, out_ref, FORWARD_TOL, "output")
    for k, (actual, expected) in enumerate(zip(states, states_ref, strict=True)):
        assert_close(actual, expected, FORWARD_TOL, f"final state {k}")
    for k, (actual, expected) in enumerate(zip(grads, grads_ref, strict=True)):
        assert actual is not None and expected is not None, f"gradient {k} missing"
        assert actual.dtype == expected.dtype, f"gradient {k} dtype"
        assert_close(actual, expected, grad_tol, f"gradient {k}")


def _through_an_operator(run: Callable[[], Any]) -> Any:
    """``run()``, asserting that it computed with an operator's implementation (no fallback)."""
    calls = []
    original = ops.implementation

    def counting(device: torch.device) -> Any:
        calls.append(device)
        return original(device)

    ops.implementation = counting
    try:
        result = run()
    finally:
        ops.implementation = original
    assert calls, "the fused path fell back to the reference loop"
    return result


def on_device(p: Any) -> Any:
    """A parameter tuple with its tensors on :data:`DEVICE`."""
    tensors = {k: v.to(DEVICE) for k, v in p._asdict().items() if isinstance(v, torch.Tensor)}
    return p._replace(**tensors)


def feed_forward_input(
    shape: tuple[int, ...], dtype: torch.dtype = torch.float32, layout: str = "contiguous"
) -> tuple[torch.Tensor, torch.Tensor]:
    """(leaf, x): input currents ``[T, *S]`` in a ``layout`` (``contiguous``, ``constant``:
    one step repeated with time stride 0, ``channels_last``: ``[T, B, C, H, W]`` stored as
    ``[T, B, H, W, C]``, ``transposed``: time not outermost in memory)."""
    generator = torch.Generator().manual_seed(7)
    if layout == "constant":
        leaf = (torch.randn(shape[1:], generator=generator) * 4 + 1).to(DEVICE, dtype)
        leaf.requires_grad_()
        return leaf, leaf.unsqueeze(0).expand(shape)
    if layout == "channels_last":
        steps, batch, channels, height, width = shape
        data = torch.randn(steps, batch, height, width, channels, generator=generator) * 4 + 1
        leaf = data.to(DEVICE, dtype).requires_grad_()
        return leaf, leaf.permute(0, 1, 4, 2, 3)
    if layout == "transposed":
        data = torch.randn(shape[1], shape[0], *shape[2:], generator=generator) * 4 + 1
        leaf = data.to(DEVICE, dtype).requires_grad_()
        return leaf, leaf.transpose(0, 1)
    leaf = (torch.randn(shape, generator=generator) * 4 + 1).to(DEVICE, dtype).requires_grad_()
    return leaf, leaf


def make_nonfinite(leaf: torch.Tensor) -> None:
    """Put +inf at the last step, -inf, NaN and an overflowing value into a ``[T, B, n]``
    input (n >= 4) so that infinite voltages and NaN states and gradients occur."""
    with torch.no_grad():
        leaf[-1, 0, 0] = math.inf
        leaf[leaf.shape[0] // 2, 0, 1] = -math.inf
        leaf[1, -1, 2] = math.nan
        leaf[0, -1, 3] = 3e38


def state_leaves(model, p, like: torch.Tensor, dtype=torch.float32) -> Any:
    """A random initial state of ``model`` shaped like ``like`` (leaves requiring grad)."""
    generator = torch.Generator().manual_seed(3)
    rest = model.initial_state(p, like.to(dtype))
    return type(rest)(
        *(
            (
                t + torch.rand(t.shape, generator=generator, dtype=dtype).to(t.device) * 0.5
            ).requires_grad_()
            for t in rest
        )
    )


def check_feed_forward(
    model,
    p,
    shape: tuple[int, ...] = (20, 3, 17),
    dtype: torch.dtype = torch.float32,
    layout: str = "contiguous",
    learnable: Sequence[str] = (),
    nonfinite: bool = False,
) -> None:
    """One feed-forward layer of ``model`` (LIF, LSNN or LI) against the reference loop; the
    parameters named in ``learnable`` are leaves (gradients compared)."""
    leaf, x = feed_forward_input(shape, dtype, layout)
    if nonfinite:
        make_nonfinite(leaf)
    state_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
    state = state_leaves(model, p, x[0].detach(), state_dtype)
    params = {name: getattr(p, name) for name in learnable}
    params = {
        name: torch.as_tensor(value, dtype=state_dtype, device=DEVICE)
        .expand(shape[-1])
        .clone()
        .requires_grad_()
        for name, value in params.items()
    }
    p = on_device(p)._replace(**params)
    leaves = [leaf, *state, *params.values()]
    fused = model.fused_sequence
    compare(
        lambda: fused(model, x, state, p, 1e-3),
        lambda: reference_sequence(model, x, state, p, 1e-3),
        leaves,
        spiking=model.spiking,
        grad_tol=BF16_TOL if dtype == torch.bfloat16 else GRAD_TOL,
        check_activity=not nonfinite,
    )


def check_recurrent(
    model,
    p,
    hidden: int = 11,
    steps: int = 25,
    batch: int = 3,
    inputs: int = 7,
    dtype: torch.dtype = torch.float32,
    nonfinite: bool = False,
) -> None:
    """A recurrent layer against the reference loop (gradients of the weights and the state)."""
    generator = torch.Generator().manual_seed(2)
    x = (torch.rand(steps, batch, inputs, generator=generator) < 0.3).to(DEVICE, dtype)
    w_in = torch.randn(hidden, inputs, generator=generator, dtype=dtype) * 1.5
    w_in = w_in.to(DEVICE).requires_grad_()
    w_rec = torch.randn(hidden, hidden, generator=generator, dtype=dtype) * 0.6
    w_rec = w_rec.to(DEVICE).requires_grad_()
    p = on_device(p)
    if nonfinite:  # NaN currents early, infinite ones (of both signs) at the last step
        x[1, 0, :] = math.nan
        x[-1, -1, 0] = math.inf
    z0 = (torch.rand(batch, hidden, generator=generator) < 0.5).to(DEVICE, dtype)
    z0.requires_grad_()
    neuron = state_leaves(model, p, z0.detach(), dtype)
    state = RecurrentState(z0, neuron)
    leaves = [w_in, w_rec, z0, *neuron]
    fused = model.fused_recurrent_sequence
    compare(
        lambda: fused(model, x, state, w_in, w_rec, p, 1e-3),
        lambda: reference_recurrent_sequence(model, x, state, w_in, w_rec, p, 1e-3),
        leaves,
        check_activity=not nonfinite,
    )


def check_recurrent_bfloat16(mode: str, method: str = "super", hidden: int = 11) -> None:
    """The recurrent operator on a bfloat16 projected input (float32 state and weights)
    against the float32 reference loop on the same values."""
    generator = torch.Generator().manual_seed(4)
    steps, batch = 20, 3
    projected = torch.randn(steps, batch, hidden, generator=generator) * 3 + 0.5
    projected = projected.to(DEVICE, torch.bfloat16).requires_grad_()
    w_rec = (torch.randn(hidden, hidden, generator=generator) * 0.6).to(DEVICE).requires_grad_()
    adaptive = mode != "lif"
    model = LSNN if adaptive else LIF
    p = model.parameters(method=method, alpha=20.0)
    if adaptive:
        p = p._replace(adaptation=mode, beta=0.3 if mode == "norse" else 30.0, tau_adapt_inv=50.0)
    z0 = torch.zeros(batch, hidden, device=DEVICE)
    neuron = model.initial_state(p, z0)
    identity = torch.eye(hidden, device=DEVICE)

    def fused():
        rates = [p.tau_mem_inv, p.tau_syn_inv, p.tau_adapt_inv if adaptive else 0.0]
        others = [p.v_leak, p.v_th, p.v_reset, p.beta if adaptive else 0.0]
        params = [torch.full((batch, hidden), 1e-3 * r, device=DEVICE) for r in rates]
        params += [torch.full((batch, hidden), float(value), device=DEVICE) for value in others]
        b0 = neuron[2] if adaptive else None
        z, zf, v, i, b, _ = ops.recurrent_sequence(
            projected, w_rec, z0, neuron[0], neuron[1], b0, *params,
            ops.RECURRENT_MODES[mode], method, 20.0,
        )  # fmt: skip
        final = type(neuron)(v, i, b) if adaptive else type(neuron)(v, i)
        return z, RecurrentState(zf, final)

    def reference():
        x = projected.float()
        return reference_recurrent_sequence(
            model, x, RecurrentState(z0, neuron), identity, w_rec, p, 1e-3
        )

    compare(fused, reference, [projected, w_rec], grad_tol=BF16_TOL)


def check_max_pool(x: torch.Tensor, size: int) -> None:
    """The fused max pooling against ``torch.nn.functional.max_pool2d``: values and gradients
    identical (ties, NaN, infinity, windows that do not fit)."""
    from spikeexp.functional.fused.pool import max_pool2d

    generator = torch.Generator().manual_seed(1)
    out_shape = torch.nn.functional.max_pool2d(x.float(), size).shape
    grad = torch.randn(out_shape, generator=generator).to(DEVICE, x.dtype)
    x = x.to(DEVICE)
    results = []
    for pool in (max_pool2d, torch.nn.functional.max_pool2d):
        leaf = x.detach().clone().requires_grad_()
        y = pool(leaf, size)
        (gx,) = torch.autograd.grad(y, leaf, grad)
        results.append((y, gx))
    (y, gx), (y_ref, gx_ref) = results
    assert torch.equal(y.isnan(), y_ref.isnan())
    assert torch.equal(y.nan_to_num(), y_ref.nan_to_num())
    assert torch.equal(gx, gx_ref)


def pool_inputs() -> list[tuple[torch.Tensor, int]]:
    """Spike maps full of ties, small integers with NaN and infinities, ragged edges."""
    generator = torch.Generator().manual_seed(0)
    spikes = (torch.rand(3, 4, 12, 10, generator=generator) < 0.2).float()
    spikes[0] = 0.0  # all-silent windows: the gradient goes to the first element
    ints = torch.randint(-2, 3, (2, 3, 7, 9), generator=generator).float()
    ints[0, 0, 0, 0] = math.nan
    ints[0, 0, 0, 1] = math.nan  # two NaNs in one window
    ints[0, 1, 2, 2] = -math.inf
    ints[1, 2, :2, :2] = -math.inf  # a window of -inf only
    ints[1, 0, 4, 4] = -0.0
    return [(spikes, 2), (spikes, 3), (ints, 2), (ints, 3), (ints, 4), (ints[0], 2)]
