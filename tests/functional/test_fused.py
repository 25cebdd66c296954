"""Fused whole-sequence kernels against the reference step loop (forward 1e-6, gradients 1e-5)."""

from __future__ import annotations

import pytest
import torch
from torch.autograd.graph import saved_tensors_hooks

import spikeexp as snn
from spikeexp.functional.fused import build, cpu, ops
from spikeexp.functional.fused import common as fused_common
from spikeexp.functional.fused.lif import lif_fused_sequence
from spikeexp.functional.fused.recurrent import MODES
from spikeexp.functional.neurons import MODELS
from spikeexp.functional.neurons.lif import LIFParameters, LIFState
from spikeexp.functional.surrogate import SURROGATES
from spikeexp.functional.unroll import (
    RecurrentState,
    reference_recurrent_sequence,
    reference_sequence,
)

LIF = MODELS["lif"]
LSNN = MODELS["lsnn"]
FORWARD_TOL = 1e-6
GRAD_TOL = 1e-5

pytestmark = pytest.mark.skipif(build.kernels() is None, reason="no C++ compiler")


def _close(actual: torch.Tensor, expected: torch.Tensor, tol: float) -> None:
    scale = max(1.0, float(expected.detach().abs().max()))
    assert float((actual - expected).detach().abs().max()) <= tol * scale


def _grads(loss: torch.Tensor, inputs: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, inputs, allow_unused=True)


def _spike_count_loss(spikes: torch.Tensor, final: LIFState) -> torch.Tensor:
    target = torch.linspace(0.0, 3.0, spikes[0].numel()).reshape(spikes.shape[1:])
    return ((spikes.sum(0) - target) ** 2).mean() + final.v.pow(2).mean() + final.i.mean()


def _compare_feed_forward(x, v0, i0, p, extra=(), dtype_tol=1.0):
    runs = []
    for run in (reference_sequence, lif_fused_sequence):
        spikes, final = run(LIF, x, LIFState(v0, i0), p, 1e-3)
        grads = _grads(_spike_count_loss(spikes, final), [x, v0, i0, *extra])
        runs.append((spikes, final, grads))
    (z_ref, s_ref, g_ref), (z, s, g) = runs
    assert 0.02 < float(z_ref.detach().mean()) < 0.9, "the test needs spikes and silence"
    _close(z, z_ref, FORWARD_TOL * dtype_tol)
    _close(s.v, s_ref.v, FORWARD_TOL * dtype_tol)
    _close(s.i, s_ref.i, FORWARD_TOL * dtype_tol)
    for actual, expected in zip(g, g_ref, strict=True):
        assert actual is not None and expected is not None
        _close(actual, expected, GRAD_TOL * dtype_tol)


def _inputs(shape, dtype=torch.float32):
    x = (torch.randn(shape, dtype=dtype) * 4.0 + 1.0).requires_grad_()
    v0 = (torch.rand(shape[1:], dtype=dtype) * 0.5).requires_grad_()
    i0 = torch.randn(shape[1:], dtype=dtype).requires_grad_()
    return x, v0, i0


@pytest.mark.parametrize("method", sorted(SURROGATES))
def test_feed_forward_matches_reference_for_every_surrogate(method: str) -> None:
    x, v0, i0 = _inputs((40, 3, 17))
    _compare_feed_forward(x, v0, i0, LIFParameters(method=method, alpha=20.0))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", sorted(cpu.INLINE_SURROGATES))
def test_surrogates_inside_the_kernel_round_like_pytorch(
    method: str, dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel's own surrogate formulas against the registry's, passed in: bit-identical."""
    x, v0, i0 = _inputs((30, 4, 33), dtype)
    p = LIFParameters(v_th=torch.linspace(0.5, 1.5, 33, dtype=dtype), method=method, alpha=7.3)
    results = []
    for inline in (cpu.INLINE_SURROGATES, {}):
        monkeypatch.setattr(cpu, "INLINE_SURROGATES", inline)
        spikes, final = lif_fused_sequence(LIF, x, LIFState(v0, i0), p, 1e-3)
        results.append(_grads(_spike_count_loss(spikes, final), [x, v0, i0]))
    for inline_grad, given_grad in zip(*results, strict=True):
        assert torch.equal(inline_grad, given_grad)
    assert float(results[0][0].abs().max()) > 0


def _bits(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """The bit patterns of ``tensor`` with every NaN replaced by one pattern (NaN payloads carry
    no meaning; where NaNs are, and every other bit, signed zeros included, does)."""
    if tensor is None:
        return None
    integer = {torch.float32: torch.int32, torch.float64: torch.int64}.get(
        tensor.dtype, torch.int16
    )
    return torch.where(tensor.isnan(), torch.nan, tensor).view(integer)


def _assert_bit_identical(actual: torch.Tensor | None, expected: torch.Tensor | None) -> None:
    if expected is None or actual is None:
        assert actual is None and expected is None
        return
    assert torch.equal(_bits(actual), _bits(expected))


def _non_finite_inputs(dtype: torch.dtype) -> tuple[torch.Tensor, ...]:
    torch.manual_seed(11)
    x = torch.randn(30, 4, 40, dtype=dtype) * 4.0 + 1.0
    x[3, 0, :5] = float("inf")  # v = inf spikes, then NaN (0 * inf) as in lif_step
    x[5, 1, 5:10] = float("-inf")
    x[7, 2, 10:15] = float("nan")
    x[20, 3, 20] = torch.finfo(dtype).max  # overflow to inf inside the step
    v0 = torch.rand(4, 40, dtype=dtype) * 0.5
    v0[3, 30] = float("inf")
    i0 = torch.randn(4, 40, dtype=dtype)
    i0[3, 31] = float("nan")
    return x, v0, i0


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("method", ["super", "triangle", "sigmoid"])
@pytest.mark.parametrize("loss_on", ["spikes+v+i", "spikes", "v", "i"])
def test_inf_and_nan_follow_the_reference_bit_for_bit(
    dtype: torch.dtype, method: str, loss_on: str
) -> None:
    """Infinite and NaN inputs and states: spikes, final state and gradients (input and initial
    state) bit-identical to the step loop, NaN where it has NaN (an infinite voltage resets to
    NaN, as (1 - z) v + z v_reset does; a NaN gradient is not zeroed by the reset). Gradients
    that the loss does not reach stay absent, not zero."""
    runs = []
    for run in (reference_sequence, lif_fused_sequence):
        x, v0, i0 = (t.requires_grad_() for t in _non_finite_inputs(dtype))
        p = LIFParameters(method=method, alpha=20.0, v_reset=-0.1)
        spikes, final = run(LIF, x, LIFState(v0, i0), p, 1e-3)
        terms = {
            "spikes": ((spikes.sum(0) - 2.0) ** 2).mean(),
            "v": (final.v * 0.7).sum(),
            "i": (final.i * 0.3).sum(),
        }
        loss = sum(terms[name] for name in loss_on.split("+"))
        grads = torch.autograd.grad(loss, [x, v0, i0], allow_unused=True)
        runs.append((spikes, final.v, final.i, *grads))
    for actual, expected in zip(runs[1], runs[0], strict=True):
        _assert_bit_identical(actual, expected)
    v, gx = runs[0][1], runs[0][3]
    assert bool(v.isnan().any()) and bool(gx.isfinite().any())
    assert bool(gx.isnan().any()) == (loss_on != "i")  # the current alone stays finite


@pytest.mark.parametrize("method", ["super", "fast_sigmoid", "straight_through", "tanh"])
def test_finite_gradients_are_bit_identical_to_the_reference(method: str) -> None:
    """The backward sums autograd's terms in autograd's order: the input and initial-state
    gradients equal the step loop's bit for bit (not only within rounding)."""
    x, v0, i0 = _inputs((40, 3, 17))
    p = LIFParameters(method=method, alpha=20.0, v_leak=0.1, v_reset=-0.2)
    runs = []
    for run in (reference_sequence, lif_fused_sequence):
        spikes, final = run(LIF, x, LIFState(v0, i0), p, 1e-3)
        runs.append(_grads(_spike_count_loss(spikes, final), [x, v0, i0]))
    for actual, expected in zip(*runs, strict=True):
        _assert_bit_identical(actual, expected)


def test_double_backward_through_the_fused_kernels_raises() -> None:
    x, v0, i0 = _inputs((10, 2, 8))
    spikes, final = lif_fused_sequence(LIF, x, LIFState(v0, i0), LIFParameters(), 1e-3)
    (gx,) = torch.autograd.grad(_spike_count_loss(spikes, final), [x], create_graph=True)
    assert gx.requires_grad
    with pytest.raises(RuntimeError, match="double backward through spikeexp::lif_sequence"):
        torch.autograd.grad(gx.pow(2).sum(), [x])
    spikes, _ = lif_fused_sequence(LIF, x, LIFState(v0, i0), LIFParameters(), 1e-3)
    (gx,) = torch.autograd.grad(spikes.sum(), [x], create_graph=True)  # a linear loss
    with pytest.raises(RuntimeError, match="double backward through spikeexp::lif_sequence"):
        (gx.pow(2).sum() + x.sum()).backward()
    layer = snn.LSNNRecurrent(5, 6)
    data = ((torch.rand(20, 3, 5) < 0.4).float() * 3).requires_grad_()
    (gd,) = torch.autograd.grad(layer(data)[0].sum(0).pow(2).sum(), [data], create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through spikeexp::recurrent_sequence"):
        torch.autograd.grad(gd.pow(2).sum(), [data])


@pytest.mark.parametrize("method", ["super", "sigmoid"])
def test_bfloat16_kernels_equal_the_float32_conversion(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """bfloat16 currents and spikes read and written by the kernels themselves give the same
    bits as converting them to and from float32 around the float32 kernels (inf and NaN too)."""
    torch.manual_seed(6)
    data = (torch.randn(20, 4, 70) * 4 + 1).bfloat16()
    data[3, 0, :3] = float("inf")
    data[5, 1, 3:6] = float("nan")
    runs = []
    for direct in (True, False):
        if not direct:
            monkeypatch.setattr(cpu, "_direct_bfloat16", lambda *args: False)
        x = data.clone().requires_grad_()
        v0, i0 = torch.zeros(4, 70, requires_grad=True), torch.zeros(4, 70, requires_grad=True)
        p = LIFParameters(method=method)
        spikes, final = lif_fused_sequence(LIF, x, LIFState(v0, i0), p, 1e-3)
        loss = ((spikes.float().sum(0) - 2.0) ** 2).mean() + final.v.pow(2).sum()
        runs.append((spikes, final.v, final.i, *_grads(loss, [x, v0, i0])))
    assert runs[0][0].dtype == torch.bfloat16 and runs[0][3].dtype == torch.bfloat16
    for actual, expected in zip(*runs, strict=True):
        _assert_bit_identical(actual, expected)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("method", ["super", "sigmoid"])
def test_constant_input_gradient_is_summed_inside_the_kernel(
    dtype: torch.dtype, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stride-0 view of one step (Lift of a constant input): the operator gets that step and
    the number of steps, and returns its gradient summed over time, the reference's to
    rounding, with learnable parameters too."""
    calls = []
    operator = ops.lif_sequence
    monkeypatch.setattr(ops, "lif_sequence", lambda *args: calls.append(args) or operator(*args))
    torch.manual_seed(7)
    values = (torch.randn(3, 70) * 4.0 + 1.0).to(dtype)
    runs = []
    for run in (reference_sequence, lif_fused_sequence):
        step = values.clone().requires_grad_()
        state_dtype = torch.float32 if dtype == torch.bfloat16 else dtype
        v0 = torch.zeros(3, 70, dtype=state_dtype, requires_grad=True)
        i0 = torch.zeros(3, 70, dtype=state_dtype, requires_grad=True)
        v_th = torch.full((70,), 1.0, dtype=state_dtype, requires_grad=True)
        x = step.unsqueeze(0).expand(25, 3, 70)
        p = LIFParameters(v_th=v_th, method=method, alpha=20.0)
        spikes, final = run(LIF, x, LIFState(v0, i0), p, 1e-3)
        loss = ((spikes.float().sum(0) - 2.0) ** 2).mean() + final.v.pow(2).sum()
        runs.append((spikes, *_grads(loss, [step, v0, i0, v_th])))
    assert calls and calls[0][0].shape == (3, 70) and calls[0][-1] == 25
    assert torch.equal(runs[0][0], runs[1][0])
    tolerance = 1e-2 if dtype == torch.bfloat16 else GRAD_TOL
    for actual, expected in zip(runs[1][1:], runs[0][1:], strict=True):
        assert actual.dtype == expected.dtype
        _close(actual.float(), expected.float(), tolerance)


def test_feed_forward_float64_and_nonzero_leak_reset() -> None:
    x, v0, i0 = _inputs((30, 4, 9), torch.float64)
    p = LIFParameters(v_leak=0.1, v_reset=-0.2, tau_syn_inv=150.0, tau_mem_inv=250.0)
    _compare_feed_forward(x, v0, i0, p, dtype_tol=1e-6)


def test_per_neuron_and_learnable_parameters_get_reference_gradients() -> None:
    x, v0, i0 = _inputs((35, 5, 6))
    tau_mem_inv = (torch.rand(6) * 100 + 80).requires_grad_()
    tau_syn_inv = torch.tensor(180.0, requires_grad=True)
    v_th = (torch.rand(6) * 0.5 + 0.7).requires_grad_()
    v_leak = torch.full((6,), 0.05, requires_grad=True)
    v_reset = torch.full((5, 6), -0.1, requires_grad=True)
    p = LIFParameters(tau_syn_inv, tau_mem_inv, v_leak, v_th, v_reset, "fast_sigmoid", 10.0)
    _compare_feed_forward(x, v0, i0, p, extra=(tau_mem_inv, tau_syn_inv, v_th, v_leak, v_reset))


def test_conv_feature_maps_with_per_channel_parameters() -> None:
    x, v0, i0 = _inputs((12, 2, 3, 5, 7))
    p = LIFParameters(v_th=torch.tensor([0.8, 1.0, 1.3]).reshape(3, 1, 1))
    _compare_feed_forward(x, v0, i0, p)


def test_non_contiguous_input_and_broadcast_state() -> None:
    x = (torch.randn(9, 20, 30) * 4 + 1).transpose(1, 2).requires_grad_()  # [T, 30, 20]
    v0 = torch.zeros(20, requires_grad=True)  # broadcast over the batch
    i0 = torch.zeros(30, 20, requires_grad=True)
    _compare_feed_forward(x, v0, i0, LIFParameters())


@pytest.mark.parametrize("per_sample", [(3, 5, 7), (300,), (2, 16, 16)])
def test_parameters_shared_by_every_sample(per_sample: tuple[int, ...]) -> None:
    # >= 64 neurons per sample: the kernels read one sample's parameters for the whole batch,
    # in tiles that never cross a sample (300 and 105 are not multiples of the tile size).
    x, v0, i0 = _inputs((10, 4, *per_sample))
    v_th = torch.rand(per_sample) * 0.5 + 0.8
    _compare_feed_forward(x, v0, i0, LIFParameters(v_th=v_th, v_leak=0.05))


def _channels_last(shape: tuple[int, ...]) -> torch.Tensor:
    """A ``[T, B, C, H, W]`` leaf whose memory is ordered ``[T, B, H, W, C]``."""
    steps, batch, channels, height, width = shape
    data = torch.randn(steps, batch, height, width, channels) * 4.0 + 1.0
    return data.permute(0, 1, 4, 2, 3).requires_grad_()


@pytest.mark.parametrize(
    "v_th", [1.0, torch.tensor([0.8, 1.0, 1.3, 0.9]).reshape(4, 1, 1)], ids=["scalar", "channel"]
)
def test_channels_last_feature_maps_keep_their_layout(v_th) -> None:
    x = _channels_last((9, 2, 4, 6, 5))
    v0 = torch.zeros(2, 4, 6, 5).contiguous(memory_format=torch.channels_last)
    v0.requires_grad_()
    i0 = torch.rand(2, 4, 6, 5, requires_grad=True)  # another layout: copied to x's
    _compare_feed_forward(x, v0, i0, LIFParameters(v_th=v_th))
    spikes, final = lif_fused_sequence(LIF, x, LIFState(v0, i0), LIFParameters(v_th=v_th), 1e-3)
    assert spikes.stride() == x.stride() and final.v.stride() == x[0].stride()


def test_input_with_time_not_outermost_in_memory() -> None:
    x = (torch.randn(20, 9, 30) * 4 + 1).transpose(0, 1).requires_grad_()  # [T=9, 20, 30]
    v0, i0 = torch.zeros(20, 30, requires_grad=True), torch.zeros(20, 30, requires_grad=True)
    _compare_feed_forward(x, v0, i0, LIFParameters())


def test_state_carries_over_between_calls() -> None:
    x = torch.randn(40, 3, 8) * 4 + 1
    state = LIF.initial_state(LIFParameters(), x[0])
    whole, final = lif_fused_sequence(LIF, x, state, LIFParameters(), 1e-3)
    first, middle = lif_fused_sequence(LIF, x[:17], state, LIFParameters(), 1e-3)
    second, end = lif_fused_sequence(LIF, x[17:], middle, LIFParameters(), 1e-3)
    assert torch.equal(torch.cat([first, second]), whole)
    assert torch.equal(end.v, final.v) and torch.equal(end.i, final.i)


def test_saves_one_value_per_neuron_step() -> None:
    """Memory design: backward keeps the pre-reset voltage only (4 bytes/neuron-step)."""
    x, v0, i0 = _inputs((50, 8, 64))
    saved = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    with saved_tensors_hooks(pack, lambda tensor: tensor):
        spikes, _ = lif_fused_sequence(LIF, x, LIFState(v0, i0), LIFParameters(), 1e-3)
    neuron_steps = x.numel()
    # u [T, ...], the initial voltage, and five parameter arrays of one sample each (the same
    # parameters for every sample are not copied per sample).
    assert sum(saved) == 4 * neuron_steps + 4 * x[0].numel() + 5 * 4 * x[0, 0].numel()
    assert spikes.requires_grad


def test_gradcheck_float64_where_the_surrogate_vanishes() -> None:
    """Triangle surrogate: zero when |u - v_th| > 1/alpha, so the analytic gradient is exact
    and gradcheck verifies the adjoint recursion (state, reset, parameter gradients)."""
    torch.manual_seed(3)
    shape = (6, 2, 3)
    x = torch.randn(shape, dtype=torch.float64) * 30.0
    v0 = torch.rand(shape[1:], dtype=torch.float64) * 0.5
    i0 = torch.rand(shape[1:], dtype=torch.float64)
    params = [torch.full(shape[1:], value, dtype=torch.float64) for value in (0.1, 0.2, 0.05)]
    v_th = torch.rand(shape[1:], dtype=torch.float64) * 0.4 + 0.8
    v_reset = torch.full(shape[1:], -0.1, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (x, v0, i0, *params, v_th, v_reset)]
    alpha = 1000.0
    spikes, *_ = ops.lif_sequence(*inputs, "triangle", alpha, 2)
    assert 0 < float(spikes.detach().mean()) < 1

    def fused(*args):
        return ops.lif_sequence(*args, "triangle", alpha, 2)[:3]

    u_margin = _min_threshold_distance(inputs)
    assert u_margin > 2.0 / alpha
    assert torch.autograd.gradcheck(fused, inputs, eps=1e-7, atol=1e-6)


def _min_threshold_distance(inputs: list[torch.Tensor]) -> float:
    x, v, i, a, b, v_leak, v_th, v_reset = (t.detach() for t in inputs)
    smallest = float("inf")
    for x_t in x:
        j = i + x_t
        u = v + a * ((v_leak - v) + j)
        i = j - b * j
        smallest = min(smallest, float((u - v_th).abs().min()))
        v = torch.where(u > v_th, v_reset, u)
    return smallest


def test_training_step_on_spike_counts_matches_reference() -> None:
    def train(backend: str) -> list[torch.Tensor]:
        torch.manual_seed(1)
        net = torch.nn.Linear(30, 12)
        layer = snn.LIF(backend=backend, learnable=("v_th",))
        params = [*net.parameters(), *layer.parameters()]
        optimiser = torch.optim.Adam(params, lr=1e-2)
        data = torch.rand(25, 8, 30) * 3
        for _ in range(3):
            spikes, _ = layer(net(data))
            loss = ((spikes.sum(0) - 4.0) ** 2).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        return [p.detach().clone() for p in params]

    for fused, reference in zip(train("fused"), train("reference"), strict=True):
        _close(fused, reference, GRAD_TOL)


def test_fallback_without_compiler_is_the_step_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    x, v0, i0 = _inputs((20, 3, 5))
    monkeypatch.setenv("SPIKEEXP_FUSED_KERNELS", "0")
    build.kernels.cache_clear()
    try:
        assert build.kernels() is None
        _compare_feed_forward(x, v0, i0, LIFParameters())
    finally:
        monkeypatch.delenv("SPIKEEXP_FUSED_KERNELS")
        build.kernels.cache_clear()
    assert build.kernels() is not None


def _recurrent_case(model, p, hidden=11, steps=60, batch=4, inputs=7, dtype=torch.float32):
    torch.manual_seed(2)
    x = (torch.rand(steps, batch, inputs) < 0.3).to(dtype)
    w_in = (torch.randn(hidden, inputs, dtype=dtype) * 1.5).requires_grad_()
    w_rec = (torch.randn(hidden, hidden, dtype=dtype) * 0.6).requires_grad_()
    z0 = (torch.rand(batch, hidden) < 0.5).to(dtype).requires_grad_()
    neuron = model.initial_state(p, z0.detach())
    neuron = type(neuron)(*(t.clone().requires_grad_() for t in neuron))
    runs = []
    for run in (reference_recurrent_sequence, model.fused_recurrent_sequence):
        spikes, final = run(model, x, RecurrentState(z0, neuron), w_in, w_rec, p, 1e-3)
        loss = ((spikes.sum(0) - 2.0) ** 2).mean() + final.z.sum() * 0.3
        loss = loss + sum(t.pow(2).mean() for t in final.neuron)
        runs.append((spikes, final, _grads(loss, [w_in, w_rec, z0, *neuron])))
    (z_ref, s_ref, g_ref), (z, s, g) = runs
    assert 0.01 < float(z_ref.detach().mean()) < 0.9
    _close(z, z_ref, FORWARD_TOL)
    for actual, expected in zip(s.neuron, s_ref.neuron, strict=True):
        _close(actual, expected, FORWARD_TOL)
    for actual, expected in zip(g, g_ref, strict=True):
        _close(actual, expected, GRAD_TOL)


@pytest.mark.parametrize("method", ["super", "triangle", "arctan", "erfc"])
def test_recurrent_lif_matches_reference(method: str) -> None:
    _recurrent_case(LIF, LIFParameters(method=method, alpha=30.0))


@pytest.mark.parametrize("adaptation", ["norse", "bellec"])
@pytest.mark.parametrize("method", ["super", "sigmoid"])
def test_recurrent_lsnn_matches_reference(adaptation: str, method: str) -> None:
    beta = 0.3 if adaptation == "norse" else 30.0
    p = LSNN.parameters(adaptation=adaptation, beta=beta, method=method, tau_adapt_inv=50.0)
    _recurrent_case(LSNN, p)


@pytest.mark.parametrize("model", ["lif", "norse", "bellec"])
def test_recurrent_backward_with_blas_products_matches_reference(
    model: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backward path of large hidden sizes (one kernel call per step, g_t W by BLAS)."""
    monkeypatch.setattr(cpu, "BLAS_HIDDEN", 1)
    if model == "lif":
        _recurrent_case(LIF, LIFParameters(method="arctan", alpha=30.0))
    else:
        beta = 0.3 if model == "norse" else 30.0
        _recurrent_case(LSNN, LSNN.parameters(adaptation=model, beta=beta, tau_adapt_inv=50.0))


@pytest.mark.parametrize("adaptation", ["norse", "bellec"])
def test_recurrent_per_neuron_parameters_and_float64(adaptation: str) -> None:
    """Per-neuron beta as in the memory experiment (0 = plain LIF neurons in an LSNN layer)."""
    beta = torch.tensor([0.0] * 5 + [0.2 if adaptation == "norse" else 20.0] * 6)
    p = LSNN.parameters(
        tau_mem_inv=torch.linspace(60, 200, 11, dtype=torch.float64),
        v_th=torch.linspace(0.7, 1.2, 11, dtype=torch.float64),
        beta=beta.double(),
        adaptation=adaptation,
    )
    _recurrent_case(LSNN, p, dtype=torch.float64)


@pytest.mark.parametrize("model", ["lif", "lsnn"])
def test_recurrent_inf_and_nan_follow_the_reference(model: str) -> None:
    """An infinite input current: the voltage resets to NaN (not v_reset) as in the step
    functions, NaNs appear where the reference has them, in the output, the final state and
    the gradients; the finite values agree to rounding."""
    torch.manual_seed(4)
    neuron = MODELS[model]
    p = neuron.parameters(method="super", alpha=30.0)
    x = (torch.rand(25, 3, 7) < 0.3).float()
    x[4, 1, :] = float("inf")  # row 1 of the batch diverges from step 4 on
    w_in = (torch.randn(9, 7) * 1.5).requires_grad_()
    w_rec = (torch.randn(9, 9) * 0.6).requires_grad_()
    z0 = torch.zeros(3, 9)
    runs = []
    for run in (reference_recurrent_sequence, neuron.fused_recurrent_sequence):
        state = RecurrentState(z0, neuron.initial_state(p, z0))
        data = x.clone().requires_grad_()
        spikes, final = run(neuron, data, state, w_in, w_rec, p, 1e-3)
        loss = ((spikes[:, [0, 2]].sum(0) - 2.0) ** 2).mean() + final.neuron.v[0].sum()
        runs.append((spikes, *final.neuron, *_grads(loss, [data, w_in, w_rec])))
    grad_x = runs[0][-3]
    assert bool(runs[0][1].isnan().any()) and bool(grad_x.isnan().any())  # the diverged row
    assert bool(grad_x[:, 0].isfinite().all()) and float(grad_x[:, 0].abs().max()) > 0
    for actual, expected in zip(runs[1], runs[0], strict=True):
        assert torch.equal(actual.isnan(), expected.isnan())
        finite = ~expected.isnan()  # weight gradients: all NaN (0 * NaN in the diverged row)
        if bool(finite.any()):
            _close(actual[finite], expected[finite], GRAD_TOL)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_recurrent_gradcheck_float64_where_the_surrogate_vanishes(mode: str) -> None:
    torch.manual_seed(5)
    steps, batch, hidden = 5, 2, 3
    projected = torch.randn(steps, batch, hidden, dtype=torch.float64) * 40.0
    weights = torch.randn(hidden, hidden, dtype=torch.float64) * 5.0
    state = [torch.rand(batch, hidden, dtype=torch.float64) * 0.5 for _ in range(4)]
    state[0] = (state[0] > 0.25).double()
    b0 = None if mode == "lif" else state[3] + (1.0 if mode == "norse" else 0.0)
    shape = (batch, hidden)
    params = tuple(
        torch.full(shape, value, dtype=torch.float64)
        for value in (0.1, 0.2, 0.05, 0.0, 1.0, 0.0, 0.5)
    )
    inputs = [projected, weights, *state[:3]] + ([b0] if b0 is not None else [])
    inputs = [t.requires_grad_() for t in inputs]

    def fused(projected, weights, z0, v0, i0, b=None):
        out = ops.recurrent_sequence(
            projected, weights, z0, v0, i0, b, *params, MODES[mode], "triangle", 1000.0
        )
        return out[:4] if b is None else out[:5]

    spikes, *_ = fused(*inputs)
    assert 0 < float(spikes.detach().mean()) < 1
    assert torch.autograd.gradcheck(fused, inputs, eps=1e-7, atol=1e-6)


def test_recurrent_with_learnable_parameters_falls_back_exactly() -> None:
    fused = snn.LSNNRecurrent(5, 6, learnable=("tau_mem_inv",))
    reference = snn.LSNNRecurrent(5, 6, learnable=("tau_mem_inv",), backend="reference")
    reference.load_state_dict(fused.state_dict())
    x = (torch.rand(30, 3, 5) < 0.4).float() * 3
    grads = []
    for layer in (fused, reference):
        spikes, _ = layer(x)
        spikes.sum().backward()
        grads.append(layer.tau_mem_inv.grad)
    assert torch.equal(grads[0], grads[1])


def test_constant_input_is_read_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    """An input repeated over time with stride 0 (a constant current): no copy, the reference's
    spikes and gradients (autograd sums the input gradient over time)."""
    step = (torch.randn(3, 4, 5) * 4.0 + 1.0).requires_grad_()
    v0 = (torch.rand(3, 4, 5) * 0.5).requires_grad_()
    i0 = torch.randn(3, 4, 5).requires_grad_()
    p = LIFParameters(alpha=20.0)
    runs = []
    for run in (reference_sequence, lif_fused_sequence):
        x = step.unsqueeze(0).expand(30, -1, -1, -1)
        spikes, final = run(LIF, x, LIFState(v0, i0), p, 1e-3)
        runs.append((spikes, final, _grads(_spike_count_loss(spikes, final), [step, v0, i0])))
    (z_ref, s_ref, g_ref), (z, s, g) = runs
    assert 0.02 < float(z_ref.detach().mean()) < 0.9
    assert torch.equal(z, z_ref) and torch.equal(s.v, s_ref.v) and torch.equal(s.i, s_ref.i)
    for actual, expected in zip(g, g_ref, strict=True):
        _close(actual, expected, GRAD_TOL)
    monkeypatch.setattr(fused_common, "time_major", lambda x: pytest.fail("x was copied"))
    z_again, _ = lif_fused_sequence(LIF, x, LIFState(v0, i0), p, 1e-3)
    assert torch.equal(z_again, z)
