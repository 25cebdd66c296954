"""The one validation pass: a plain config without Hydra, defaults, the checked parts it returns."""

from __future__ import annotations

import copy

import pytest
import torch

from spikeexp.engine import ConfigError, RunSpec, build_experiment, validate_config
from spikeexp.engine.topology import ConvTopology, MLPTopology
from spikeexp.engine.validate import DEFAULTS, REQUIRED_KEYS

PLAIN = {
    "dt": 1e-3,
    "seq_length": 6,
    "neuron": {"model": "lif", "tau_mem_inv": 80.0},
    "encoder": {"_target_": "spikeexp.module.ConstantCurrentEncoder", "seq_length": 6},
    "topology": {"type": "mlp", "hidden": [7, 5], "layers": {"hidden2": {"neuron": {"v_th": 0.5}}}},
    "decoder": {"_target_": "spikeexp.module.MaxOverTime", "readout": {"model": "li"}},
    "optimizer": {"_target_": "torch.optim.SGD", "_partial_": True, "lr": 0.1},
    "task": {"_target_": "spikeexp.tasks.classification.ClassificationTask"},
    "data": {"_target_": "spikeexp.tasks.digits.DigitsDataModule", "batch_size": 8},
    "trainer": {"_target_": "lightning.pytorch.Trainer", "max_epochs": 1},
}


def test_a_plain_config_gets_its_defaults_and_checked_parts() -> None:
    spec = validate_config(PLAIN)
    assert isinstance(spec, RunSpec)
    assert spec.config["unroll"] == {"backend": "auto"} and spec.config["seed"] == 0
    assert set(spec.config) == set(REQUIRED_KEYS) | set(DEFAULTS)
    assert isinstance(spec.topology, MLPTopology) and spec.topology.hidden == [7, 5]
    assert spec.neurons["hidden1"]["tau_mem_inv"] == 80.0
    # A layer override is merged over the global neuron and validated once for that layer.
    assert spec.neurons["hidden2"]["tau_mem_inv"] == 80.0 and spec.neurons["hidden2"]["v_th"] == 0.5
    assert "v_th" not in spec.neurons["hidden1"]
    assert spec.readout["model"] == "li" and spec.backend == "auto"


def test_the_spec_builds_without_validating_again(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = validate_config(PLAIN)

    def fail(*args, **kwargs):
        raise AssertionError("validated twice")

    for name in ("validate_config", "validate_topology", "layer_neurons", "validate_neuron"):
        monkeypatch.setattr(f"spikeexp.engine.experiment.{name}", fail)
    for name in ("validate_topology", "layer_neurons", "validate_neuron", "validate_target"):
        monkeypatch.setattr(f"spikeexp.engine.validate.{name}", fail)
    experiment = build_experiment(spec)
    layers = dict(experiment.module.network.layers.named_children())
    assert layers["hidden2"].p.v_th == 0.5 and layers["hidden1"].p.v_th == 1.0
    assert layers["hidden1"].p.tau_mem_inv == 80.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda c: c.pop("neuron"), "the config has no neuron; required: dt, seq_length, neuron"),
        (lambda c: c.update(epochs=3), "the config: unknown top-level key 'epochs'"),
        (lambda c: c.update(seed="abc"), "seed must be an integer (got 'abc')"),
        (lambda c: c.update(tbptt_steps=2, recompute_steps=2), "recompute_steps must be null"),
        (lambda c: c["topology"].update(dropout=1.0), "topology.dropout must be in [0, 1)"),
        (lambda c: c["topology"]["layers"].update(hidden3={}), "no spiking layer named 'hidden3'"),
        (
            lambda c: c.update(regularization={"layers": {"fc1": {}}}),
            "no spiking layer named 'fc1'",
        ),
        (
            lambda c: c["decoder"]["readout"].update(tau_mem_inv=-1.0),
            "decoder.readout: tau_mem_inv must be",
        ),
    ],
)
def test_bad_plain_configs_name_the_key(change, message: str) -> None:
    config = copy.deepcopy(PLAIN)
    change(config)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_conv_topology_names_its_spiking_layers() -> None:
    spec = ConvTopology(channels=[4, 8], hidden=[16])
    assert spec.spiking_layers() == ["spike_conv1", "spike_conv2", "hidden1"]
    with pytest.raises(ConfigError, match=r"topology\.padding must be >= 0"):
        ConvTopology(padding=-1).check()


def test_per_neuron_values_become_tensors_once() -> None:
    config = copy.deepcopy(PLAIN)
    config["topology"]["hidden"] = [3]
    config["topology"]["layers"] = {"hidden1": {"neuron": {"v_th": [0.5, 1.0, 2.0]}}}
    spec = validate_config(config)
    assert torch.equal(spec.neurons["hidden1"]["v_th"], torch.tensor([0.5, 1.0, 2.0]))
