"""The efficiency report: synaptic operations by hand, the report of a run, and (when the
``neurobench`` package is installed) the same numbers as NeuroBench's own metrics."""

from __future__ import annotations

from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from torch import nn

from spikeexp.callbacks.efficiency import EfficiencyReport, connection_ops, is_spiking
from spikeexp.engine.experiment import build_experiment, build_trainer
from spikeexp.module import LI, LIF, LIFRecurrent, Lift, PlasticConv2d, PlasticLinear
from spikeexp.module.network import SpikingNetwork
from tests.helpers import compose_like_cli


def mlp(inputs: int, hidden: list[int], outputs: int) -> SpikingNetwork:
    """fc1 hidden1 ... fc_out readout, as the mlp topology names them."""
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    size = inputs
    for index, width in enumerate(hidden, start=1):
        layers[f"fc{index}"] = Lift(nn.Linear(size, width))
        layers[f"hidden{index}"] = LIF(v_th=0.1)
        size = width
    layers["fc_out"] = Lift(nn.Linear(size, outputs))
    layers["readout"] = LI()
    return SpikingNetwork(layers, [f"hidden{k}" for k in range(1, len(hidden) + 1)])


def recurrent_network(inputs: int, hidden: int, outputs: int) -> SpikingNetwork:
    layers = OrderedDict(
        hidden1=LIFRecurrent(inputs, hidden, v_th=0.1),
        fc_out=Lift(nn.Linear(hidden, outputs)),
        readout=LI(),
    )
    return SpikingNetwork(layers, ["hidden1"])


def test_linear_ops_by_hand() -> None:
    layer = nn.Linear(3, 2, bias=True)
    layer.weight.data = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])  # two steps
    # step 0: inputs 0 and 2 are active, each has one nonzero weight; step 1: nothing
    assert connection_ops(layer, x) == (2.0, 12.0)


@pytest.mark.parametrize(("padding", "dense"), [(0, 16.0), (1, 36.0)])
def test_conv_ops_by_hand(padding: int, dense: float) -> None:
    """3x3 input with one active pixel in the middle, 2x2 kernel with a zero anti-diagonal."""
    layer = nn.Conv2d(1, 1, 2, padding=padding)
    layer.weight.data = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    x = torch.zeros(1, 1, 3, 3)
    x[0, 0, 1, 1] = 1.0
    # the middle pixel meets each kernel tap once; 2 of the 4 taps are nonzero. Dense: every
    # in-bounds product: 2x2 outputs x 4 taps without padding, 9 pixels x 4 taps with padding 1.
    assert connection_ops(layer, x) == (2.0, dense)


def test_spike_test_of_neurobench() -> None:
    assert is_spiking(torch.tensor([0.0, 1.0, -1.0]))
    assert not is_spiking(torch.tensor([0.0, 0.5]))


class Logger(SimpleNamespace):
    """A stand-in for the LightningModule's ``log``."""

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged[name] = value


def run_report(network: nn.Module, inputs: list[torch.Tensor]) -> dict[str, float]:
    """The report after ``network`` ran on each ``[T, batch, ...]`` input (one test epoch)."""
    report = EfficiencyReport()
    module = Logger(network=network, logged={})
    report.on_test_epoch_start(None, module)
    for x in inputs:
        with torch.no_grad():
            network(x)
        report.on_test_batch_end(None, module, None, None, 0)
    report.on_test_epoch_end(None, module)
    values = {name.removeprefix("test/efficiency/"): v for name, v in module.logged.items()}
    assert report.report == values and not report._handles
    return values


def test_mlp_report(monkeypatch) -> None:
    torch.manual_seed(0)
    network = mlp(4, [5], 3)
    fc1 = network.layers.fc1.module
    fc1.weight.data[0] = 0.0  # hidden neuron 0 gets no input: 4 zero weights
    spikes = (torch.rand(6, 2, 4) < 0.5).float()
    analog = torch.rand(6, 3, 4)
    values = run_report(network, [spikes, analog])
    steps, samples = 6, 5
    active = spikes.flatten(0, 1).ne(0).float()
    expected_ac = float((active @ fc1.weight.ne(0).float().sum(0)).sum())
    hidden = network.records["hidden1"]  # of the last batch (analog)
    assert values["synops_ac/hidden1"] == pytest.approx(expected_ac / samples)
    assert values["synops_mac/hidden1"] == pytest.approx(3 * steps * 4 * 4 / samples)
    assert values["synops_dense/hidden1"] == pytest.approx(steps * 4 * 5)
    assert values["synops_dense/readout"] == pytest.approx(steps * 5 * 3)
    assert values["neuron_updates/hidden1"] == steps * 5
    assert values["neuron_updates/readout"] == steps * 3
    assert values["neuron_updates/total"] == steps * 8
    assert values["synops_dense/total"] == pytest.approx(steps * (20 + 15))
    assert 0.0 <= values["activation_sparsity/hidden1"] <= 1.0
    assert "activation_sparsity/readout" not in values  # voltages, not spikes
    assert hidden.shape == (steps, 3, 5)
    assert values["parameters/hidden1"] == 4 * 5 + 5
    assert values["parameters/readout"] == 5 * 3 + 3
    assert values["parameters/total"] == 25 + 18
    assert values["connection_sparsity/hidden1"] == pytest.approx(4 / 20)
    assert values["connection_sparsity/total"] == pytest.approx(4 / 35)
    footprint = sum(t.numel() * 4 for t in (*network.parameters(), *network.buffers()))
    assert values["footprint_bytes/total"] == footprint


def test_recurrent_layer_counts_input_and_recurrent_synapses() -> None:
    torch.manual_seed(1)
    network = recurrent_network(3, 6, 2)
    layer = network.layers.hidden1
    x = (torch.rand(5, 4, 3) < 0.6).float()
    values = run_report(network, [x])
    z = network.records["hidden1"]
    previous = torch.cat([torch.zeros_like(z[:1]), z[:-1]])
    recurrent = layer.effective_recurrent_weights().ne(0).float().sum(0)  # no autapses: 5 each
    expected = x.ne(0).float().sum((0, 1)) @ torch.full((3,), 6.0)
    expected += previous.ne(0).float().sum((0, 1)) @ recurrent
    assert values["synops_ac/hidden1"] == pytest.approx(float(expected) / 4)
    assert values["synops_dense/hidden1"] == pytest.approx(5 * (3 * 6 + 6 * 6))
    assert values["connection_sparsity/hidden1"] == pytest.approx(6 / (18 + 36))  # the diagonal
    active = float(z.ne(0).sum())
    assert values["activation_sparsity/hidden1"] == pytest.approx(1 - active / z.numel())


def test_constant_input_counts_every_step() -> None:
    """A time-stride-0 input (constant-current encoders) counts T times, like T distinct steps."""
    network = mlp(3, [4], 2)
    x = torch.rand(2, 3)
    constant = run_report(network, [x.unsqueeze(0).expand(7, 2, 3)])
    repeated = run_report(network, [x.unsqueeze(0).repeat(7, 1, 1)])
    assert constant["synops_mac/hidden1"] == repeated["synops_mac/hidden1"] == 7 * 3 * 4
    assert constant == pytest.approx(repeated)


def test_every_run_reports_efficiency(tmp_path) -> None:
    """The default digits recipe, one short epoch: the test results carry the report."""
    config = compose_like_cli(
        [
            f"paths.output_dir={tmp_path}",
            "trainer.max_epochs=1",
            "+trainer.limit_train_batches=2",
            "+trainer.limit_test_batches=3",
            "logger=none",
            "callbacks=minimal",
            "+trainer.enable_progress_bar=false",
        ]
    )
    try:
        run = build_experiment(config)
        trainer = build_trainer(run.spec)
        trainer.fit(run.module, datamodule=run.datamodule)
        results = trainer.test(run.module, datamodule=run.datamodule, verbose=False)[0]
    finally:
        HydraConfig.instance().cfg = None
    steps = config.seq_length
    images = torch.cat([x for x, _ in list(run.datamodule.test_dataloader())[:3]])
    nonzero_pixels = float(images.ne(0).sum()) / len(images)
    assert results["test/efficiency/synops_mac/hidden1"] == pytest.approx(
        steps * 128 * nonzero_pixels, rel=1e-5
    )
    assert results["test/efficiency/synops_dense/hidden1"] == steps * 64 * 128
    assert results["test/efficiency/neuron_updates/total"] == steps * (128 + 10)
    layers = ("hidden1", "readout")
    total = sum(results[f"test/efficiency/synops_ac/{layer}"] for layer in layers)
    assert results["test/efficiency/synops_ac/total"] == pytest.approx(total, rel=1e-5)


def test_same_numbers_as_neurobench() -> None:
    """NeuroBench's static metrics and per-layer operation count on the same network."""
    static = pytest.importorskip("neurobench.metrics.static")
    macs = pytest.importorskip("neurobench.metrics.utils.layers.macs")
    torch.manual_seed(2)
    network = mlp(5, [8, 6], 3)
    network.layers.fc2.module.weight.data[:, :3] = 0.0
    inputs = {}
    for name in ("fc1", "fc2", "fc_out"):
        network.layers.get_submodule(name).register_forward_hook(
            lambda module, args, out, name=name: inputs.__setitem__(name, args[0].clone())
        )
    x = (torch.rand(4, 2, 5) < 0.5).float()
    values = run_report(network, [x])
    model = SimpleNamespace(__net__=lambda: network)
    assert values["parameters/total"] == static.ParameterCount()(model)
    assert values["footprint_bytes/total"] == static.Footprint()(model)
    assert values["connection_sparsity/total"] == pytest.approx(
        float(static.ConnectionSparsity()(model)), abs=1e-3
    )
    for name, layer in (("fc1", "hidden1"), ("fc2", "hidden2"), ("fc_out", "readout")):
        linear = network.layers.get_submodule(name).module
        steps = inputs[name].flatten(0, 1)
        effective, spiking = macs.single_layer_MACs(steps, linear)
        dense, _ = macs.single_layer_MACs(steps, linear, total=True)
        kind = "synops_ac" if spiking else "synops_mac"
        assert values[f"{kind}/{layer}"] * 2 == effective
        assert values[f"synops_dense/{layer}"] * 2 == dense


@pytest.mark.parametrize("conv", [False, True])
def test_plastic_connections_count_like_their_static_twins(conv: bool) -> None:
    """A plastic connection (evaluation mode: no updates) gives the report of the Linear/Conv
    layer with the same weights and geometry."""
    torch.manual_seed(2)
    if conv:
        plastic = PlasticConv2d(2, 3, 3, stride=2, padding=1, init_range=[0.0, 1.0])
        static = nn.Conv2d(2, 3, 3, stride=2, padding=1, bias=False)
        x = (torch.rand(4, 2, 2, 6, 6) < 0.3).float()
    else:
        plastic = PlasticLinear(5, 4, init_range=[0.0, 1.0])
        static = nn.Linear(5, 4, bias=False)
        x = (torch.rand(4, 2, 5) < 0.3).float()
    with torch.no_grad():
        plastic.weight[0] = 0.0
        static.weight.copy_(plastic.weight)

    def network(connection: nn.Module) -> SpikingNetwork:
        layers = OrderedDict(fc1=connection, hidden1=LIF(v_th=0.1))
        return SpikingNetwork(layers, ["hidden1"]).eval()

    values = run_report(network(plastic), [x])
    expected = run_report(network(Lift(static)), [x])
    assert values["synops_ac/hidden1"] > 0
    assert values == pytest.approx(expected)
