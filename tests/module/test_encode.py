"""Encoder modules: shapes, seeded random streams saved in the state dict, configs, validation."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import spikeexp
from spikeexp.functional.encode import constant_current_lif_encode, poisson_encode
from spikeexp.functional.neurons.lif import LIFParameters
from spikeexp.module.encode import (
    ConstantCurrentEncoder,
    ConstantCurrentLIFEncoder,
    PoissonEncoder,
    PopulationEncoder,
    SpikeLatencyEncoder,
)

CONF = Path(spikeexp.__file__).resolve().parent.parent / "conf" / "encoder"

ENCODERS = {
    "constant_current": lambda: ConstantCurrentEncoder(6, scale=0.5),
    "constant_current_lif": lambda: ConstantCurrentLIFEncoder(6, dt=1e-3, scale=2.0),
    "poisson": lambda: PoissonEncoder(6, f_max=300.0, dt=1e-3, seed=4),
    "spike_latency": lambda: SpikeLatencyEncoder(6, threshold=0.1),
    "population_trailing": lambda: PopulationEncoder(6, size=3),
    "population_flat": lambda: PopulationEncoder(6, size=3, layout="flat", mode="poisson"),
    "population_channels": lambda: PopulationEncoder(6, size=4, layout="channels"),
}


@pytest.mark.parametrize("name", ENCODERS)
@pytest.mark.parametrize("shape", [(1, 8, 8), (2, 5, 5), (10,)], ids=["1x8x8", "2x5x5", "10"])
def test_output_shape_agrees_with_forward(name: str, shape: tuple[int, ...]) -> None:
    encoder = ENCODERS[name]()
    out = encoder(torch.rand(3, *shape))
    assert out.shape == (6, 3, *encoder.output_shape(shape))


def test_population_layouts() -> None:
    x = torch.rand(2, 3, 4, 5)
    trailing = PopulationEncoder(1, size=6)(x)[0]
    assert trailing.shape == (2, 3, 4, 5, 6)
    channels = PopulationEncoder(1, size=6, layout="channels")(x)[0]
    # neuron j of channel c sits at channel c * size + j
    assert torch.equal(channels[:, 1 * 6 + 2], trailing[:, 1, :, :, 2])
    flat = PopulationEncoder(1, size=6, layout="flat")(x)[0]
    assert torch.equal(flat, trailing.reshape(2, -1))
    with pytest.raises(ValueError, match=re.escape("expects input [batch, channels, ...]")):
        PopulationEncoder(1, size=6, layout="channels")(torch.rand(4))


def test_population_poisson_rate_follows_tuning() -> None:
    steps, batch, dt = 1000, 100, 1e-3
    encoder = PopulationEncoder(steps, size=3, mode="poisson", f_max=200.0, sigma=0.25, dt=dt)
    rates = encoder(torch.zeros(batch)).mean((0, 1)) / dt  # Hz per neuron of the population
    expected = 200.0 * torch.exp(-(torch.tensor([0.0, 0.5, 1.0]) ** 2) / (2 * 0.25**2))
    probability = expected * dt
    five_standard_errors = 5 * (probability * (1 - probability) / (steps * batch)).sqrt() / dt
    assert bool(((rates - expected).abs() <= five_standard_errors + 1e-9).all()), (rates, expected)


def test_constant_current_lif_encoder_matches_functional_golden() -> None:
    encoder = ConstantCurrentLIFEncoder(9)
    assert encoder(torch.ones(1, 1)).flatten().tolist() == [0, 0, 0, 0, 0, 1, 0, 0, 1]
    x = torch.rand(4, 7)
    override = ConstantCurrentLIFEncoder(40, tau_mem_inv=50.0, scale=3.0)
    expected = constant_current_lif_encode(x, 40, LIFParameters(tau_mem_inv=50.0), 1e-3, 3.0)
    assert torch.equal(override(x), expected)


def test_poisson_encoder_seeded_and_independent_of_global_rng() -> None:
    x = torch.full((4, 10), 0.5)
    torch.manual_seed(0)
    first = PoissonEncoder(20, seed=7)(x)
    torch.manual_seed(1)
    assert torch.equal(PoissonEncoder(20, seed=7)(x), first)
    assert not torch.equal(PoissonEncoder(20, seed=8)(x), first)
    reference = poisson_encode(x, 20, 100.0, 1e-3, torch.Generator().manual_seed(7))
    assert torch.equal(first, reference)


@pytest.mark.parametrize("make", [ENCODERS["poisson"], ENCODERS["population_flat"]])
def test_generator_state_round_trips_through_state_dict(make) -> None:
    x = torch.rand(3, 1, 4, 4)
    running = make()
    running(x)  # advance the stream past its start
    buffer = io.BytesIO()
    torch.save(running.state_dict(), buffer)
    expected_next = running(x)
    buffer.seek(0)
    resumed = make()
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(resumed(x), expected_next)
    assert not torch.equal(make()(x), expected_next)  # a fresh stream differs


def test_encoders_exported_top_level() -> None:
    for name in ("ConstantCurrentEncoder", "PoissonEncoder", "PopulationEncoder"):
        assert getattr(spikeexp, name) is getattr(spikeexp.module.encode, name)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ConstantCurrentEncoder(0), "seq_length must be an integer >= 1 (got 0)"),
        (lambda: ConstantCurrentEncoder(4, scale=float("nan")), "scale must be finite (got nan)"),
        (lambda: ConstantCurrentLIFEncoder(4, dt=0.0), "dt must be > 0 (got 0)"),
        (
            lambda: ConstantCurrentLIFEncoder(4, tau_mem_inv=-1.0),
            "tau_mem_inv must be > 0 (got -1)",
        ),
        (lambda: ConstantCurrentLIFEncoder(4, tau_men_inv=1.0), "unknown LIF parameter"),
        (lambda: PoissonEncoder(4, f_max=2000.0), "f_max * dt must be <= 1"),
        (lambda: PoissonEncoder(4, seed=-1), "seed must be an integer >= 0 (got -1)"),
        (lambda: SpikeLatencyEncoder(4, threshold=-0.5), "threshold must be in [0, 1]"),
        (lambda: PopulationEncoder(4, size=0), "size must be an integer >= 1 (got 0)"),
        (lambda: PopulationEncoder(4, sigma=0.0), "sigma must be > 0 (got 0)"),
        (lambda: PopulationEncoder(4, mode="rate"), "mode must be one of current, poisson"),
        (lambda: PopulationEncoder(4, layout="x"), "layout must be one of trailing, flat"),
    ],
)
def test_validation(make, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


ENCODER_CONFIGS = (
    "constant_current",
    "constant_current_lif",
    "poisson",
    "spike_latency",
    "population",
)


@pytest.mark.parametrize("name", ENCODER_CONFIGS)
def test_configs_instantiate(name: str) -> None:
    node = OmegaConf.load(CONF / f"{name}.yaml")
    root = OmegaConf.create({"seq_length": 5, "dt": 1e-3, "seed": 0, "encoder": node})
    encoder = instantiate(root.encoder)
    assert encoder.seq_length == 5
    out = encoder(torch.rand(2, 1, 8, 8))
    assert out.shape == (5, 2, *encoder.output_shape((1, 8, 8)))


def test_every_encoder_has_a_config() -> None:
    targets = {OmegaConf.load(path)["_target_"] for path in CONF.glob("*.yaml")}
    for name in spikeexp.module.encode.__all__:
        if name != "Encoder":
            assert f"spikeexp.module.encode.{name}" in targets


@pytest.mark.parametrize("name", ENCODERS)
def test_input_without_batch_axis_is_rejected(name: str) -> None:
    with pytest.raises(ValueError, match=re.escape("expects input [batch, ...] (got a 0-dim")):
        ENCODERS[name]()(torch.tensor(0.5))
