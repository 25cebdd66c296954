"""Plasticity in the engine: the config group (global and per layer), one-line errors naming the
key, the networks it builds, gradient-free and mixed training runs, and the digits experiment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from spikeexp.cli.train import train
from spikeexp.engine.experiment import build_experiment, network_from_config, plain
from spikeexp.engine.schema import ConfigError
from spikeexp.engine.validate import validate_config
from spikeexp.module import CompetitiveLIF, PlasticConv2d, PlasticLinear, ShortTermPlasticity
from tests.engine.test_config import compose_train
from tests.helpers import compose_like_cli

RULES = ["stdp", "stdp_multiplicative", "triplet", "mstdp", "stp"]
SMALL = [
    "seq_length=8",
    "data.batch_size=16",
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=2",
    "callbacks=minimal",
    "logger=none",
]


@pytest.fixture
def compose_run() -> Iterator:
    yield compose_like_cli
    HydraConfig.instance().cfg = None


def _config(overrides: list[str]) -> dict:
    return OmegaConf.to_container(compose_train(["paths.output_dir=/x", *overrides]), resolve=True)


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_selects_per_layer_and_globally(rule: str) -> None:
    per_layer = validate_config(
        _config(
            ["topology.hidden=[16,8]", f"+plasticity@topology.layers.hidden2.plasticity={rule}"]
        )
    )
    assert per_layer.plasticity["hidden1"] is None
    expected = "stp" if rule == "stp" else rule.removesuffix("_multiplicative")
    assert per_layer.plasticity["hidden2"]["rule"] == expected
    both = validate_config(_config(["topology.hidden=[16,8]", f"plasticity={rule}"]))
    assert both.plasticity["hidden1"]["rule"] == both.plasticity["hidden2"]["rule"] == expected


def test_layer_override_merges_over_the_global_rule() -> None:
    spec = validate_config(
        _config(
            [
                "topology.hidden=[16,8]",
                "plasticity=stdp",
                "plasticity.a_plus=0.02",
                "+topology.layers.hidden2.plasticity.a_minus=0.03",
                "+topology.layers.hidden1.plasticity.rule=none",
            ]
        )
    )
    assert spec.plasticity["hidden1"] is None
    assert spec.plasticity["hidden2"]["a_plus"] == 0.02
    assert spec.plasticity["hidden2"]["a_minus"] == 0.03


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["plasticity=stdp", "plasticity.a_plus=abc"], "plasticity.a_plus must be a number"),
        (["plasticity=stdp", "plasticity.tau_pre_inv=-1"], "plasticity: tau_pre_inv must be > 0"),
        (
            ["plasticity=stdp", "plasticity.rule=hebb"],
            "plasticity.rule must be one of none, mstdp, stdp, stp, triplet (got 'hebb')",
        ),
        (["plasticity=stdp", "+plasticity.bogus=1"], "plasticity: unknown stdp key 'bogus'"),
        (["plasticity=stp", "+plasticity.mode=grad"], "plasticity: unknown stp key 'mode'"),
        (
            ["plasticity=stdp", "plasticity.mode=sgd"],
            "plasticity.mode must be one of direct, grad (got 'sgd')",
        ),
        (["plasticity=stdp", "plasticity.normalize=-2"], "plasticity.normalize must be null or"),
        (["plasticity=stdp", "plasticity.init_range=[1,0]"], "plasticity.init_range must be"),
        (
            ["plasticity=triplet", "plasticity.preset=custom"],
            "plasticity: a2_plus must be set when preset is 'custom'",
        ),
        (["plasticity=stp", "plasticity.U=2"], "plasticity: U must be in [0, 1] (got 2)"),
        (
            [
                "+plasticity@topology.layers.hidden1.plasticity=stdp",
                "topology.layers.hidden1.plasticity.w_max=-1",
            ],
            "topology.layers.hidden1.plasticity: w_max must be > w_min",
        ),
        (["topology=recurrent", "plasticity=stdp"], "topology recurrent has no layer whose input"),
        (
            ["topology=recurrent", "+topology.layers.hidden1.plasticity.rule=stdp"],
            "topology.layers.hidden1.plasticity: the input of layer 'hidden1' cannot be plastic",
        ),
        (["plasticity=stdp", "recompute_steps=4"], "recompute_steps must be null with plasticity"),
        (
            ["experiment=digits_stdp", "plasticity.mode=grad"],
            "mode grad needs an optimizer to apply it",
        ),
        (["experiment=digits_stdp", "scheduler=cosine"], "scheduler must be none when optimizer"),
        (["experiment=digits_stdp", "trainer=ddp_cpu"], "optimizer=none trains in one process"),
        (["experiment=digits_stdp", "topology.inhibition=-1"], "topology.inhibition must be >= 0"),
        (["experiment=digits_stdp", "topology.size=0"], "topology.size must hold positive"),
        (
            ["experiment=digits_stdp", "+topology.layers.exc.neuron.v_th=2"],
            "topology.layers.exc.neuron: layer 'exc' of topology competitive takes no neuron",
        ),
    ],
)
def test_bad_plasticity_configs_give_one_line_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(_config(overrides))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_task_and_topology_must_fit(compose_run, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"it has no loss .*use optimizer=none"):
        build_experiment(compose_run(["experiment=digits_stdp", "optimizer=adam"]))
    with pytest.raises(ConfigError, match="topology=competitive has no readout layer") as error:
        validate_config(
            plain(compose_run(["topology=competitive", "~topology.hidden"])),
            choices={"topology": "competitive"},
        )
    assert str(error.value).endswith("; use topology=conv (or mlp, recurrent)")


def test_networks_with_plastic_layers() -> None:
    neuron = {"model": "lif", "dt": 1e-3}
    readout = {"model": "li", "dt": 1e-3}
    mlp = network_from_config(
        {"type": "mlp", "hidden": [16, 8], "layers": {"hidden2": {"plasticity": {"rule": "stp"}}}},
        neuron,
        readout,
        (1, 8, 8),
        10,
        plasticity={"rule": "stdp", "init_range": [0.0, 0.5]},
    )
    layers = mlp.layers
    assert isinstance(layers.fc1, PlasticLinear) and layers.fc1.input_shape == (1, 8, 8)
    assert isinstance(layers.stp_hidden2, ShortTermPlasticity)
    assert list(layers._modules).index("stp_hidden2") == list(layers._modules).index("fc2") - 1
    assert not isinstance(layers.fc_out.module, PlasticLinear)
    assert mlp.plastic == {"fc1": "hidden1"}
    conv = network_from_config(
        {
            "type": "conv",
            "channels": [4],
            "hidden": [8],
            "layers": {"spike_conv1": {"plasticity": {"rule": "triplet"}}},
        },
        neuron,
        readout,
        (1, 8, 8),
        10,
    )
    assert isinstance(conv.layers.conv1, PlasticConv2d)
    assert conv.plastic == {"conv1": "spike_conv1"}
    competitive = network_from_config(
        {"type": "competitive", "size": 20}, neuron, readout, (1, 8, 8), 10, {"rule": "stdp"}
    )
    assert list(competitive.layers._modules) == ["flatten", "fc_exc", "exc"]
    assert isinstance(competitive.layers.exc, CompetitiveLIF)
    spikes, _ = competitive(torch.rand(5, 2, 1, 8, 8))
    assert spikes.shape == (5, 2, 20)


@pytest.mark.parametrize("rule", RULES)
def test_mixed_networks_train(rule: str, compose_run, tmp_path: Path) -> None:
    """hidden1's synapses learn by the rule, the other layers by Adam, in one run."""
    config = compose_run(
        [
            f"paths.output_dir={tmp_path}",
            "encoder=poisson",
            "topology.hidden=[32,16]",
            f"+plasticity@topology.layers.hidden1.plasticity={rule}",
            *SMALL,
        ]
    )
    experiment = build_experiment(config)
    fc1 = experiment.module.network.layers.fc1
    readout_before = experiment.module.network.layers.fc_out.module.bias.detach().clone()
    if rule == "stp":
        assert isinstance(experiment.module.network.layers.stp_hidden1, ShortTermPlasticity)
        weight = fc1.module.weight  # trained by Adam, its inputs short-term plastic
    else:
        assert isinstance(fc1, PlasticLinear) and not fc1.weight.requires_grad
        weight = fc1.weight
    before = weight.detach().clone()
    torch.set_num_threads(1)
    metrics = train(config)
    assert torch.isfinite(torch.tensor(metrics["train/loss"]))
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    state = checkpoint["state_dict"]
    fc1_key = "network.layers.fc1.weight" if rule != "stp" else "network.layers.fc1.module.weight"
    assert not torch.equal(state[fc1_key], before)
    assert not torch.equal(state["network.layers.fc_out.module.bias"], readout_before)


def test_grad_mode_lets_the_optimiser_apply_the_rule(compose_run, tmp_path: Path) -> None:
    config = compose_run(
        [
            f"paths.output_dir={tmp_path}",
            "encoder=poisson",
            "topology.hidden=[32]",
            "+plasticity@topology.layers.hidden1.plasticity=stdp",
            "topology.layers.hidden1.plasticity.mode=grad",
            "topology.layers.hidden1.plasticity.a_plus=0.05",
            *SMALL,
        ]
    )
    experiment = build_experiment(config)
    fc1 = experiment.module.network.layers.fc1
    assert fc1.weight.requires_grad and fc1.mode == "grad"
    before = fc1.weight.detach().clone()
    torch.set_num_threads(1)
    train(config)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    changed = state["network.layers.fc1.weight"]
    assert not torch.equal(changed, before)


def test_digits_stdp_learns_labels_and_reports_test_accuracy(compose_run, tmp_path: Path) -> None:
    """Two short epochs of the digits experiment: weights, thresholds and label assignments are
    learnt and saved; test/acc goes to metrics.json; the receptive fields are saved as PNG."""
    config = compose_run(
        [
            "experiment=digits_stdp",
            f"paths.output_dir={tmp_path}",
            "topology.size=40",
            "seq_length=50",
            "data.batch_size=16",
            "trainer.max_epochs=2",
            "++trainer.limit_train_batches=20",
            "callbacks=default",
            "~callbacks.spike_plots",
            "~callbacks.rich_progress_bar",
        ]
    )
    torch.set_num_threads(1)
    metrics = train(config)
    assert "train/loss" not in metrics
    assert json.loads((tmp_path / "metrics.json").read_text())["test/acc"] == metrics["test/acc"]
    assert metrics["test/acc"] > 0.4  # chance 0.1; 40 neurons after 640 samples
    assert metrics["train/plasticity/updates/fc_exc"] == 20
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert state["network.layers.exc.theta"].sum() > 0
    assignments = state["task._extra_state"]["assignments"]
    assert assignments.shape == (40,) and len(set(assignments.tolist()) - {-1}) >= 5
    torch.testing.assert_close(
        state["network.layers.fc_exc.weight"].sum(1), torch.full((40,), 6.4), rtol=1e-5, atol=0
    )
    assert (tmp_path / "receptive_fields_fc_exc.png").stat().st_size > 1000
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert "plasticity/receptive_fields/fc_exc" in tags["images"]
    assert {"plasticity/weights/fc_exc", "plasticity/theta/exc"} <= set(tags["histograms"])
    assert "train/plasticity/update_relative/fc_exc" in tags["scalars"]


def test_rules_reach_the_modules_through_the_config(compose_run, tmp_path: Path) -> None:
    config = compose_run(
        [
            f"paths.output_dir={tmp_path}",
            "plasticity=triplet",
            "plasticity.preset=visual_cortex_nearest",
            "plasticity.normalize=3.0",
        ]
    )
    experiment = build_experiment(config)
    connection = experiment.module.network.layers.fc1
    assert connection.rule.name == "triplet"
    assert connection.p.interaction == "nearest" and connection.normalize == 3.0
    assert plain(config)["plasticity"]["preset"] == "visual_cortex_nearest"


@pytest.mark.slow
def test_digits_stdp_recipe_reaches_85_percent(compose_run, tmp_path: Path) -> None:
    """The full unsupervised digits recipe (400 neurons, 6 epochs, about 3 minutes on 2 cores)."""
    config = compose_run([f"paths.output_dir={tmp_path}", "experiment=digits_stdp", "logger=none"])
    metrics = train(config)
    assert metrics["test/acc"] >= 0.85  # 0.9387 with seed 0 (docs/results.md)
