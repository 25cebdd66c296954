"""``backend="compiled"`` (torch.compile of the step) against the reference loop."""

from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

import spikeexp as snn

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4


def _run(module: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    x = x.clone().requires_grad_()
    out, _ = module(x)
    target = torch.linspace(0, 1, out[0].numel()).reshape(out.shape[1:])
    loss = ((out.sum(0) - target) ** 2).mean()
    params = [p for p in module.parameters() if p.requires_grad]
    return out.detach(), torch.autograd.grad(loss, [x, *params])


def _compare(make: type, x: torch.Tensor, **kwargs) -> None:
    torch.manual_seed(0)
    reference = make(backend="reference", **kwargs)
    compiled = make(backend="compiled", **kwargs)
    compiled.load_state_dict(reference.state_dict())
    out_ref, grads_ref = _run(reference, x)
    out, grads = _run(compiled, x)
    assert 0.02 < float(out_ref.mean()) < 0.9, "the test needs spikes and silence"
    torch.testing.assert_close(out, out_ref, rtol=0, atol=FORWARD_TOL)
    for actual, expected in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(actual, expected, rtol=GRAD_TOL, atol=GRAD_TOL)


def test_feed_forward_lif_with_learnable_threshold() -> None:
    graphs = counters["stats"]["unique_graphs"]
    x = torch.randn(12, 3, 10) * 4 + 1
    _compare(snn.LIF, x, learnable=["v_th"])
    # The step really was compiled, as one graph without breaks (not run eagerly).
    assert counters["stats"]["unique_graphs"] > graphs
    assert not counters["graph_break"]


def test_feed_forward_izhikevich_has_no_kernel_but_compiles() -> None:
    x = torch.randn(30, 2, 6) * 10 + 8
    _compare(snn.Izhikevich, x)


@pytest.mark.parametrize("adaptation", ["norse"])
def test_recurrent_lsnn(adaptation: str) -> None:
    x = (torch.rand(15, 3, 5) < 0.4).float() * 2
    _compare(lambda **kw: snn.LSNNRecurrent(5, 7, adaptation=adaptation, **kw), x)


def test_unknown_backend_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="backend must be one of auto, reference, fused, compiled"):
        snn.LIF(backend="jit")


def test_more_step_versions_than_torchs_default_limit_stay_compiled() -> None:
    """Three input ranks x (first step, later steps, no-grad) = 9 versions of one step function,
    more than torch.compile's default recompile limit of 8, past which it runs steps uncompiled."""
    layer = snn.IAF(backend="compiled")
    graphs = counters["stats"]["unique_graphs"]
    for shape in [(4, 3), (4, 3, 2), (4, 3, 2, 2)]:
        x = torch.rand(shape, requires_grad=True)
        layer(x)[0].sum().backward()
        with torch.no_grad():
            layer(x)
    assert counters["stats"]["unique_graphs"] - graphs == 9
