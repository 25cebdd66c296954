"""The Triton kernels (the CUDA implementation of the fused operators) against the reference
loop, run on CPU tensors in Triton's interpreter: every model and surrogate, time-stride-0
inputs, sizes that are not a multiple of the block, T = 1, learnable parameters, float64,
bfloat16, NaN and infinity (the cases of ``fused_cases.py``).

The operators' CPU implementation is swapped for :mod:`spikeexp.functional.fused.gpu` during
each test (whose kernels, on CPU tensors, run in an interpreted copy of the kernel module with
``TRITON_INTERPRET=1`` set only while they run); nothing here needs a GPU.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from spikeexp.functional.fused import common as fused_common
from spikeexp.functional.fused import gpu, ops
from spikeexp.functional.surrogate import SURROGATES
from tests.functional import fused_cases as cases

triton = pytest.importorskip("triton", reason="Triton is not installed")
pytest.importorskip("numpy", reason="Triton's interpreter needs NumPy")


@pytest.fixture(autouse=True)
def triton_on_cpu(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CPU tensors run the Triton kernels (interpreted) instead of the C++ ones."""
    monkeypatch.setitem(ops.IMPLEMENTATIONS, "cpu", lambda: gpu)
    monkeypatch.setattr(fused_common, "kernels_available", lambda device_type: True)
    yield


LSNN_P = {
    "norse": {"adaptation": "norse", "beta": 0.3, "tau_adapt_inv": 50.0},
    "bellec": {"adaptation": "bellec", "beta": 30.0, "tau_adapt_inv": 50.0},
}


@pytest.mark.parametrize("method", sorted(SURROGATES))
def test_lif_every_surrogate(method: str) -> None:
    p = cases.LIF.parameters(method=method, alpha=20.0)
    cases.check_feed_forward(cases.LIF, p, shape=(16, 3, 45))  # 135 neurons: 3 blocks of 64


@pytest.mark.parametrize("layout", ["constant", "channels_last", "transposed"])
@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
def test_feed_forward_layouts(name: str, layout: str) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P["norse"]) if name == "lsnn" else model.parameters()
    shape = (10, 2, 3, 4, 5) if layout == "channels_last" else (12, 3, 17)
    cases.check_feed_forward(model, p, shape=shape, layout=layout)


@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
def test_feed_forward_single_step(name: str) -> None:
    model = cases.MODELS[name]
    p = model.parameters(v_th=0.05) if name != "li" else model.parameters()
    p = p._replace(**LSNN_P["bellec"], v_th=0.05) if name == "lsnn" else p
    cases.check_feed_forward(model, p, shape=(1, 4, 19))


@pytest.mark.parametrize("method", ["super", "sigmoid", "triangle"])
def test_lif_learnable_parameters_reduced_per_neuron(method: str) -> None:
    p = cases.LIF.parameters(
        tau_mem_inv=torch.linspace(80, 200, 70), v_leak=0.05, v_reset=-0.1, method=method
    )
    learnable = ("tau_mem_inv", "tau_syn_inv", "v_leak", "v_th", "v_reset")
    cases.check_feed_forward(cases.LIF, p, shape=(12, 2, 70), learnable=learnable)


def test_li_learnable_parameters_reduced_per_neuron() -> None:
    p = cases.LI.parameters(tau_mem_inv=torch.linspace(50, 300, 70), v_leak=0.2)
    learnable = ("tau_mem_inv", "tau_syn_inv", "v_leak")
    cases.check_feed_forward(cases.LI, p, shape=(9, 2, 70), learnable=learnable)


@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
def test_parameters_shared_by_every_sample(name: str) -> None:
    """Per-neuron parameters of one sample (>= 64 neurons) repeated over the batch in place."""
    model = cases.MODELS[name]
    extra = LSNN_P["norse"] if name == "lsnn" else {}
    if name == "li":
        p = model.parameters(tau_syn_inv=torch.linspace(100, 300, 70))
    else:
        p = model.parameters(v_th=torch.linspace(0.7, 1.3, 70), **extra)
    cases.check_feed_forward(model, p, shape=(8, 3, 70))


@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_feed_forward_dtypes(name: str, dtype: torch.dtype) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P["bellec"]) if name == "lsnn" else model.parameters()
    cases.check_feed_forward(model, p, shape=(14, 3, 21), dtype=dtype)


@pytest.mark.parametrize("method", sorted(SURROGATES))
@pytest.mark.parametrize("adaptation", ["norse", "bellec"])
def test_lsnn_every_surrogate(adaptation: str, method: str) -> None:
    p = cases.LSNN.parameters(**LSNN_P[adaptation], method=method, alpha=20.0)
    cases.check_feed_forward(cases.LSNN, p, shape=(18, 2, 13))


@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
def test_feed_forward_nan_and_inf_as_the_reference(name: str) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P["norse"]) if name == "lsnn" else model.parameters()
    cases.check_feed_forward(model, p, shape=(8, 2, 6), nonfinite=True)


def test_surrogate_without_inline_code_is_read_from_pytorch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A surrogate the kernels do not know (here: any) is computed in PyTorch and passed in."""
    monkeypatch.setattr(gpu, "SURROGATE_CODES", {})
    p = cases.LIF.parameters(method="erfc", alpha=10.0)
    cases.check_feed_forward(cases.LIF, p)
    cases.check_feed_forward(cases.LSNN, cases.LSNN.parameters(**LSNN_P["bellec"]))
    cases.check_recurrent(cases.LSNN, cases.LSNN.parameters(**LSNN_P["norse"]))


RECURRENT = [("lif", None), ("lsnn", "norse"), ("lsnn", "bellec")]


@pytest.fixture(params=["persistent", "per_step"])
def recurrent_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both recurrent paths: W_rec on chip, or one (cuBLAS) product per step."""
    if request.param == "per_step":
        monkeypatch.setattr(gpu, "PERSISTENT_MAX_HIDDEN", 4)
    return request.param


@pytest.mark.parametrize("method", ["super", "sigmoid"])
@pytest.mark.parametrize("name, adaptation", RECURRENT)
def test_recurrent(name: str, adaptation: str | None, method: str, recurrent_path: str) -> None:
    model = cases.MODELS[name]
    p = model.parameters(method=method, alpha=30.0)
    p = p._replace(**LSNN_P[adaptation]) if adaptation else p
    cases.check_recurrent(model, p)


@pytest.mark.parametrize("name, adaptation", RECURRENT)
def test_recurrent_float64_single_step_and_power_of_two(
    name: str, adaptation: str | None, recurrent_path: str
) -> None:
    model = cases.MODELS[name]
    p = model.parameters(**LSNN_P[adaptation]) if adaptation else model.parameters()
    cases.check_recurrent(model, p, hidden=16, dtype=torch.float64)
    p_t1 = p._replace(v_th=0.05, beta=0.01) if adaptation else p._replace(v_th=0.05)
    cases.check_recurrent(model, p_t1, steps=1, hidden=9, inputs=30)


@pytest.mark.parametrize("mode", ["lif", "norse", "bellec"])
def test_recurrent_bfloat16_projection(mode: str, recurrent_path: str) -> None:
    cases.check_recurrent_bfloat16(mode, method="fast_sigmoid")


@pytest.mark.parametrize("name", ["lif", "lsnn"])
def test_recurrent_nan_and_inf_as_the_reference(name: str, recurrent_path: str) -> None:
    model = cases.MODELS[name]
    cases.check_recurrent(model, model.parameters(), nonfinite=True)


@pytest.mark.parametrize("index", range(len(cases.pool_inputs())))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_max_pool(index: int, dtype: torch.dtype) -> None:
    x, size = cases.pool_inputs()[index]
    cases.check_max_pool(x.to(dtype), size)


def test_gradcheck_lif_where_the_surrogate_vanishes() -> None:
    """float64 gradcheck of the LIF kernels (triangle surrogate, zero away from the threshold:
    the analytic gradient is exact), state and parameter gradients (``fast_mode``: random
    projections, few interpreted runs)."""
    generator = torch.Generator().manual_seed(3)
    shape = (6, 2, 3)
    x = torch.randn(shape, generator=generator, dtype=torch.float64) * 30.0
    v0 = torch.rand(shape[1:], generator=generator, dtype=torch.float64) * 0.5
    i0 = torch.rand(shape[1:], generator=generator, dtype=torch.float64)
    params = [torch.full(shape[1:], value, dtype=torch.float64) for value in (0.1, 0.2, 0.05)]
    v_th = torch.rand(shape[1:], generator=generator, dtype=torch.float64) * 0.4 + 0.8
    v_reset = torch.full(shape[1:], -0.1, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (x, v0, i0, *params, v_th, v_reset)]

    def fused(*args):
        return ops.lif_sequence(*args, "triangle", 1000.0, 2)[:3]

    assert 0 < float(fused(*inputs)[0].detach().mean()) < 1
    assert torch.autograd.gradcheck(fused, inputs, eps=1e-7, atol=1e-6, fast_mode=True)


@pytest.mark.parametrize("mode", sorted(ops.RECURRENT_MODES))
def test_gradcheck_recurrent_where_the_surrogate_vanishes(mode: str) -> None:
    generator = torch.Generator().manual_seed(5)
    steps, batch, hidden = 5, 2, 3
    projected = torch.randn(steps, batch, hidden, generator=generator, dtype=torch.float64) * 40
    weights = torch.randn(hidden, hidden, generator=generator, dtype=torch.float64) * 5.0
    state = [torch.rand(batch, hidden, generator=generator, dtype=torch.float64) * 0.5]
    state = [(state[0] > 0.25).double(), *(torch.rand_like(state[0]) * 0.5 for _ in range(3))]
    b0 = None if mode == "lif" else state[3] + (1.0 if mode == "norse" else 0.0)
    params = [
        torch.full((batch, hidden), value, dtype=torch.float64)
        for value in (0.1, 0.2, 0.05, 0.0, 1.0, 0.0, 0.5)
    ]
    inputs = [projected, weights, *state[:3]] + ([b0] if b0 is not None else [])
    inputs = [t.requires_grad_() for t in inputs]

    def fused(projected, weights, z0, v0, i0, b=None):
        out = ops.recurrent_sequence(
            projected, weights, z0, v0, i0, b, *params, ops.RECURRENT_MODES[mode],
            "triangle", 1000.0,
        )  # fmt: skip
        return out[:4] if b is None else out[:5]

    assert 0 < float(fused(*inputs)[0].detach().mean()) < 1
    assert torch.autograd.gradcheck(fused, inputs, eps=1e-7, atol=1e-6, fast_mode=True)


def test_interpreter_setting_does_not_leak() -> None:
    """``TRITON_INTERPRET`` is set only while an interpreted kernel runs."""
    import os

    before = os.environ.get("TRITON_INTERPRET")
    cases.check_feed_forward(cases.LI, cases.LI.parameters(), shape=(3, 2, 5))
    assert os.environ.get("TRITON_INTERPRET") == before


def _compile(*args: str) -> str:
    ptxas = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas"
    if not ptxas.exists():
        pytest.skip("Triton's NVIDIA backend (ptxas) is not installed")
    result = subprocess.run(
        [sys.executable, "-m", "tests.functional.triton_compile", *args],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=5400,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_kernels_compile_for_the_gpu_without_spills() -> None:
    """Each kernel, all options on, compiled to an sm_90 cubin (no GPU needed): it compiles and
    keeps its state in registers (no spill to local memory)."""
    output = _compile()
    assert "compiled 12 kernels for sm_90; spilling: 0" in output


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["80", "90"])
def test_every_kernel_specialisation_compiles(arch: str) -> None:
    """Every specialisation the launchers use compiles for sm_80 and sm_90; where ``ptxas``
    spills at all, at most 8 bytes per thread."""
    output = _compile("--all", "--arch", arch)
    assert f"kernels for sm_{arch};" in output
    largest = int(re.search(r"largest spill: (\d+) B", output).group(1))
    assert largest <= 8, output[-3000:]


@pytest.mark.parametrize("path", ["persistent", "per_step"])
def test_recurrent_products_ignore_autocast(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ``bf16-mixed`` autocast the per-step recurrent products (and the weight gradient)
    stay in the float32 state: the same results as without autocast."""
    if path == "per_step":
        monkeypatch.setattr(gpu, "PERSISTENT_MAX_HIDDEN", 4)
    results = []
    for enabled in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            results.append(_bfloat16_recurrent_run())
    for plain, autocast in zip(*results, strict=True):
        assert torch.equal(plain, autocast)


def _bfloat16_recurrent_run() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(4)
    projected = (torch.randn(12, 3, 11, generator=generator) * 3).bfloat16().requires_grad_()
    w_rec = (torch.randn(11, 11, generator=generator) * 0.6).requires_grad_()
    state = [torch.zeros(3, 11) for _ in range(3)]
    params = [torch.full((3, 11), value) for value in (0.1, 0.2, 0.0, 0.0, 1.0, 0.0, 0.0)]
    z, *_ = ops.recurrent_sequence(projected, w_rec, *state, None, *params, 0, "super", 20.0)
    grads = torch.autograd.grad(z.float().sum(), [projected, w_rec])
    return [z, *grads]


def test_nan_guard_stops_a_diverging_run(tmp_path: Path) -> None:
    """A run whose input turns infinite: the kernels carry the NaN into the gradients (the
    spikes, 0 or 1, stay finite) exactly as the step loop does, and the guard stops training at
    that step, before the weights change."""
    import lightning.pytorch as pl

    import spikeexp as snn
    from spikeexp.callbacks.reliability import NonFiniteGuard, NonFiniteLossError

    class Diverging(pl.LightningModule):
        def __init__(self, backend: str) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(6, 12)
            self.lif = snn.LIF(backend=backend)
            self.readout = snn.LI(backend=backend)
            self.out = torch.nn.Linear(12, 2)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            (x,) = batch
            if index == 3:
                x = x * torch.inf
            current = self.fc(x).unsqueeze(0).expand(8, -1, -1)
            spikes, _ = self.lif(current * 5.0)
            voltages, _ = self.readout(self.out(spikes))
            return voltages.max(0).values.pow(2).mean()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    messages = []
    for backend in ("fused", "reference"):
        torch.manual_seed(0)
        data = torch.utils.data.TensorDataset(torch.rand(24, 6))
        model = Diverging(backend)
        trainer = pl.Trainer(
            max_epochs=1,
            callbacks=[NonFiniteGuard()],
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            default_root_dir=tmp_path,
        )
        with pytest.raises(NonFiniteLossError) as stopped:
            trainer.fit(model, torch.utils.data.DataLoader(data, batch_size=4))
        assert all(torch.isfinite(p).all() for p in model.parameters())
        messages.append(str(stopped.value).split(";")[0])
    assert messages == ["gradient of fc.weight is not finite at global step 3 (epoch 0)"] * 2
