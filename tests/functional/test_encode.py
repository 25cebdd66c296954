"""Encoder functions: hand-computed outputs, spike statistics and parameter validation."""

from __future__ import annotations

import math
import re

import pytest
import torch

from spikeexp.functional.encode import (
    constant_current_encode,
    constant_current_lif_encode,
    gaussian_tuning,
    poisson_encode,
    population_centres,
    spike_latency_encode,
    threshold_crossing_encode,
    uniform_thresholds,
)
from spikeexp.functional.neurons.lif import LIFParameters


def test_constant_current_repeats_scaled_input() -> None:
    x = torch.tensor([[0.0, 0.5], [1.0, 2.0]])
    out = constant_current_encode(x, 3, scale=2.0)
    assert out.shape == (3, 2, 2)
    for step in out:
        assert torch.equal(step, 2.0 * x)


def test_constant_current_lif_golden_spike_train() -> None:
    """Input 1, Norse defaults: v = 0.1, 0.27, 0.487, 0.7335, 0.9963, 1.2656 (spike at step 5),
    then 0.3951, 0.7717, 1.1275 (spike at step 8) - see spikeexp.functional.neurons.lif."""
    spikes = constant_current_lif_encode(torch.ones(1), 9).squeeze(1)
    assert spikes.tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 1]


def test_constant_current_lif_threshold_current() -> None:
    """The synaptic current settles at 5 x (dt * tau_syn_inv = 0.2), so v -> 5 x:
    x <= 0.2 never reaches v_th = 1."""
    x = torch.tensor([0.0, 0.19, 0.25, 1.0])
    counts = constant_current_lif_encode(x, 300).sum(0)
    assert counts[0] == 0 and counts[1] == 0
    assert 0 < counts[2] < counts[3]


def test_constant_current_lif_uses_parameters() -> None:
    slow = constant_current_lif_encode(torch.ones(1), 50, LIFParameters(tau_mem_inv=50.0))
    fast = constant_current_lif_encode(torch.ones(1), 50)
    assert 0 < slow.sum() < fast.sum()


@pytest.mark.parametrize("f_max", [100.0, 400.0])
def test_poisson_rate_matches_f_max_times_x(f_max: float) -> None:
    dt, steps, batch = 1e-3, 500, 400
    levels = torch.tensor([0.0, 0.1, 0.5, 1.0])
    x = levels.repeat(batch, 1)
    generator = torch.Generator().manual_seed(0)
    spikes = poisson_encode(x, steps, f_max, dt, generator)
    assert set(spikes.unique().tolist()) <= {0.0, 1.0}
    trials = steps * batch
    for column, level in enumerate(levels.tolist()):
        probability = f_max * dt * level
        observed = float(spikes[:, :, column].mean())
        bound = 5 * math.sqrt(probability * (1 - probability) / trials)  # 5 standard errors
        assert abs(observed - probability) <= bound, (level, observed, probability)
        assert abs(observed / dt - f_max * level) <= bound / dt


def test_poisson_extremes_and_dtype() -> None:
    x = torch.tensor([0.0, 1.0], dtype=torch.float64)
    spikes = poisson_encode(x, 20, f_max=1000.0, dt=1e-3)
    assert spikes.dtype == torch.float64
    assert spikes[:, 0].sum() == 0 and spikes[:, 1].sum() == 20


def test_poisson_seeded_generator_is_deterministic() -> None:
    x = torch.full((3, 5), 0.5)
    first = poisson_encode(x, 10, generator=torch.Generator().manual_seed(1))
    again = poisson_encode(x, 10, generator=torch.Generator().manual_seed(1))
    other = poisson_encode(x, 10, generator=torch.Generator().manual_seed(2))
    assert torch.equal(first, again) and not torch.equal(first, other)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"f_max": 2000.0}, "f_max * dt must be <= 1"),
        ({"f_max": -1.0}, "f_max must be > 0 (got -1)"),
        ({"dt": 0.0}, "dt must be > 0 (got 0)"),
        ({"seq_length": 0}, "seq_length must be an integer >= 1 (got 0)"),
    ],
)
def test_poisson_validation(kwargs: dict, message: str) -> None:
    arguments = {"seq_length": 5, "f_max": 100.0, "dt": 1e-3} | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        poisson_encode(torch.rand(2), **arguments)


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_poisson_rejects_inputs_outside_unit_interval(bad: float) -> None:
    with pytest.raises(ValueError, match=r"poisson input must be in \[0, 1\]"):
        poisson_encode(torch.tensor([0.5, bad]), 5)


def test_spike_latency_mapping() -> None:
    x = torch.tensor([1.0, 0.5, 0.05, 0.0])
    spikes = spike_latency_encode(x, 11)
    assert spikes.shape == (11, 4)
    assert spikes.sum(0).tolist() == [1, 1, 1, 0]
    first = spikes.argmax(0)
    assert first[:3].tolist() == [0, 5, round(0.95 * 10)]


def test_spike_latency_brighter_fires_earlier() -> None:
    x = torch.rand(200)
    spikes = spike_latency_encode(x, 50, threshold=0.1)
    fires = x > 0.1
    assert torch.equal(spikes.sum(0), fires.float())
    latency = spikes.argmax(0)[fires]
    order = torch.argsort(x[fires], descending=True)
    assert bool((latency[order].diff() >= 0).all())


def test_spike_latency_validation() -> None:
    with pytest.raises(ValueError, match=r"threshold must be < 1 \(got 1\)"):
        spike_latency_encode(torch.rand(3), 5, threshold=1.0)
    with pytest.raises(ValueError, match=r"spike_latency input must be in \[0, 1\]"):
        spike_latency_encode(torch.tensor([2.0]), 5)


def test_population_centres() -> None:
    assert population_centres(5, 0.0, 1.0).tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert population_centres(1, 0.0, 1.0).tolist() == [0.5]


def test_gaussian_tuning_peaks_at_preferred_values() -> None:
    centres = population_centres(5, -1.0, 1.0)
    activation = gaussian_tuning(centres, 5, -1.0, 1.0)
    assert activation.shape == (5, 5)
    assert torch.equal(activation.argmax(-1), torch.arange(5))
    torch.testing.assert_close(activation.diagonal(), torch.ones(5))
    # default sigma = spacing: a neighbour one spacing away responds with exp(-1/2)
    torch.testing.assert_close(activation[2, 1], torch.tensor(math.exp(-0.5)))
    narrow = gaussian_tuning(torch.tensor([0.25]), 3, 0.0, 1.0, sigma=0.1)
    expected = torch.exp(-((0.25 - torch.tensor([0.0, 0.5, 1.0])) ** 2) / (2 * 0.01))
    torch.testing.assert_close(narrow[0], expected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, r"size must be an integer >= 1 \(got 0\)"),
        ({"low": 1.0, "high": 1.0}, r"high must be > low \(got low=1, high=1\)"),
        ({"sigma": -0.5}, r"sigma must be > 0 \(got -0.5\)"),
    ],
)
def test_gaussian_tuning_validation(kwargs: dict, message: str) -> None:
    arguments = {"size": 4, "low": 0.0, "high": 1.0} | kwargs
    with pytest.raises(ValueError, match=message):
        gaussian_tuning(torch.rand(2), **arguments)


def test_threshold_crossing_by_hand() -> None:
    """Sequence 0, 0.6, 0.2, 0.9, 0.5 against thresholds 0.25, 0.5, 0.75 (x_{-1} = 0)."""
    thresholds = uniform_thresholds(3)
    assert thresholds.tolist() == [0.25, 0.5, 0.75]
    x = torch.tensor([0.0, 0.6, 0.2, 0.9, 0.5]).view(1, 5, 1)
    spikes = threshold_crossing_encode(x, thresholds)
    # channels: up 0.25, up 0.5, up 0.75, down 0.25, down 0.5, down 0.75
    expected = [
        [0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 0, 0, 1, 1, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 1],  # 0.9 -> 0.5: 0.5 is reached, not crossed downwards
    ]
    assert spikes.shape == (1, 5, 6)
    assert spikes[0].tolist() == expected


def test_threshold_crossing_features_own_their_channels() -> None:
    x = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]])  # [1, T=2, features=2]
    spikes = threshold_crossing_encode(x, torch.tensor([0.5]))
    # feature 0: up at t=1; feature 1: up at t=0, down at t=1.
    # Channels: f0 up, f0 down, f1 up, f1 down.
    assert spikes[0].tolist() == [[0, 0, 1, 0], [1, 0, 0, 1]]


@pytest.mark.parametrize(
    ("x", "thresholds", "message"),
    [
        (torch.zeros(2, 3), torch.tensor([0.5]), r"x \[batch, T, features\]"),
        (torch.zeros(1, 2, 3), torch.zeros(0), "1-D tensor of >= 1 values"),
    ],
)
def test_threshold_crossing_rejects_bad_shapes(x, thresholds, message) -> None:
    with pytest.raises(ValueError, match=message):
        threshold_crossing_encode(x, thresholds)
