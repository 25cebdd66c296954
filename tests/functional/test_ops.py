"""The fused sequence operators (``torch.library``, namespace ``spikeexp``) on the CPU: the C++
kernels against the reference loop (the cases of ``fused_cases.py``), the operators' schemas,
fake implementations and autograd registration (``torch.library.opcheck``), and
``torch.compile(fullgraph=True)`` of whole experiment networks through them."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from spikeexp.engine import network_from_config
from spikeexp.functional.fused import build, ops
from spikeexp.functional.surrogate import SURROGATES
from tests.functional import fused_cases as cases

pytestmark = pytest.mark.skipif(build.kernels() is None, reason="no C++ compiler")


@pytest.mark.parametrize("layout", ["contiguous", "constant", "channels_last", "transposed"])
@pytest.mark.parametrize("name", ["li", "lsnn"])
def test_feed_forward_layouts(name: str, layout: str) -> None:
    model = cases.MODELS[name]
    shape = (12, 2, 3, 4, 5) if layout == "channels_last" else (15, 3, 17)
    p = model.parameters(tau_adapt_inv=50.0, beta=0.2) if name == "lsnn" else model.parameters()
    cases.check_feed_forward(model, p, shape=shape, layout=layout)


@pytest.mark.parametrize("method", sorted(SURROGATES))
@pytest.mark.parametrize("adaptation", ["norse", "bellec"])
def test_lsnn_feed_forward_every_surrogate(adaptation: str, method: str) -> None:
    beta = 0.3 if adaptation == "norse" else 30.0
    p = cases.LSNN.parameters(
        adaptation=adaptation, beta=beta, tau_adapt_inv=50.0, method=method, alpha=20.0
    )
    cases.check_feed_forward(cases.LSNN, p, shape=(25, 2, 13))


def test_lsnn_feed_forward_per_neuron_parameters_and_float64() -> None:
    p = cases.LSNN.parameters(
        tau_mem_inv=torch.linspace(60, 200, 9, dtype=torch.float64),
        v_th=torch.linspace(0.7, 1.2, 9, dtype=torch.float64),
        beta=torch.tensor([0.0] * 4 + [0.2] * 5, dtype=torch.float64),
        v_leak=0.1,
        v_reset=-0.2,
    )
    cases.check_feed_forward(cases.LSNN, p, shape=(20, 4, 9), dtype=torch.float64)


def test_li_learnable_and_per_neuron_parameters() -> None:
    p = cases.LI.parameters(tau_mem_inv=torch.linspace(50, 300, 17), v_leak=0.2)
    cases.check_feed_forward(
        cases.LI, p, learnable=("tau_mem_inv", "tau_syn_inv", "v_leak"), shape=(9, 2, 17)
    )


def test_li_shared_parameters_and_float64() -> None:
    p = cases.LI.parameters(tau_syn_inv=torch.linspace(100, 300, 70, dtype=torch.float64))
    cases.check_feed_forward(cases.LI, p, shape=(10, 3, 70), dtype=torch.float64)


@pytest.mark.parametrize("name", ["lif", "lsnn", "li"])
def test_bfloat16_inputs_run_with_a_float32_state(name: str) -> None:
    model = cases.MODELS[name]
    cases.check_feed_forward(model, model.parameters(), dtype=torch.bfloat16)


@pytest.mark.parametrize("mode", ["lif", "norse", "bellec"])
def test_recurrent_bfloat16_projection(mode: str) -> None:
    cases.check_recurrent_bfloat16(mode)


def test_recurrent_lsnn_through_the_operator() -> None:
    p = cases.LSNN.parameters(beta=0.3, tau_adapt_inv=50.0, method="arctan", alpha=30.0)
    cases.check_recurrent(cases.LSNN, p)


@pytest.mark.parametrize("name", ["li", "lsnn", "lif"])
def test_feed_forward_nan_and_inf_as_the_reference(name: str) -> None:
    model = cases.MODELS[name]
    cases.check_feed_forward(model, model.parameters(), shape=(8, 2, 6), nonfinite=True)


@pytest.mark.parametrize("name", ["lif", "lsnn"])
def test_recurrent_nan_and_inf_as_the_reference(name: str) -> None:
    model = cases.MODELS[name]
    cases.check_recurrent(model, model.parameters(), nonfinite=True)


@pytest.mark.parametrize("x, size", cases.pool_inputs()[:3])
def test_max_pool_bfloat16_through_float32(x: torch.Tensor, size: int) -> None:
    cases.check_max_pool(x.bfloat16(), size)


def _lif_args(shape=(5, 2, 3)):
    generator = torch.Generator().manual_seed(0)
    x = (torch.randn(shape, generator=generator) * 4 + 1).requires_grad_()
    state = [torch.rand(shape[1:], generator=generator).requires_grad_() for _ in range(2)]
    params = [torch.full(shape[1:], value) for value in (0.1, 0.2, 0.0, 1.0, 0.0)]
    return x, state, params


def _opcheck_cases():
    x, (v0, i0), params = _lif_args()
    constant = x.detach()[:1].expand(5, 2, 3).requires_grad_()
    b0 = torch.ones(2, 3, requires_grad=True)
    lsnn = [*params[:2], torch.full((2, 3), 0.05), *params[2:], torch.full((2, 3), 0.3)]
    z0 = torch.zeros(2, 3, requires_grad=True)
    weights = torch.randn(3, 3, requires_grad=True)
    pool = (torch.rand(2, 3, 6, 5) < 0.4).float().requires_grad_()
    return {
        "lif": (ops.lif_sequence, (x, v0, i0, *params, "super", 10.0, 1)),
        "lif_constant_input": (ops.lif_sequence, (constant, v0, i0, *params, "erfc", 3.0, 1)),
        "lif_repeated_step": (ops.lif_sequence, (constant[0], v0, i0, *params, "super", 3.0, 1, 5)),
        "lif_repeated_step_given_surrogate": (
            ops.lif_sequence,
            (constant[0], v0, i0, *params, "sigmoid", 3.0, 1, 5),
        ),
        "lif_parameter_grads": (
            ops.lif_sequence,
            (x, v0, i0, *(t.clone().requires_grad_() for t in params), "sigmoid", 5.0, 2),
        ),
        "lsnn": (ops.lsnn_sequence, (x, v0, i0, b0, *lsnn, 1, "super", 10.0, True)),
        "li": (ops.li_sequence, (x, v0, i0, *params[:3], False)),
        "recurrent": (
            ops.recurrent_sequence,
            (x, weights, z0, v0, i0, b0, *lsnn, 2, "triangle", 1.0),
        ),
        "recurrent_lif": (
            ops.recurrent_sequence,
            (x, weights, z0, v0, i0, None, *lsnn, 0, "super", 10.0),
        ),
        "max_pool2d": (ops.max_pool2d, (pool, 2)),
    }


@pytest.mark.parametrize("case", sorted(_opcheck_cases()))
def test_operator_registration(case: str) -> None:
    """Schema, fake implementation (shapes, dtypes, strides), autograd registration, and a
    trace by AOTAutograd with dynamic shapes, each against the real implementation."""
    op, args = _opcheck_cases()[case]
    results = torch.library.opcheck(op, args)
    assert set(results.values()) == {"SUCCESS"}, results


def test_second_derivatives_raise_a_clear_error() -> None:
    x, (v0, i0), params = _lif_args()
    z, v, *_ = ops.lif_sequence(x, v0, i0, *params, "super", 10.0, 1)
    (grad,) = torch.autograd.grad((z.sum() + v.pow(2).sum()), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward through spikeexp::lif_sequence"):
        grad.sum().backward()


def test_without_saving_there_is_no_gradient() -> None:
    x, (v0, i0), params = _lif_args()
    z, *_ = ops.lif_sequence(x, v0, i0, *params, "super", 10.0, 0)
    with pytest.raises(RuntimeError, match="without saving"):
        z.sum().backward()


def test_unknown_device_type_names_the_valid_ones() -> None:
    with pytest.raises(NotImplementedError, match="valid: cpu, cuda"):
        ops.implementation(torch.device("meta"))


def _spikeexp_operators(graph: torch.fx.Graph) -> set[str]:
    return {
        str(node.target)
        for node in graph.nodes
        if node.op == "call_function" and str(node.target).startswith("spikeexp.")
    }


NETWORKS = {
    "conv": (
        {"type": "conv", "channels": [3], "hidden": [6], "kernel_size": 3, "pool": 2},
        {"model": "lif"},
        (1, 6, 6),
        {"lif_sequence", "max_pool2d", "li_sequence"},
    ),
    "recurrent_lsnn": (
        {"type": "recurrent", "hidden": [6]},
        {"model": "lsnn", "tau_adapt_inv": 50.0},
        (5,),
        {"recurrent_sequence", "li_sequence"},
    ),
    "mlp_lsnn": (
        {"type": "mlp", "hidden": [6]},
        {"model": "lsnn", "tau_adapt_inv": 50.0},
        (5,),
        {"lsnn_sequence", "li_sequence"},
    ),
}


@pytest.mark.parametrize(
    "name, backend",
    [("conv", "inductor"), ("recurrent_lsnn", "aot_eager"), ("mlp_lsnn", "aot_eager")],
)
def test_compiled_network_traces_through_the_operators(name: str, backend: str) -> None:
    """``torch.compile(network, fullgraph=True)``: one graph holding the operators (forward
    and backward), the eager results, no graph break."""
    topology, neuron, shape, expected = NETWORKS[name]
    torch.manual_seed(0)
    network = network_from_config(topology, neuron, {"model": "li"}, shape, 3)
    x = torch.rand(6, 2, *shape) * 4
    graphs: list[torch.fx.Graph] = []

    def recording(gm: torch.fx.GraphModule, example_inputs):
        graphs.append(gm.graph)
        return torch._dynamo.lookup_backend(backend)(gm, example_inputs)

    breaks = sum(counters["graph_break"].values())
    compiled = torch.compile(network, fullgraph=True, backend=recording)
    out, _ = compiled(x)
    out_ref, _ = network(x)
    assert len(graphs) == 1 and sum(counters["graph_break"].values()) == breaks
    assert {
        name for op in _spikeexp_operators(graphs[0]) for name in [op.split(".")[1]]
    } == expected
    torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-6)
    grads = torch.autograd.grad(out.sum(), list(network.parameters()))
    grads_ref = torch.autograd.grad(network(x)[0].sum(), list(network.parameters()))
    for actual, reference in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(actual, reference, rtol=1e-5, atol=1e-5)
