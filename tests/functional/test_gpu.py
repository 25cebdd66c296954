"""The fused operators on a CUDA GPU: the Triton kernels, compiled for the device, against the
reference loop on the same device (the cases of ``fused_cases.py``), a large layer bit for bit,
and ``torch.compile`` of a network through the operators. Marked ``gpu``: skipped, with the
reason, where ``torch.cuda.is_available()`` is false (``pytest -m gpu`` runs only these)."""

from __future__ import annotations

import pytest
import torch

from spikeexp.functional.fused import gpu, ops
from spikeexp.functional.surrogate import SURROGATES
from spikeexp.functional.unroll import reference_sequence
from tests.functional import fused_cases as cases

pytestmark = pytest.mark.gpu

LSNN_P = {
    "norse": {"adaptation": "norse", "beta": 0.3, "tau_adapt_inv": 50.0},
    "bellec": {"adaptation": "bellec", "beta": 30.0, "tau_adapt_inv": 50.0},
}


@pytest.fixture(autouse=True)
def on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cases, "DEVICE", torch.device("cuda"))


def test_cuda_runs_the_triton_implementation() -> None:
    assert ops.implementation(torch.device("cuda")) is gpu


@pytest.mark.parametrize("method", sorted(SURROGATES))
def test_lif_every_surrogate(method: str) -> None:
    p = cases.LIF.parameters(method=method, alpha=20.0)
    cases.check_feed_forward(cases.LIF, p, shape=(40, 4, 300))


@pytest.mark.parametrize("layout", ["contiguous", "constant", "channels_last", "transposed"])
@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
def test_feed_forward_layouts(name: str, layout: str) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P["norse"]) if name == "lsnn" else model.parameters()
    shape = (20, 4, 8, 6, 7) if layout == "channels_last" else (30, 5, 333)
    cases.check_feed_forward(model, p, shape=shape, layout=layout)


@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_feed_forward_dtypes(name: str, dtype: torch.dtype) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P["bellec"]) if name == "lsnn" else model.parameters()
    cases.check_feed_forward(model, p, shape=(25, 3, 257), dtype=dtype)


def test_lif_learnable_parameters() -> None:
    p = cases.LIF.parameters(tau_mem_inv=torch.linspace(80, 200, 130), v_reset=-0.1)
    learnable = ("tau_mem_inv", "tau_syn_inv", "v_leak", "v_th", "v_reset")
    cases.check_feed_forward(cases.LIF, p, shape=(20, 3, 130), learnable=learnable)


@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
def test_feed_forward_nan_and_inf(name: str) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P["norse"]) if name == "lsnn" else model.parameters()
    cases.check_feed_forward(model, p, shape=(8, 2, 6), nonfinite=True)


@pytest.mark.parametrize("hidden", [11, 128, 200])  # persistent, persistent, cuBLAS per step
@pytest.mark.parametrize("name, adaptation", [("lif", None), ("lsnn", "norse"), ("lsnn", "bellec")])
def test_recurrent(name: str, adaptation: str | None, hidden: int) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P[adaptation]) if adaptation else model.parameters()
    cases.check_recurrent(model, p, hidden=hidden, inputs=hidden // 2 + 3)


@pytest.mark.parametrize("mode", ["lif", "norse", "bellec"])
def test_recurrent_bfloat16_projection(mode: str) -> None:
    cases.check_recurrent_bfloat16(mode)


@pytest.mark.parametrize("index", range(len(cases.pool_inputs())))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_max_pool(index: int, dtype: torch.dtype) -> None:
    x, size = cases.pool_inputs()[index]
    cases.check_max_pool(x.to(dtype), size)


def test_benchmark_layer_bit_for_bit() -> None:
    """Batch 16, T = 500, 4096 LIF neurons: spikes, final state and input gradient equal to
    the step loop on the same GPU (no fused multiply-add in the kernels)."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(500, 16, 4096, generator=generator) * 2 + 0.3).cuda().requires_grad_()
    p = cases.LIF.parameters()
    results = []
    for run in (reference_sequence, cases.LIF.fused_sequence):
        state = cases.LIF.initial_state(p, x[0].detach())
        spikes, final = run(cases.LIF, x, state, p, 1e-3)
        (grad,) = torch.autograd.grad(spikes.sum() + final.v.sum(), x)
        results.append((spikes, final, grad))
    (z_ref, s_ref, g_ref), (z, s, g) = results
    assert torch.equal(z, z_ref) and torch.equal(s.v, s_ref.v) and torch.equal(s.i, s_ref.i)
    cases.assert_close(g, g_ref, cases.GRAD_TOL, "input gradient")


def test_compiled_network_on_cuda() -> None:
    from spikeexp.engine import network_from_config

    torch.manual_seed(0)
    topology = {"type": "conv", "channels": [4], "hidden": [16], "kernel_size": 3, "pool": 2}
    network = network_from_config(topology, {"model": "lif"}, {"model": "li"}, (1, 8, 8), 3).cuda()
    x = torch.rand(8, 4, 1, 8, 8, device="cuda") * 4
    out, _ = torch.compile(network, fullgraph=True)(x)
    out_ref, _ = network(x)
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("make", ["LIF", "Izhikevich", "LSNNRecurrent"])
def test_compiled_backend_on_cuda(make: str) -> None:
    """``unroll.backend=compiled`` (the step compiled by inductor, Triton on CUDA) against the
    reference loop on the device, for a model with and without a hand-written kernel."""
    import spikeexp as snn

    def build(backend: str) -> torch.nn.Module:
        torch.manual_seed(0)
        if make == "LSNNRecurrent":
            return snn.LSNNRecurrent(5, 7, backend=backend).cuda()
        return getattr(snn, make)(backend=backend).cuda()

    shape = (15, 3, 5) if make == "LSNNRecurrent" else (30, 2, 6)
    x = (torch.rand(shape, device="cuda") * 10).requires_grad_()
    results = []
    for backend in ("reference", "compiled"):
        out, _ = build(backend)(x)
        (grad,) = torch.autograd.grad(out.sum(), x)
        results.append((out, grad))
    (out_ref, grad_ref), (out, grad) = results
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(grad, grad_ref, rtol=1e-4, atol=1e-4)
