"""Monitoring: a tiny real training run, its TensorBoard events read back, and the plot command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.loggers import TensorBoardLogger
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from spikeexp.callbacks import HParamsLogger, SpikeActivityMonitor, SpikePlots, flatten_config
from spikeexp.cli import plot as cli
from spikeexp.cli.train import train
from spikeexp.engine import network_from_config
from spikeexp.module import ConstantCurrentEncoder
from spikeexp.runtime.context import RunContext, set_run_context
from spikeexp.viz import Recording, recording_figures
from tests.helpers import compose_like_cli

DT = 1e-3
STEPS = 12
HIDDEN = 24
EPOCHS = 2
IMAGE_TAGS = ["input", "raster/hidden1", "voltage/hidden1", "rates/hidden1", "readout"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tiny digits run: 2 epochs of 3 batches, spike plots every epoch."""
    output = tmp_path_factory.mktemp("run")
    config = compose_like_cli(
        [
            f"paths.output_dir={output}",
            f"seq_length={STEPS}",
            f"topology.hidden=[{HIDDEN}]",
            "optimizer.lr=0.003",
            "scheduler=step",
            "scheduler.scheduler.step_size=1",
            "scheduler.scheduler.gamma=0.5",
            f"trainer.max_epochs={EPOCHS}",
            "+trainer.limit_train_batches=3",
            "+trainer.limit_val_batches=2",
            "+trainer.limit_test_batches=1",
            "callbacks.spike_plots.every_n_epochs=1",
            "~callbacks.rich_progress_bar",
        ]
    )
    try:
        train(config)
    finally:
        HydraConfig.instance().cfg = None
    yield output


@pytest.fixture(scope="module")
def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(
        str(run_dir / "tensorboard"),
        size_guidance={"scalars": 0, "images": 0, "histograms": 0, "tensors": 0},
    )
    accumulator.Reload()
    return accumulator


def _last(events: EventAccumulator, tag: str) -> float:
    return events.Scalars(tag)[-1].value


@pytest.mark.parametrize("stage", ["train", "val", "test"])
def test_activity_scalars_are_in_range_and_consistent(events: EventAccumulator, stage: str) -> None:
    tags = set(events.Tags()["scalars"])
    expected = {
        f"{stage}/{name}"
        for name in (
            "loss",
            "acc",
            "rate_hz/hidden1",
            "silent/hidden1",
            "spikes_per_step/hidden1",
            "saturated/hidden1",
            "spikes_per_sample/hidden1",
            "spikes_per_sample/total",
        )
    }
    expected = {"train/loss_epoch" if tag == "train/loss" else tag for tag in expected}
    assert expected <= tags
    epochs = 1 if stage == "test" else EPOCHS
    assert len(events.Scalars(f"{stage}/spikes_per_step/hidden1")) == epochs
    per_step = _last(events, f"{stage}/spikes_per_step/hidden1")
    assert 0.0 < per_step <= 1.0
    assert _last(events, f"{stage}/rate_hz/hidden1") == pytest.approx(per_step / DT, rel=1e-4)
    for fraction in ("silent", "saturated"):
        assert 0.0 <= _last(events, f"{stage}/{fraction}/hidden1") <= 1.0
    per_sample = _last(events, f"{stage}/spikes_per_sample/hidden1")
    assert per_sample == pytest.approx(per_step * STEPS * HIDDEN, rel=1e-4)
    assert _last(events, f"{stage}/spikes_per_sample/total") == pytest.approx(per_sample)


def test_learning_rate_and_gradient_norm(events: EventAccumulator) -> None:
    rates = [event.value for event in events.Scalars("train/lr")]
    assert rates == pytest.approx([0.003 * 0.5**epoch for epoch in range(EPOCHS)])  # StepLR
    norms = [event.value for event in events.Scalars("train/grad_norm")]
    assert len(norms) == EPOCHS and all(0.0 < norm < 1e3 for norm in norms)


def test_activity_images_every_epoch_at_figure_size(events: EventAccumulator) -> None:
    assert set(events.Tags()["images"]) == {f"activity/{tag}" for tag in IMAGE_TAGS}
    for tag in IMAGE_TAGS:
        images = events.Images(f"activity/{tag}")
        assert len(images) == EPOCHS
        assert {(image.width, image.height) for image in images} == {(640, 360)}
    val_steps = [event.step for event in events.Scalars("val/acc")]
    assert [image.step for image in events.Images("activity/raster/hidden1")] == val_steps


def test_rate_and_weight_histograms(events: EventAccumulator) -> None:
    histograms = set(events.Tags()["histograms"])
    assert {"rates_hz/hidden1", "weights/fc1.weight", "weights/fc_out.weight"} <= histograms
    rates = events.Histograms("rates_hz/hidden1")[-1].histogram_value
    assert rates.num == HIDDEN
    assert 0.0 <= rates.min <= rates.max <= 1.0 / DT


def test_hparams_hold_config_choices_and_logged_metric_tags(events: EventAccumulator) -> None:
    content = events.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/session_start_info"]
    ).session_start_info
    assert start.hparams["optimizer.lr"].number_value == pytest.approx(0.003)
    assert start.hparams["seq_length"].number_value == STEPS
    assert start.hparams["topology.hidden"].string_value == f"[{HIDDEN}]"
    assert start.hparams["choice.neuron"].string_value == "lif"
    assert start.hparams["choice.encoder"].string_value == "constant_current"
    excluded = ("paths.", "callbacks.", "logger.", "choice.callbacks", "choice.logger")
    assert not any(name.startswith(excluded) for name in start.hparams)
    experiment = plugin_data_pb2.HParamsPluginData.FromString(
        content["_hparams_/experiment"]
    ).experiment
    metrics = {info.name.tag for info in experiment.metric_infos}
    assert {"val/acc", "test/acc", "val/loss"} <= metrics
    assert metrics <= set(events.Tags()["scalars"])
    assert "hp_metric" not in events.Tags()["scalars"]


def test_plot_command_renders_pngs_from_the_checkpoint(run_dir: Path, tmp_path: Path) -> None:
    assert cli.main([f"run_dir={run_dir}", f"out={tmp_path}", "sample=1", "split=test"]) == 0
    names = {path.name for path in tmp_path.glob("*.png")}
    expected = {f"{tag.replace('/', '_')}.png" for tag in IMAGE_TAGS} | {"weights.png"}
    assert names == expected
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in tmp_path.glob("*.png"))


def test_plot_command_rejects_bad_arguments(run_dir: Path, capsys: pytest.CaptureFixture) -> None:
    assert cli.main([f"run_dir={run_dir}", "split=dev"]) == 2
    assert "split must be one of train, val, test (got 'dev')" in capsys.readouterr().err
    assert cli.main(["run_dir=/nonexistent"]) == 2
    assert "run_dir /nonexistent does not exist" in capsys.readouterr().err
    assert cli.main([f"run_dir={run_dir}", "colour=red"]) == 2
    assert "unknown argument 'colour=red'; valid: run_dir=" in capsys.readouterr().err


def test_spike_plots_are_off_in_sweeps_unless_forced(tmp_path: Path) -> None:
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        loggers=[TensorBoardLogger(str(tmp_path))],
        current_epoch=0,
        max_epochs=10,
    )
    assert SpikePlots()._is_due(trainer)
    set_run_context(RunContext(multirun=True))
    assert not SpikePlots()._is_due(trainer)
    assert SpikePlots(in_sweeps=True)._is_due(trainer)
    set_run_context(RunContext())
    trainer.current_epoch = 3
    assert not SpikePlots(every_n_epochs=2)._is_due(trainer)
    trainer.current_epoch = 9  # the last epoch is always plotted
    assert SpikePlots(every_n_epochs=2)._is_due(trainer)
    trainer.loggers = []
    assert not SpikePlots()._is_due(trainer)


def test_callback_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match=r"saturation must be in \(0, 1\] \(got 1.5\)"):
        SpikeActivityMonitor(saturation=1.5)
    with pytest.raises(ValueError, match="every_n_epochs must be an integer >= 1 \\(got 0\\)"):
        SpikePlots(every_n_epochs=0)
    with pytest.raises(ValueError, match="metrics must be a non-empty list"):
        HParamsLogger(metrics=[])
    flat = flatten_config({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": True})
    assert flat == {"a.b": 1, "a.c": "[1, 2]", "d": "null", "e": True}


def test_spike_plots_shade_the_periods_a_task_provides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task with ``periods(batch)`` (e.g. store / recall) gets them passed to the readout plot."""
    network = network_from_config(
        {"type": "mlp", "hidden": [8]}, {"model": "lif"}, {"model": "li"}, (5,), 2
    )
    encoder = ConstantCurrentEncoder(seq_length=10)
    recall = torch.zeros(10, 4, dtype=torch.bool)
    recall[6:9] = True
    task = SimpleNamespace(inputs=lambda batch: batch[0], periods=lambda batch: {"recall": recall})
    module = SimpleNamespace(
        encoder=encoder,
        network=network,
        task=task,
        device=torch.device("cpu"),
        dt=DT,
        named_parameters=network.named_parameters,
    )
    logger = TensorBoardLogger(str(tmp_path), name="", version="")
    trainer = SimpleNamespace(
        sanity_checking=False,
        is_global_zero=True,
        loggers=[logger],
        current_epoch=0,
        max_epochs=1,
        fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(_batches_that_stepped=7)),
        global_step=7,
    )
    seen: dict[str, Any] = {}

    def spy(recording: Recording, **kwargs: Any) -> dict[str, Figure]:
        seen.update(kwargs)
        return recording_figures(recording, **kwargs)

    monkeypatch.setattr("spikeexp.callbacks.plots.recording_figures", spy)
    plots = SpikePlots(sample=1)
    batch = (torch.rand(4, 5), torch.zeros(4))
    plots.on_validation_epoch_start(trainer, module)
    network(encoder(batch[0]))
    plots.on_validation_batch_end(trainer, module, None, batch, 0)
    plots.on_validation_epoch_end(trainer, module)
    logger.experiment.flush()
    assert seen["periods"] == {"recall": recall} and seen["sample"] == 1
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [image.step for image in events.Images("activity/readout")] == [7]
    assert events.Histograms("rates_hz/hidden1")[0].histogram_value.num == 8
