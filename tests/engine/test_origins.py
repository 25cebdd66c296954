"""Errors about interpolated values name the key the value was written as."""

from __future__ import annotations

import copy

import pytest
from omegaconf import OmegaConf

from spikeexp.engine import ConfigError, validate_config
from spikeexp.engine.origins import Origins
from spikeexp.engine.schema import validate_target
from tests.engine.test_config import compose_train
from tests.engine.test_validate import PLAIN


def test_links_of_the_composed_config() -> None:
    origins = Origins.of_config(compose_train(["decoder=spike_count", "encoder=poisson"]))
    assert origins.links["scheduler.scheduler.T_max"] == "trainer.max_epochs"
    assert origins.links["encoder.seed"] == "seed"
    assert origins.links["decoder.readout"] == "neuron"
    # A chain through an interpolated section: readout -> neuron, neuron.dt -> dt.
    assert origins.of("decoder.readout.dt") == "dt"
    assert origins.of("decoder.readout.v_th") == "neuron.v_th"
    assert origins.of("optimizer.lr") == "optimizer.lr"
    # Resolvers have no key of origin.
    assert "paths.output_dir" not in origins.links


def test_relative_and_selected_interpolations() -> None:
    config = OmegaConf.create(
        {
            "a": {"x": 1, "y": "${.x}", "z": {"w": "${..x}"}},
            "b": "${oc.select:a.x,3}",
            "c": "run_${a.x}",
            "d": "${now:%H}",
        }
    )
    origins = Origins.of_config(config)
    assert origins.of("a.y") == "a.x" and origins.of("a.z.w") == "a.x"
    assert origins.of("b") == "a.x"
    assert origins.of("c") == "c" and origins.of("d") == "d"


def test_an_interpolation_of_a_missing_key_is_named_where_it_was_written() -> None:
    config = {"a": "${b}", "b": "${nope}", "c": {"d": "${a}"}}
    origins = Origins.of_config(config)
    assert origins.written_at("c.d", config) == "b"
    assert origins.written_at("c.d") == "nope"
    del config["b"]
    assert origins.written_at("c.d", config) == "a"


def test_a_cycle_ends() -> None:
    assert Origins({"a": "b", "b": "a"}).of("a") in ("a", "b")


@pytest.mark.parametrize(
    ("message", "links", "expected"),
    [
        (
            "scheduler.scheduler.T_max must be an integer (got 'abc')",
            {"scheduler.scheduler.T_max": "trainer.max_epochs"},
            "trainer.max_epochs must be an integer (got 'abc'); "
            "scheduler.scheduler.T_max = ${trainer.max_epochs}",
        ),
        (
            "neuron: dt * tau_syn_inv must be < 1 (got dt=0.5, tau_syn_inv=200)",
            {"neuron.dt": "dt"},
            "neuron: dt * tau_syn_inv must be < 1 (got dt=0.5, tau_syn_inv=200); neuron.dt = ${dt}",
        ),
        (
            "decoder.readout.model=lif is a spiking model",
            {"decoder.readout": "neuron"},
            "neuron.model=lif is a spiking model; decoder.readout.model = ${neuron.model}",
        ),
        ("optimizer.lr must be a number (got 'x')", {"encoder.seed": "seed"}, None),
        ("seed must be an integer (got 'abc')", {"encoder.seed": "seed"}, None),
    ],
)
def test_explain(message: str, links: dict, expected: str | None) -> None:
    config = {"neuron": {"dt": 0.5, "tau_syn_inv": 200.0}, "decoder": {"readout": {"model": "lif"}}}
    error = ConfigError(message)
    explained = Origins(links).explain(error, config)
    if expected is None:
        assert explained is error
    else:
        assert str(explained) == expected


def test_the_validation_pass_names_the_origin() -> None:
    config = copy.deepcopy(PLAIN)
    config["scheduler"] = {
        "scheduler": {
            "_target_": "torch.optim.lr_scheduler.CosineAnnealingLR",
            "_partial_": True,
            "T_max": "abc",
        }
    }
    config["trainer"]["max_epochs"] = "abc"
    origins = Origins({"scheduler.scheduler.T_max": "trainer.max_epochs"})
    with pytest.raises(ConfigError) as caught:
        validate_config(config, origins=origins)
    assert str(caught.value).startswith("trainer.max_epochs must be an integer (got 'abc')")
    # Without the links, the key where the value was met.
    with pytest.raises(ConfigError, match=r"^scheduler\.scheduler\.T_max must be"):
        validate_config(config)


def test_partly_unresolvable_annotations_still_check_the_others() -> None:
    """Optuna's TPESampler annotates some arguments with names only type checkers import."""
    node = {"_target_": "optuna.samplers.TPESampler", "seed": "abc"}
    with pytest.raises(
        ConfigError, match=r"sampler\.seed must be an integer or null \(got 'abc'\)"
    ):
        validate_target("sampler", node)
    validate_target("sampler", {**node, "seed": 3})
