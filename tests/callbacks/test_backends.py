"""The backend report: one log line per neuron and pooling layer at the start of a run saying
what really runs there, and the same table in TensorBoard."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from spikeexp.callbacks.backends import BackendReport
from spikeexp.engine.experiment import build_experiment, build_trainer
from spikeexp.functional.fused import build, gpu, ops
from tests.helpers import compose_like_cli

pytestmark = pytest.mark.skipif(build.kernels() is None, reason="no C++ compiler")

CONV = [
    "topology=conv",
    "topology.channels=[3]",
    "topology.hidden=[8]",
    "seq_length=4",
    "data.batch_size=8",
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=2",
    "+trainer.limit_val_batches=1",
    "+trainer.num_sanity_val_steps=0",
    "~callbacks.rich_progress_bar",
]


def _fit(tmp_path: Path, overrides: list[str], caplog: pytest.LogCaptureFixture) -> list[str]:
    config = compose_like_cli([f"paths.output_dir={tmp_path}", *CONV, *overrides])
    try:
        experiment = build_experiment(config)
        trainer = build_trainer(experiment.spec, enable_model_summary=False)
        with caplog.at_level(logging.INFO, logger="spikeexp.callbacks.backends"):
            trainer.fit(experiment.module, datamodule=experiment.datamodule)
    finally:
        HydraConfig.instance().cfg = None
    assert sum(isinstance(c, BackendReport) for c in trainer.callbacks) == 1
    return [r.getMessage() for r in caplog.records if r.name == "spikeexp.callbacks.backends"]


def test_fused_layers_are_reported_once_and_written_to_tensorboard(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lines = _fit(tmp_path, [], caplog)
    assert lines == [
        "backend of network.layers.spike_conv1 (LIF): fused, C++ kernels (cpu, float32 input)",
        "backend of network.layers.pool1 (FusedMaxPool2d): fused, C++ kernels (cpu, float32 input)",
        "backend of network.layers.hidden1 (LIF): fused, C++ kernels (cpu, float32 input)",
        "backend of network.layers.readout (LI): fused, C++ kernels (cpu, float32 input)",
    ]
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"tensors": 0})
    events.Reload()
    (text,) = events.Tensors("backends/text_summary")
    table = text.tensor_proto.string_val[0].decode()
    assert "| network.layers.readout (LI) | fused, C++ kernels (cpu, float32 input) |" in table


def test_reference_and_triton_backends_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _fit(tmp_path / "reference", ["unroll.backend=reference"], caplog)
    assert "backend of network.layers.hidden1 (LIF): reference step loop (cpu, float32 input)" in (
        lines
    )
    caplog.clear()
    monkeypatch.setitem(ops.IMPLEMENTATIONS, "cpu", lambda: gpu)  # Triton, interpreted
    lines = _fit(tmp_path / "triton", [], caplog)
    assert "backend of network.layers.readout (LI): fused, Triton kernels (cpu, float32 input)" in (
        lines
    )
