"""The experiment pipeline: every option of every group trains a few batches; shapes are checked
before training; no state leaks between batches; regularisers and truncated BPTT do what they say.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from torch import nn

from spikeexp.cli.train import train
from spikeexp.engine.experiment import build_experiment, build_trainer
from spikeexp.engine.schema import ConfigError
from spikeexp.engine.spiking_module import Regularization, SpikingModule
from spikeexp.module import Lift, SpikeLinear
from tests.engine.test_config import default_groups, group_options
from tests.helpers import compose_like_cli
from tests.tasks.conftest import fake_dataset

FEW_BATCHES = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=2",
    "++trainer.limit_val_batches=1",
    "++trainer.limit_test_batches=1",
    "seq_length=8",
    "data.batch_size=16",
]
# Not trained here: the tasks that provide their own sequences and need encoder=none, and their
# experiments (their own tests train them: tests/tasks/test_memory.py, test_sequential.py,
# test_events.py), GPU and multi-process trainers, launcher and sweeper presets (multirun only).
NOT_TRAINED = {
    ("task", "memory"),
    ("task", "smnist"),
    ("task", "shd"),
    ("task", "nmnist"),
    ("experiment", "smnist_lsnn"),
    ("experiment", "smnist_lif"),
    ("experiment", "shd_lsnn"),
    ("experiment", "nmnist_conv"),
    ("trainer", "gpu"),
    ("trainer", "ddp"),
    ("trainer", "ddp_cpu"),
}
NOT_TRAINED_GROUPS = {"launcher", "hparams_search"}
# Options that must be refused with a clear error in the default (feed-forward) network.
REFUSED = {
    ("neuron", "li"): "neuron.model=li is a non-spiking model",
    ("optimizer", "none"): r"takes no settings \(got lr\)",
    # The default experiment sets topology.hidden, which the competitive topology has not.
    ("topology", "competitive"): "topology: unknown key 'hidden'",
    ("neuron", "li_box"): "neuron.model=li_box is a non-spiking model",
    ("encoder", "none"): "encoder=none takes sequences",
    ("task", "sequential_digits"): r"provides sequences of 64 steps of shape \(1,\) itself",
}
IDX_TASKS = {
    "mnist",
    "fashion_mnist",
    "mnist_conv",
    "fashion_mnist_conv",
    "fashion_mnist_norse_convnet",
    "mnist_stdp",
    "fashion_mnist_stdp",
}


def trained_options() -> list[tuple[str, str]]:
    return [
        (group, option)
        for group, option in group_options()
        if group not in NOT_TRAINED_GROUPS
        and (group, option) not in NOT_TRAINED
        and not (group == "experiment" and option.startswith("memory"))
    ]


@pytest.fixture(scope="module")
def idx_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Small MNIST-format IDX files (80 random 28x28 images) for the mnist/fashion tasks."""
    root = tmp_path_factory.mktemp("idx")
    fake_dataset(root, train=80, test=20, gz=True)
    return root


@pytest.fixture
def compose_run() -> Iterator:
    """Compose ``train`` like ``spikeexp-train`` does (Hydra's runtime info set)."""

    yield compose_like_cli
    HydraConfig.instance().cfg = None


@pytest.mark.parametrize(("group", "option"), trained_options())
def test_every_option_trains_a_few_batches(
    group: str, option: str, tmp_path: Path, idx_root: Path, compose_run
) -> None:
    prefix = "" if group in default_groups() else "+"
    overrides = [f"{prefix}{group}={option}", f"paths.output_dir={tmp_path}", *FEW_BATCHES]
    if option in IDX_TASKS:
        overrides.append(f"data.root={idx_root}")
    config = compose_run(overrides)
    if (group, option) in REFUSED:
        with pytest.raises(ConfigError, match=REFUSED[group, option]):
            train(config)
        return
    torch.set_num_threads(1)
    metrics = train(config)
    if config.optimizer._target_ is not None:  # optimizer=none: no gradients, no loss
        assert math.isfinite(metrics["train/loss"])
    if config.test:
        assert 0.0 <= metrics["test/acc"] <= 1.0
    if not config.trainer.get("fast_dev_run") and "model_checkpoint" in (config.callbacks or {}):
        assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    if group == "logger" and option == "csv":
        assert (tmp_path / "csv" / "metrics.csv").is_file()


def test_shape_mismatch_is_reported_before_training(tmp_path: Path, compose_run) -> None:
    """8x8 digits through two 5x5 convolutions without padding: conv2 gets a 2x2 input."""
    config = compose_run(
        [
            "topology=conv",
            "topology.kernel_size=5",
            "topology.padding=0",
            f"paths.output_dir={tmp_path}",
        ]
    )
    with pytest.raises(ConfigError, match=r"layer 'conv2' \(Conv2d\(16, 32.*\(16, 2, 2\)"):
        build_experiment(config)
    assert not (tmp_path / "checkpoints").exists()


def test_conv_topology_needs_images(tmp_path: Path, compose_run) -> None:
    config = compose_run(
        [
            "topology=conv",
            "encoder=population",
            "encoder.layout=flat",
            f"paths.output_dir={tmp_path}",
        ]
    )
    message = r"topology.type=conv needs input \[channels, height, width\] .* shape \(512,\)"
    with pytest.raises(ConfigError, match=message):
        build_experiment(config)


def test_unknown_per_layer_override_names_the_layers(tmp_path: Path, compose_run) -> None:
    config = compose_run(["+topology.layers.hidden3.neuron.v_th=2", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="no spiking layer named 'hidden3'; valid: hidden1"):
        build_experiment(config)


def test_per_layer_neuron_override(tmp_path: Path, compose_run) -> None:
    config = compose_run(
        [
            "topology.hidden=[12,10]",
            "+topology.layers.hidden2.neuron.model=lsnn",
            "+topology.layers.hidden1.neuron.v_th=0.5",
            f"paths.output_dir={tmp_path}",
        ]
    )
    network = build_experiment(config).module.network
    first, second = network.layers.hidden1, network.layers.hidden2
    assert type(first).__name__ == "LIF" and first.p.v_th == 0.5
    assert type(second).__name__ == "LSNN"
    assert network.spiking_layers == ["hidden1", "hidden2"]


def test_input_scale_multiplies_the_layers_input_current(tmp_path: Path, compose_run) -> None:
    overrides = ["topology=conv", "topology.channels=[4,6]", f"paths.output_dir={tmp_path}"]
    plain = build_experiment(compose_run(overrides)).module.network
    config = compose_run([*overrides, "+topology.layers.spike_conv2.input_scale=10"])
    scaled = build_experiment(config).module.network
    names = list(scaled.layers._modules)
    assert names[names.index("conv2") + 1 : names.index("spike_conv2") + 1] == [
        "scale_spike_conv2",
        "spike_conv2",
    ]
    assert "scale_spike_conv2" not in plain.layers._modules
    # Same weights: the scaled network's current into spike_conv2 is 10x the plain one's.
    scaled.load_state_dict(plain.state_dict())
    x = torch.rand(3, 2, 1, 8, 8)
    current = {}
    for name, network in (("plain", plain), ("scaled", scaled)):
        hook = network.layers.spike_conv2.register_forward_pre_hook(
            lambda module, args, name=name: current.__setitem__(name, args[0])
        )
        network(x)
        hook.remove()
    torch.testing.assert_close(current["scaled"], 10 * current["plain"])


def test_channels_last_conv_network_computes_the_same(tmp_path: Path, compose_run) -> None:
    overrides = [
        "topology=conv",
        "topology.channels=[4,6]",
        "+topology.layers.spike_conv2.input_scale=10",
        f"paths.output_dir={tmp_path}",
    ]
    fast = build_experiment(compose_run([*overrides, "topology.channels_last=true"]))
    fast = fast.module.network
    plain = build_experiment(compose_run(overrides)).module.network
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(20, 3, 1, 8, 8) * 8
    maps = {}
    for name, network in (("fast", fast), ("plain", plain)):
        hook = network.layers.spike_conv2.register_forward_hook(
            lambda module, args, out, name=name: maps.__setitem__(name, out[0])
        )
        out, _ = network(x)
        maps[f"{name} out"] = out
        hook.remove()
    assert maps["fast"][0].is_contiguous(memory_format=torch.channels_last)
    assert maps["plain"].is_contiguous()
    assert float(maps["plain"].mean()) > 0.01, "the comparison needs spikes"
    torch.testing.assert_close(maps["fast"], maps["plain"])
    torch.testing.assert_close(maps["fast out"], maps["plain out"])


def test_linear_layers_fed_by_spikes_use_the_spike_product(tmp_path: Path, compose_run) -> None:
    """``auto``: every Linear after a spiking layer (through pooling and flattening) is a
    SpikeLinear, the first one (fed by the encoder) an nn.Linear; ``reference``: all nn.Linear.
    Both networks compute the same to float32 rounding, forward and gradients."""
    overrides = ["topology=conv", "topology.channels=[4,6]", "topology.hidden=[40, 30]"]
    overrides += ["+topology.layers.spike_conv2.input_scale=10", f"paths.output_dir={tmp_path}"]
    fast = build_experiment(compose_run(overrides)).module.network
    plain = build_experiment(compose_run([*overrides, "unroll.backend=reference"])).module.network
    layers = fast.layers
    assert [type(getattr(layers, n).module) for n in ("fc1", "fc2", "fc_out")] == [SpikeLinear] * 3
    plain_types = {type(m.module) for m in plain.layers if isinstance(m, Lift)}
    assert SpikeLinear not in plain_types and nn.Linear in plain_types
    mlp = build_experiment(compose_run([f"paths.output_dir={tmp_path}"])).module.network
    assert type(mlp.layers.fc1.module) is nn.Linear
    assert type(mlp.layers.fc_out.module) is SpikeLinear
    plain.load_state_dict(fast.state_dict())
    x = torch.rand(20, 3, 1, 8, 8) * 8
    results = []
    for network in (fast, plain):
        out, _ = network(x)
        out.pow(2).sum().backward()
        results.append((out, network.layers.fc2.module.weight.grad))
    assert float(results[1][1].abs().max()) > 0, "the comparison needs gradients"
    for actual, expected in zip(*results, strict=True):
        torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_bfloat16_mixed_precision_trains_with_the_fused_kernels(
    tmp_path: Path, compose_run, idx_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``trainer.precision=bf16-mixed`` with ``matmul_precision=medium``: the convolutions and
    Linear layers run in bfloat16 (autocast), the fused LIF kernels take bfloat16 currents with a
    float32 state, and training runs with finite losses."""
    from spikeexp.functional.fused import cpu

    seen = []
    forward = cpu.lif_forward

    def spy(x, *args):
        seen.append((x.dtype, args[3].dtype))  # input, state v
        return forward(x, *args)

    monkeypatch.setattr(cpu, "lif_forward", spy)
    overrides = [
        "experiment=fashion_mnist_norse_convnet",
        "topology.channels=[4,6]",
        "topology.hidden=[16]",
        f"data.root={idx_root}",
        "trainer.precision=bf16-mixed",
        "matmul_precision=medium",
        "logger=none",
        "callbacks=minimal",
        "test=false",
        f"paths.output_dir={tmp_path}",
        *FEW_BATCHES,
    ]
    try:
        metrics = train(compose_run(overrides))
    finally:
        torch.set_float32_matmul_precision("highest")
    assert (torch.bfloat16, torch.float32) in seen
    assert math.isfinite(metrics["train/loss"])


@pytest.mark.parametrize("scale", ["0", "-1", "inf", "true", "fast"])
def test_bad_input_scale_is_one_line_error(tmp_path: Path, compose_run, scale: str) -> None:
    config = compose_run(
        [f"+topology.layers.hidden1.input_scale={scale}", f"paths.output_dir={tmp_path}"]
    )
    with pytest.raises(ConfigError, match=r"layers.hidden1.input_scale must be a positive"):
        build_experiment(config)


def test_unknown_per_layer_key_lists_the_valid_ones(tmp_path: Path, compose_run) -> None:
    config = compose_run(["+topology.layers.hidden1.gain=2", f"paths.output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match="keys input_scale and/or neuron"):
        build_experiment(config)


def _module(compose_run, tmp_path: Path, *overrides: str) -> SpikingModule:
    config = compose_run([f"paths.output_dir={tmp_path}", "seq_length=10", *overrides])
    return build_experiment(config).module


def test_no_state_leaks_between_batches(tmp_path: Path, compose_run) -> None:
    module = _module(compose_run, tmp_path).eval()
    first, second = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 8, 8)
    alone = module(second)
    module(first)
    after_first = module(second)
    torch.testing.assert_close(after_first, alone, rtol=0, atol=0)
    # The check can fail: continuing from the first batch's state gives other outputs.
    _, state = module.network(module.encoder(first))
    continued, _ = module.network(module.encoder(second), state)
    assert not torch.allclose(continued, alone)


def test_logged_rates_and_silent_fraction(tmp_path: Path, compose_run) -> None:
    module = _module(compose_run, tmp_path)
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, value)
    spikes = torch.zeros(10, 2, 4)
    spikes[:, :, 0] = 1.0  # neuron 0 fires every step: 1000 Hz at dt = 1 ms
    spikes[0, 0, 1] = 1.0  # neuron 1 fires once
    module._log_activity({"hidden1": spikes}, "val", 2)
    expected_rate = (20 + 1) / (10 * 2 * 4) / 1e-3
    assert float(logged["val/rate_hz/hidden1"]) == pytest.approx(expected_rate)
    assert float(logged["val/silent/hidden1"]) == pytest.approx(0.5)


def test_regularizers_hand_computed(tmp_path: Path, compose_run) -> None:
    module = _module(compose_run, tmp_path)
    module.regularization = Regularization(
        rate_target_hz=100.0, rate_weight=2.0, l1_weight=0.5, layers={"b": {"rate_weight": 0.0}}
    )
    logged = {}
    module.log = lambda name, value, **kwargs: logged.__setitem__(name, float(value))
    spikes = torch.zeros(4, 1, 2)
    spikes[:, 0, 0] = 1.0  # p = (1, 0); target p0 = 100 Hz * 1 ms = 0.1
    total = module._add_regularizers(torch.tensor(1.0), {"a": spikes, "b": spikes}, "train", 1)
    rate = 2.0 * ((1 - 0.1) ** 2 + (0 - 0.1) ** 2) / 2  # only layer a
    l1 = 0.5 * 0.5 * 2  # mean spike 0.5 in both layers
    assert logged["train/loss_rate"] == pytest.approx(rate)
    assert logged["train/loss_l1"] == pytest.approx(l1)
    assert float(total) == pytest.approx(1.0 + rate + l1)


def test_truncated_bptt_steps_once_per_chunk(tmp_path: Path, compose_run) -> None:
    config = compose_run(
        [
            f"paths.output_dir={tmp_path}",
            "tbptt_steps=4",
            "logger=none",
            "callbacks=minimal",
            *FEW_BATCHES,
            "seq_length=10",
            "test=false",
        ]
    )
    run = build_experiment(config)
    before = [p.detach().clone() for p in run.module.parameters()]
    trainer = build_trainer(run.spec)
    trainer.fit(run.module, datamodule=run.datamodule)
    assert not run.module.automatic_optimization
    assert trainer.global_step == 2 * 3  # 2 batches x ceil(10 / 4) chunks
    assert any(not torch.equal(a, b) for a, b in zip(before, run.module.parameters(), strict=True))


def test_checkpoints_hold_plain_data_only(tmp_path: Path, compose_run) -> None:
    config = compose_run([f"paths.output_dir={tmp_path}", "logger=none", *FEW_BATCHES])
    train(config)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    stored = checkpoint["hyper_parameters"]["config"]
    assert stored["neuron"]["model"] == "lif" and stored["seq_length"] == 8
    assert isinstance(stored["topology"]["hidden"], list)
