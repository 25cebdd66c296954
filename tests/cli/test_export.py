"""``spikeexp-export`` on trained runs: the digits MLP and the Fashion-MNIST ConvNet (tiny
versions, a few batches) export, and the file imported again gives the trained network's spikes
and voltages on real encoded data; unexportable runs fail with one line and write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import nir
import numpy as np
import pytest
import torch
from hydra.core.hydra_config import HydraConfig

from spikeexp.cli.export import main
from spikeexp.cli.train import train
from spikeexp.engine import build_experiment
from spikeexp.nir import from_nir
from spikeexp.runtime.checkpoint import verify_checkpoint
from spikeexp.runtime.run_files import find_checkpoint, locate_run, offline_config
from tests.helpers import compose_like_cli
from tests.nir.networks import assert_active, trajectories
from tests.nir.test_round_trip import voltage_atol
from tests.tasks.conftest import fake_dataset

FEW_BATCHES = [
    "trainer.max_epochs=1",
    "++trainer.limit_train_batches=3",
    "++trainer.limit_val_batches=1",
    "test=false",
    "logger=none",
    "callbacks=minimal",
]


@pytest.fixture
def trained_run(tmp_path: Path) -> Iterator:
    """Train a few batches with the given overrides; return the run directory."""

    def run(*overrides: str) -> Path:
        run_dir = tmp_path / "run"
        torch.set_num_threads(1)
        config = compose_like_cli([f"paths.output_dir={run_dir}", *FEW_BATCHES, *overrides])
        try:
            train(config)
        finally:
            HydraConfig.instance().cfg = None
        return run_dir

    yield run


def chain_kinds(graph: nir.NIRGraph) -> list[str]:
    """Node types from the Input along the edges to the Output (a file lists nodes by name)."""
    following = dict(graph.edges)
    kinds, name = [], "input"
    while name in following:
        kinds.append(type(graph.nodes[name]).__name__)
        name = following[name]
    return [*kinds, type(graph.nodes[name]).__name__]


def _trained_module(run_dir: Path, which: str = "best"):
    config, checkpoint = locate_run(run_dir, None, which)
    module = build_experiment(offline_config(config, run_dir)).module
    module.load_state_dict(verify_checkpoint(checkpoint, module)["state_dict"])
    return module.eval()


def _first_inputs(module) -> torch.Tensor:
    datamodule = module.task.datamodule
    datamodule.prepare_data()
    datamodule.setup("validate")
    batch = next(iter(datamodule.val_dataloader()))
    with torch.no_grad():
        return module.encoder(module.task.inputs(batch)[:8]).contiguous()


def assert_same_network(run_dir: Path, path: Path) -> None:
    module = _trained_module(run_dir)
    x = _first_inputs(module)
    imported = from_nir(path)
    spikes, voltages = trajectories(module.network, x)
    assert_active({name: spikes[name] for name in module.network.spiking_layers})
    spikes_back, voltages_back = trajectories(imported, x)
    for name in module.network.spiking_layers:
        assert torch.equal(spikes_back[name], spikes[name]), name
    # Batch norm (the digits default) is folded into the weights, rounded to float32 once:
    # voltages agree to 1e-6 relative (tests/nir/test_round_trip.py, voltage_atol).
    folded = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())
    for name, v in voltages.items():
        atol = voltage_atol(v, relative=folded)
        torch.testing.assert_close(voltages_back[name], v, atol=atol, rtol=0)


def test_digits_run_exports_from_the_command_line(trained_run, tmp_path: Path) -> None:
    run_dir = trained_run("seq_length=16")
    out = tmp_path / "digits.nir"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "spikeexp.cli.export", f"run_dir={run_dir}", f"out={out}"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == (f"{out}: 7 nodes, 6 edges, dt=0.001 s, input shape (1, 8, 8)")
    graph = nir.read(out)
    assert chain_kinds(graph) == [
        "Input", "Flatten", "Affine", "CubaLIF", "Affine", "CubaLI", "Output",
    ]  # fmt: skip
    assert graph.metadata["seq_length"] == 16
    assert graph.metadata["encoder"].startswith("ConstantCurrentEncoder(")
    assert graph.metadata["decoder"].startswith("MaxOverTime")
    assert Path(graph.metadata["checkpoint"]) == find_checkpoint(run_dir, "best")
    assert_same_network(run_dir, out)


def _node_arrays(graph: nir.NIRGraph) -> dict[str, np.ndarray]:
    return {
        f"{name}.{field}": value
        for name, node in graph.nodes.items()
        for field, value in vars(node).items()
        if isinstance(value, np.ndarray)
    }


def test_ckpt_path_exports_the_same_graph_as_run_dir(trained_run, tmp_path: Path) -> None:
    """``ckpt_path=`` alone (the config stored in the checkpoint) writes the graph that
    ``run_dir=... checkpoint=last`` writes, by default next to the checkpoints folder."""
    run_dir = trained_run("seq_length=8")
    last = find_checkpoint(run_dir, "last")
    assert main([f"run_dir={run_dir}", "checkpoint=last", f"out={tmp_path / 'by_run.nir'}"]) == 0
    assert main([f"ckpt_path={last}"]) == 0
    by_run, by_checkpoint = nir.read(tmp_path / "by_run.nir"), nir.read(run_dir / "model.nir")
    assert Path(by_checkpoint.metadata["checkpoint"]) == last
    assert sorted(by_checkpoint.edges) == sorted(by_run.edges)
    arrays, arrays_back = _node_arrays(by_run), _node_arrays(by_checkpoint)
    assert arrays.keys() == arrays_back.keys() and "fc1.weight" in arrays
    for key, value in arrays.items():
        np.testing.assert_array_equal(arrays_back[key], value, err_msg=key)


def _exported_small_fashion_run(
    trained_run, tmp_path: Path, experiment: str, *overrides: str
) -> tuple[Path, nir.NIRGraph]:
    """A Fashion-MNIST preset with 4 and 8 channels and 16 hidden neurons, trained for 3 batches
    of fake images, exported from its last checkpoint: the run folder and the graph."""
    root = tmp_path / "idx"
    fake_dataset(root, train=96, test=16, gz=True)
    run_dir = trained_run(
        f"experiment={experiment}",
        f"data.root={root}",
        "data.batch_size=16",
        "topology.channels=[4,8]",
        "topology.hidden=[16]",
        *overrides,
    )
    assert main([f"run_dir={run_dir}", "checkpoint=last"]) == 0
    return run_dir, nir.read(run_dir / "model.nir")


def convnet_chain(neuron: str) -> list[str]:
    """The node kinds of a two-convolution ConvNet with ``neuron`` nodes and an LI readout."""
    return [
        "Input", "Conv2d", neuron, "SumPool2d", "Threshold", "Conv2d", neuron, "SumPool2d",
        "Threshold", "Flatten", "Affine", neuron, "Affine", "CubaLI", "Output",
    ]  # fmt: skip


def test_fashion_mnist_convnet_run_exports(trained_run, tmp_path: Path) -> None:
    run_dir, graph = _exported_small_fashion_run(
        trained_run,
        tmp_path,
        "fashion_mnist_norse_convnet",
        "+topology.layers.hidden1.input_scale=5",  # an active hidden layer after 3 batches
    )
    assert chain_kinds(graph) == convnet_chain("CubaLIF")
    assert graph.metadata["dt"] == pytest.approx(2e-3)
    # input_scale 10 of spike_conv2 is in the neuron's input gain: w_in = 10 tau_syn / dt.
    assert graph.nodes["spike_conv2"].w_in.flat[0] == pytest.approx(10 * 5e-3 / 2e-3)
    assert_same_network(run_dir, run_dir / "model.nir")


def test_fashion_mnist_plif_recipe_run_exports(trained_run, tmp_path: Path) -> None:
    """The accuracy recipe: PLIF layers (NIR LIF nodes) with batch norm folded into the
    convolutions and Linear layers, and dropout dropped (eval mode)."""
    run_dir, graph = _exported_small_fashion_run(
        trained_run,
        tmp_path,
        "fashion_mnist_conv",
        # Active layers after 3 batches (batch norm's running statistics have barely moved).
        "+topology.layers.spike_conv2.input_scale=5",
        "+topology.layers.hidden1.input_scale=5",
    )
    assert chain_kinds(graph) == convnet_chain("LIF")
    assert_same_network(run_dir, run_dir / "model.nir")


def test_unexportable_run_fails_with_one_line_and_writes_nothing(
    trained_run, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = trained_run("seq_length=8", "neuron=lsnn")
    out = tmp_path / "lsnn.nir"
    assert main([f"run_dir={run_dir}", f"out={out}"]) == 2
    # The last line: other output of the process (Lightning's logging) may come before it.
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("spikeexp-export: layer 'hidden1' (LSNN): NIR has no adaptive")
    assert error.endswith("(LSNN's threshold rises after each spike)")
    assert not out.exists() and not list(tmp_path.glob(".lsnn.nir*"))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give run_dir=<run directory> or ckpt_path=<checkpoint file>"),
        (["run_dir=x", "format=onnx"], "unknown argument 'format=onnx'; valid: run_dir=..."),
        (["run_dir=x", "checkpoint=first"], "checkpoint must be one of best, last"),
        (["run_dir=x", "resistance=ohm"], "resistance must be one of unit, tau_over_dt"),
        (["run_dir=x", "readout=li"], "readout must be one of cuba_li, li_li"),
        (["run_dir=/nonexistent/run"], "run_dir /nonexistent/run does not exist"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err
