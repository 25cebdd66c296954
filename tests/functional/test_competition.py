"""The competitive (winner-take-all) layer: lateral inhibition, refractoriness, strict
threshold, adaptive thresholds that grow in training only."""

from __future__ import annotations

import math

import pytest
import torch

from spikeexp.functional.competition import (
    CompetitiveParameters,
    competitive_initial_state,
    competitive_step,
    theta_update,
    validate_competitive,
)
from spikeexp.module.competitive import CompetitiveLIF

P = CompetitiveParameters(tau_mem_inv=20.0, inhibition=0.4, refractory=3e-3, theta_plus=0.1)


def test_a_spike_inhibits_the_other_neurons_at_the_next_step() -> None:
    state = competitive_initial_state(P, torch.zeros(1, 3))
    theta = torch.zeros(3)
    z, state = competitive_step(torch.tensor([[1.5, 0.6, 0.0]]), state, theta, P, 1e-3)
    assert z.tolist() == [[1.0, 0.0, 0.0]]
    decay = math.exp(-1e-3 * 20.0)
    z, state = competitive_step(torch.tensor([[0.0, 0.5, 0.5]]), state, theta, P, 1e-3)
    assert z.tolist() == [[0.0, 0.0, 0.0]]
    assert state.v.tolist()[0] == pytest.approx([0.0, decay * 0.6 + 0.5 - 0.4, 0.5 - 0.4])


def test_refractory_neurons_ignore_input() -> None:
    state = competitive_initial_state(P, torch.zeros(1, 1))
    theta = torch.zeros(1)
    spikes = []
    for _ in range(6):
        z, state = competitive_step(torch.tensor([[2.0]]), state, theta, P, 1e-3)
        spikes.append(int(z))
    assert spikes == [1, 0, 0, 0, 1, 0]  # 3 ms refractory at dt = 1 ms


def test_threshold_is_strict_and_raised_by_theta() -> None:
    state = competitive_initial_state(P, torch.zeros(1, 2))
    z, _ = competitive_step(torch.tensor([[1.0, 1.3]]), state, torch.tensor([0.0, 0.3]), P, 1e-3)
    assert z.tolist() == [[0.0, 0.0]]


def test_theta_grows_per_spike_and_decays() -> None:
    spikes = torch.zeros(10, 2, 3)
    spikes[0, 0, 1] = spikes[5, 1, 1] = spikes[2, 1, 2] = 1.0
    counts = spikes.sum((0, 1))
    theta = theta_update(torch.tensor([0.5] * 3), counts, 10, P._replace(tau_theta_inv=2.0), 1e-3)
    decay = math.exp(-10 * 1e-3 * 2.0)
    assert theta.tolist() == pytest.approx([0.5 * decay, 0.5 * decay + 0.2, 0.5 * decay + 0.1])


def test_layer_updates_theta_in_training_only() -> None:
    layer = CompetitiveLIF(4, P)
    x = torch.rand(30, 2, 4) * 2
    spikes, _ = layer.eval()(x)
    assert spikes.sum() > 0 and torch.equal(layer.theta, torch.zeros(4))
    spikes, _ = layer.train()(x)
    torch.testing.assert_close(layer.theta, 0.1 * spikes.sum((0, 1)))
    assert "theta" in layer.state_dict()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"tau_mem_inv": 0.0}, "tau_mem_inv must be > 0 (got 0)"),
        ({"v_th": 0.0}, "v_th must be > v_reset (got v_th=0, v_reset=0)"),
        ({"inhibition": -1.0}, "inhibition must be >= 0 (got -1)"),
        ({"theta_plus": -0.1}, "theta_plus must be >= 0 (got -0.1)"),
    ],
)
def test_validation(override: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_competitive(P._replace(**override), 1e-3)
    assert str(caught.value) == message


def test_quiet_samples_are_presented_again_with_stronger_input() -> None:
    """Sample 1 is silent at its input; with ``min_spikes=3`` it is repeated with the input
    doubled (boost 1), which gives the spikes a plain layer gives for that doubled input. A sample
    without input stays silent after ``max_repeats`` repetitions; loud samples are untouched."""
    kwargs = {"inhibition": 0.0, "refractory": 2e-3}
    layer = CompetitiveLIF(5, min_spikes=3, boost=1.0, max_repeats=3, **kwargs).eval()
    plain = CompetitiveLIF(5, **kwargs).eval()
    x = torch.zeros(20, 3, 5)
    x[:, 0], x[:, 1] = 0.3, 0.06
    out, _ = layer(x)
    assert plain(x[:, 1:2])[0].sum() == 0
    torch.testing.assert_close(out[:, 1:2], plain(2 * x[:, 1:2])[0])
    torch.testing.assert_close(out[:, 0:1], plain(x[:, 0:1])[0])
    assert out[:, 2].sum() == 0
    layer.record_states = True
    recorded, trajectory = layer(x)
    assert torch.equal(recorded, out) and trajectory.v.shape == (20, 3, 5)
    with pytest.raises(ValueError, match=r"^min_spikes must be an integer >= 0 \(got -1\)$"):
        CompetitiveLIF(5, min_spikes=-1)
    with pytest.raises(ValueError, match=r"^boost must be > 0 \(got 0\)$"):
        CompetitiveLIF(5, boost=0.0)
