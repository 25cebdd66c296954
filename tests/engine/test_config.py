"""The packaged Hydra config tree: every option composes and validates, overrides land where the
README says, experiments beat group defaults, bad values give one-line errors."""

from __future__ import annotations

import re
from importlib.resources import files

import pytest
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, OmegaConf

from spikeexp.engine.experiment import plain, validate_config
from spikeexp.engine.schema import ConfigError

CONF = files("spikeexp.conf")
# Groups whose options change the Hydra launcher or sweeper: they compose, but only for -m.
SWEEP_GROUPS = {"hparams_search", "launcher"}
# Options that cannot work with the default digits experiment, and how they are refused (the
# compositions that make them work: tests/engine/test_compatibility.py).
REFUSED_WITH_DEFAULTS = {
    # A readout model: no spiking hidden layers.
    ("neuron", "li"): "li is a non-spiking model and cannot be used in",
    ("neuron", "li_box"): "li_box is a non-spiking model and cannot be used in",
    # The digits are static images; encoder=none takes sequences.
    ("encoder", "none"): "gives static samples of shape .* takes sequences.*; use encoder=",
    # The sequence tasks provide their input over time: encoder=none, not the default constant
    # current.
    ("task", "memory"): "provides sequences of 2400 steps .* itself.*; use encoder=none$",
    ("task", "sequential_digits"): "provides sequences of 64 steps .*; use encoder=none$",
    ("task", "smnist"): "provides sequences of 784 steps .*; use encoder=none$",
    ("task", "shd"): r"provides sequences of 1000 steps of shape \(700,\).*; use encoder=none$",
    (
        "task",
        "nmnist",
    ): r"provides sequences of 300 steps of shape \(2, 34, 34\).*; use encoder=none$",
}


def default_groups() -> set[str]:
    """Groups named in the defaults list of ``train.yaml`` (others are added with ``+``)."""
    defaults = OmegaConf.load(str(CONF / "train.yaml"))["defaults"]
    return {next(iter(entry)) for entry in defaults if not isinstance(entry, str)}


def group_options() -> list[tuple[str, str]]:
    """Every (group, option) of the packaged config tree."""
    pairs = []
    for group in sorted(CONF.iterdir(), key=lambda path: path.name):
        if group.is_dir() and not group.name.startswith("_"):
            for option in sorted(group.iterdir(), key=lambda path: path.name):
                if option.name.endswith(".yaml"):
                    pairs.append((group.name, option.name.removesuffix(".yaml")))
    return pairs


def compose_train(overrides: list[str], hydra: bool = False) -> DictConfig:
    """The ``train`` config with ``overrides``, as ``spikeexp-train`` would compose it."""
    with initialize_config_module("spikeexp.conf", version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=hydra)


def resolved(overrides: list[str]) -> dict:
    return plain(compose_train(["paths.output_dir=/tmp/unused", *overrides]))


def test_every_documented_group_has_options() -> None:
    groups = {group for group, _ in group_options()}
    expected = {"neuron", "encoder", "topology", "decoder", "optimizer", "scheduler", "task"}
    expected |= {"trainer", "logger", "callbacks", "paths", "experiment", "debug"}
    assert expected <= groups
    options = set(group_options())
    for option in ("mlp", "conv", "recurrent"):
        assert ("topology", option) in options
    for option in ("li_max", "spike_count", "mean_voltage", "last_voltage"):
        assert ("decoder", option) in options
    for option in ("digits", "mnist_conv", "fashion_mnist_conv", "fashion_mnist_norse_convnet"):
        assert ("experiment", option) in options


@pytest.mark.parametrize(("group", "option"), group_options())
def test_every_option_composes_and_validates(group: str, option: str) -> None:
    prefix = "" if group in default_groups() else "+"
    config = compose_train([f"{prefix}{group}={option}", "paths.output_dir=/tmp/unused"])
    if group in SWEEP_GROUPS:
        return
    if (group, option) in REFUSED_WITH_DEFAULTS:
        with pytest.raises(ConfigError, match=REFUSED_WITH_DEFAULTS[group, option]):
            validate_config(plain(config))
        return
    if (group, option) == ("topology", "competitive"):  # the default experiment sets hidden
        with pytest.raises(ConfigError, match="topology: unknown key 'hidden'"):
            validate_config(plain(config))
        return
    if (group, option) == ("optimizer", "none"):  # the default experiment sets optimizer.lr
        with pytest.raises(ConfigError, match=r"takes no settings \(got lr\)"):
            validate_config(plain(config))
        return
    validate_config(plain(config))


def test_default_is_the_digits_experiment() -> None:
    config = resolved([])
    assert config["data"]["_target_"] == "spikeexp.tasks.digits.DigitsDataModule"
    assert config["neuron"]["model"] == "lif"
    assert config["topology"]["type"] == "mlp"
    assert config["decoder"]["_target_"] == "spikeexp.module.decode.MaxOverTime"
    assert config["decoder"]["readout"]["model"] == "li"
    assert config["optimized_metric"] == "val/acc"


def test_documented_override_paths() -> None:
    config = resolved(
        [
            "neuron.tau_mem_inv=80",
            "neuron.v_th=0.5",
            "neuron.method=triangle",
            "topology.hidden=[64,32]",
            "optimizer.lr=0.01",
            "data.batch_size=16",
            "data.num_workers=2",
            "trainer.max_epochs=3",
            "trainer.fast_dev_run=true",
        ]
    )
    assert config["neuron"]["tau_mem_inv"] == 80
    assert config["neuron"]["v_th"] == 0.5
    assert config["neuron"]["method"] == "triangle"
    assert config["topology"]["hidden"] == [64, 32]
    assert config["optimizer"]["lr"] == 0.01
    assert (config["data"]["batch_size"], config["data"]["num_workers"]) == (16, 2)
    assert config["trainer"]["max_epochs"] == 3
    assert config["trainer"]["fast_dev_run"] is True
    validate_config(config)


def test_data_root_and_download_paths() -> None:
    config = resolved(["task=fashion_mnist", "data.root=/srv/data", "data.download=true"])
    assert (config["data"]["root"], config["data"]["download"]) == ("/srv/data", True)


def test_dt_and_seq_length_reach_neurons_encoder_and_readout() -> None:
    config = resolved(["dt=5e-4", "seq_length=7", "encoder=poisson"])
    assert config["neuron"]["dt"] == config["decoder"]["readout"]["dt"] == 5e-4
    assert config["encoder"]["dt"] == 5e-4
    assert config["encoder"]["seq_length"] == 7


def test_command_line_group_beats_the_experiment() -> None:
    config = resolved(["experiment=fashion_mnist_conv", "task=mnist", "neuron=lsnn"])
    assert config["data"]["_target_"] == "spikeexp.tasks.mnist.MNISTDataModule"
    assert config["neuron"]["model"] == "lsnn"
    assert config["topology"]["type"] == "conv"
    assert config["topology"]["channels"] == [32, 64]


def test_spike_count_decoder_reads_the_global_neuron() -> None:
    config = resolved(["decoder=spike_count", "neuron=lsnn"])
    assert config["decoder"]["readout"]["model"] == "lsnn"


def test_hydra_run_and_sweep_dirs_without_chdir() -> None:
    hydra = compose_train([], hydra=True).hydra
    stamp = r"\d{4}-\d{2}-\d{2}/\d{2}-\d{2}-\d{2}"
    assert re.fullmatch(f"outputs/{stamp}", hydra.run.dir)
    assert re.fullmatch(f"outputs/multirun/{stamp}", hydra.sweep.dir)
    assert OmegaConf.to_container(hydra.sweep, resolve=False)["subdir"] == "${hydra.job.num}"
    assert hydra.job.chdir is False


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=abc", "optimizer.lr must be a number (got 'abc')"),
        ("+neuron.tau_mem=3", "neuron: unknown lif parameter 'tau_mem'; valid: model, dt"),
        ("neuron.tau_mem_inv=-1", "neuron: tau_mem_inv must be > 0 (got -1"),
        ("neuron.method=nope", "neuron: "),
        ("topology.hidden=abc", "topology.hidden must be a list (got 'abc')"),
        ("+topology.width=3", "topology: unknown key 'width'; valid: type, hidden"),
        ("seq_length=0", "seq_length must be >= 1 (got 0)"),
        ("dt=-1", "dt must be > 0 seconds (got -1"),
        ("optimized_mode=up", "optimized_mode must be one of max, min (got 'up')"),
        ("+trainer.max_epoch=3", "trainer: unknown key 'max_epoch'"),
        ("+regularization.rate=3", "regularization: unknown key 'rate'"),
        ("regularization.rate_weight=x", "regularization.rate_weight must be a number"),
        ("+encoder.frequency=3", "encoder: unknown key 'frequency'"),
        ("+nope=1", "the config: unknown top-level key 'nope'"),
        ("+trainer.nope=1", "trainer: unknown key 'nope'"),
        ("torch_threads=0", "torch_threads must be null or >= 1 (got 0)"),
        (
            "matmul_precision=low",
            "matmul_precision must be one of highest, high, medium (got 'low')",
        ),
        ("recompute_steps=0", "recompute_steps must be null or >= 1 (got 0)"),
        ("+topology.layers.hidden7.input_scale=2", "no spiking layer named 'hidden7'"),
    ],
)
def test_bad_values_give_one_line_errors(override: str, message: str) -> None:
    config = OmegaConf.to_container(compose_train(["paths.output_dir=/x", override]), resolve=True)
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert message in str(error.value)
    assert "\n" not in str(error.value)
