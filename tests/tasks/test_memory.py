"""The store-recall memory task: generator statistics, seeding, the masked loss, a short run."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.core.hydra_config import HydraConfig

from spikeexp.engine.experiment import build_experiment, build_trainer
from spikeexp.engine.schema import ConfigError
from spikeexp.module.encode import PreEncoded
from spikeexp.tasks.memory import (
    MemoryBatch,
    MemoryDataModule,
    MemoryTask,
    StoreRecall,
    recall_logits,
)
from spikeexp.tasks.tensor_data import SampleKey
from tests.helpers import compose_like_cli

POP = 5
PERIOD = 200


def _periods(batch: MemoryBatch, task: StoreRecall) -> torch.Tensor:
    """Spike counts per period and population ``[periods, batch, 4]``."""
    size, steps, _ = batch.spikes.shape
    per_period = batch.spikes.reshape(size, steps // task.period_steps, task.period_steps, 4, POP)
    return per_period.sum(dim=(2, 4)).transpose(0, 1)


@pytest.fixture(scope="module")
def big_batch() -> tuple[StoreRecall, MemoryBatch]:
    task = StoreRecall()
    return task, task.sample(600, torch.Generator().manual_seed(5))


def _binomial_bound(p: float, n: int, sigmas: float = 5.0) -> float:
    return sigmas * math.sqrt(p * (1 - p) / n)


def test_shapes_and_default_layout(big_batch: tuple[StoreRecall, MemoryBatch]) -> None:
    task, batch = big_batch
    assert task.channels == 20 and task.steps() == 2400
    assert batch.spikes.shape == (600, 2400, 20)
    assert batch.recall_mask.shape == (600, 2400) and batch.labels.shape == (600,)
    assert set(batch.spikes.unique().tolist()) <= {0.0, 1.0}
    assert not batch.long


def test_rates_match_the_populations(big_batch: tuple[StoreRecall, MemoryBatch]) -> None:
    """Active value populations fire at 100 Hz, commands at 50 Hz, everything else is silent."""
    task, batch = big_batch
    counts = _periods(batch, task)  # [periods, batch, 4]
    trials = POP * PERIOD
    value_active = counts[..., :2] > 0
    store_active, recall_active = counts[..., 2] > 0, counts[..., 3] > 0
    # Each period: at most one value population, and none during RECALL.
    assert int((value_active.sum(-1) > 1).sum()) == 0
    assert int(value_active[recall_active].sum()) == 0
    assert bool((value_active.sum(-1) == 1)[~recall_active].all())
    value_rate = counts[..., :2][value_active].float().mean() / trials / task.dt
    store_rate = counts[..., 2][store_active].float().mean() / trials / task.dt
    recall_rate = counts[..., 3][recall_active].float().mean() / trials / task.dt
    n_value = int(value_active.sum()) * trials
    n_command = batch.labels.numel() * trials
    assert abs(value_rate * task.dt - 0.1) < _binomial_bound(0.1, n_value)
    assert abs(store_rate * task.dt - 0.05) < _binomial_bound(0.05, n_command)
    assert abs(recall_rate * task.dt - 0.05) < _binomial_bound(0.05, n_command)


def test_store_recall_placement_and_labels(big_batch: tuple[StoreRecall, MemoryBatch]) -> None:
    task, batch = big_batch
    counts = _periods(batch, task)
    store_active, recall_active = counts[..., 2] > 0, counts[..., 3] > 0
    assert bool((store_active.sum(0) == 1).all()) and bool((recall_active.sum(0) == 1).all())
    store, recall = store_active.int().argmax(0), recall_active.int().argmax(0)
    assert set(store.tolist()) == set(range(6)) and set(recall.tolist()) == set(range(6, 12))
    # Labels: the value population active in the STORE period.
    shown = counts[..., :2].argmax(-1)  # [periods, batch]
    assert torch.equal(batch.labels, shown.gather(0, store.unsqueeze(0)).squeeze(0))
    assert 0.4 < batch.labels.float().mean() < 0.6
    # The recall mask covers exactly the RECALL period.
    mask_period = batch.recall_mask.reshape(-1, 12, PERIOD).all(2).int().argmax(1)
    assert torch.equal(mask_period, recall)
    assert bool((batch.recall_mask.sum(1) == PERIOD).all())
    # The store mask (shaded in readout plots) covers exactly the STORE period.
    store_mask_period = batch.store_mask.reshape(-1, 12, PERIOD).all(2).int().argmax(1)
    assert torch.equal(store_mask_period, store)
    assert bool((batch.store_mask.sum(1) == PERIOD).all())


def test_long_variant_has_longer_delays() -> None:
    data = MemoryDataModule(batch_size=300, long_test_batches=1)
    batch = data.dataset("long_test")[0]
    task = data.task
    assert batch.long and batch.spikes.shape == (300, 4800, 20)
    counts = _periods(batch, task)
    store = (counts[..., 2] > 0).int().argmax(0)
    recall = (counts[..., 3] > 0).int().argmax(0)
    assert set(store.tolist()) == set(range(6)) and set(recall.tolist()) == set(range(18, 24))
    assert int((recall - store).min()) > 11  # longer than any training delay
    shown = counts[..., :2].argmax(-1)
    assert torch.equal(batch.labels, shown.gather(0, store.unsqueeze(0)).squeeze(0))


def test_seeding_is_deterministic_and_separate() -> None:
    data = MemoryDataModule(batch_size=4, seed=3)
    train = data.dataset("train")
    same = train[SampleKey(2, 1)]
    assert torch.equal(same.spikes, data.dataset("train")[SampleKey(2, 1)].spikes)
    assert not torch.equal(same.spikes, train[SampleKey(3, 1)].spikes)  # new data each epoch
    assert not torch.equal(same.spikes, train[SampleKey(2, 0)].spikes)
    other_seed = MemoryDataModule(batch_size=4, seed=4)
    assert not torch.equal(same.spikes, other_seed.dataset("train")[SampleKey(2, 1)].spikes)
    # Validation and test depend only on their own seeds, not on the training seed.
    for stage in ("val", "test", "long_test"):
        assert torch.equal(data.dataset(stage)[0].spikes, other_seed.dataset(stage)[0].spikes)
    assert not torch.equal(data.dataset("val")[0].spikes, data.dataset("test")[0].spikes)


def test_train_loader_follows_the_epoch() -> None:
    data = MemoryDataModule(batch_size=2, train_batches=2)
    loader = data.train_dataloader()
    first = [batch.spikes for batch in loader]
    loader.sampler.set_epoch(1)
    second = [batch.spikes for batch in loader]
    loader.sampler.set_epoch(0)
    again = [batch.spikes for batch in loader]
    assert len(first) == 2 and all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], second[0])


def test_resumed_loader_continues_with_the_next_batch() -> None:
    data = MemoryDataModule(batch_size=2, train_batches=3)
    loader = data.train_dataloader()
    loader.sampler.set_epoch(4)
    full = [batch.spikes for batch in loader]
    iterator = iter(loader)
    next(iterator)
    state = loader.state_dict()
    resumed = data.train_dataloader()
    resumed.load_state_dict(state)
    rest = [batch.spikes for batch in resumed]
    assert len(rest) == 2 and all(torch.equal(a, b) for a, b in zip(rest, full[1:], strict=True))


def test_test_loader_holds_both_variants() -> None:
    data = MemoryDataModule(batch_size=2, test_batches=2, long_test_batches=1)
    longs = [batch.long for batch in data.test_dataloader()]
    assert longs == [False, False, True]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"store_range": [0, 6]}, "data.store_range must end before data.recall_range"),
        ({"recall_range": [6, 12]}, "data.recall_range must be [first, last] periods"),
        ({"value_rate_hz": 2000.0}, "data.value_rate_hz must be in [0, 1/dt]"),
        ({"period_steps": 0}, "data.period_steps must be an integer >= 1"),
        ({"long_test_blocks": 1}, "data.long_test_blocks must be an integer >= 2"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        MemoryDataModule(**kwargs)


def _hand_batch() -> tuple[torch.Tensor, MemoryBatch]:
    """T = 4, batch 2, 2 classes; RECALL = steps 2-3 (sample 0) and 1-3 (sample 1)."""
    readout = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 0.0]],
            [[0.0, 0.0], [1.0, 2.0]],
            [[2.0, 0.0], [0.0, 3.0]],
            [[0.0, 1.0], [2.0, 1.0]],
        ],
        requires_grad=True,
    )
    mask = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 1]], dtype=torch.bool)
    batch = MemoryBatch(torch.zeros(2, 4, 20), torch.tensor([0, 0]), mask, torch.zeros_like(mask))
    return readout, batch


def _cross_entropy(logits: list[float], label: int) -> float:
    return -logits[label] + math.log(sum(math.exp(value) for value in logits))


def test_masked_loss_by_hand() -> None:
    readout, batch = _hand_batch()
    logits, present = recall_logits(readout, batch.recall_mask.t())
    # Sample 0: mean of [2, 0] and [0, 1]; sample 1: mean of [1, 2], [0, 3], [2, 1].
    assert torch.allclose(logits, torch.tensor([[1.0, 0.5], [1.0, 2.0]]))
    assert present.tolist() == [True, True]
    task = MemoryTask(MemoryDataModule(batch_size=2))
    output = task.step(readout, batch, "val")
    expected = (_cross_entropy([1.0, 0.5], 0) + _cross_entropy([1.0, 2.0], 0)) / 2
    assert output.loss.item() == pytest.approx(expected, rel=1e-6)
    assert task.accuracy["val_acc"].compute().item() == pytest.approx(0.5)
    output.loss.backward()
    assert readout.grad[0].abs().sum() == 0  # steps outside RECALL get no gradient
    assert readout.grad[2:].abs().sum() > 0


def test_window_without_recall_gives_zero_loss_with_a_graph() -> None:
    readout, batch = _hand_batch()
    task = MemoryTask(MemoryDataModule(batch_size=2))
    window = slice(0, 1)
    output = task.step(readout[window], batch, "train", window)
    assert output.loss.item() == 0.0 and output.loss.requires_grad
    assert output.metrics == {}
    # A window with part of the RECALL period averages the steps inside it.
    window = slice(1, 3)
    logits, present = recall_logits(readout[window], batch.recall_mask.t()[window])
    assert present.tolist() == [True, True]
    assert torch.allclose(logits, torch.tensor([[2.0, 0.0], [0.5, 2.5]]))


def test_pre_encoded_input_is_a_time_first_view() -> None:
    batch = MemoryDataModule(batch_size=3).dataset("val")[0]
    task = MemoryTask(MemoryDataModule(batch_size=3))
    x = task.inputs(batch)
    assert x.shape == (3, 2400, 20)
    encoder = PreEncoded()
    assert encoder.output_shape(task.input_shape) == (20,)
    encoded = encoder(x)
    assert encoded.shape == (2400, 3, 20) and encoded.data_ptr() == batch.spikes.data_ptr()
    assert torch.equal(encoded[:, 1], batch.spikes[1])


EASY = [
    "data.periods=4",
    "data.period_steps=40",
    "data.store_range=[0,1]",
    "data.recall_range=[2,3]",
    "data.batch_size=64",
    "data.train_batches=10",
    "data.val_batches=1",
    "data.test_batches=2",
    "data.long_test_batches=1",
    "logger=none",
    "callbacks=minimal",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_model_summary=false",
]


@pytest.mark.parametrize("experiment", ["memory_lsnn", "memory_lif", "memory_alsnn"])
def test_experiments_build_the_paper_network(experiment: str, tmp_path) -> None:
    config = compose_like_cli([f"experiment={experiment}", f"paths.output_dir={tmp_path}"])
    run = build_experiment(config)
    hidden = run.module.network.layers.get_submodule("hidden1")
    assert (hidden.input_size, hidden.hidden_size) == (20, 20)
    beta = getattr(hidden.p, "beta", None)
    if experiment == "memory_lsnn":
        assert beta.tolist() == [0.0] * 10 + [beta[-1].item()] * 10 and beta[-1] > 0
    elif experiment == "memory_alsnn":
        assert float(beta) > 0
    else:
        assert beta is None  # plain LIF neurons
    assert run.module.task.num_outputs == 2


def test_short_training_run_learns_to_recall(tmp_path) -> None:
    """An easier store-recall (4 periods of 40 steps) trains well above chance in seconds."""
    torch.manual_seed(0)
    config = compose_like_cli(
        ["experiment=memory_lsnn", f"paths.output_dir={tmp_path}", "trainer.max_epochs=12", *EASY]
    )
    try:
        run = build_experiment(config)
        trainer = build_trainer(run.spec)
        trainer.fit(run.module, datamodule=run.datamodule)
        results = trainer.test(run.module, datamodule=run.datamodule)[0]
    finally:
        HydraConfig.instance().cfg = None
    assert results["test/acc"] > 0.8  # seeds 0-4 reach 0.93-1.0
    assert 0.0 <= results["test/acc_long"] <= 1.0


@pytest.mark.parametrize(
    ("beta", "message"),
    [
        ("[0,1,2]", "layer 'hidden1' .* does not fit"),  # 3 values for 20 neurons
        ("[0,1,-2]", "neuron: beta must be >= 0"),
    ],
)
def test_bad_per_neuron_values_are_reported(beta: str, message: str, tmp_path) -> None:
    config = compose_like_cli(
        ["experiment=memory_lsnn", f"paths.output_dir={tmp_path}", f"neuron.beta={beta}"]
    )
    with pytest.raises(ConfigError, match=message):
        build_experiment(config)


def _gradients(overrides: list[str], tmp_path) -> tuple[float, dict[str, torch.Tensor]]:
    """Loss and gradients of one training step of the easy task (same initial weights)."""
    torch.manual_seed(0)
    config = compose_like_cli(
        ["experiment=memory_lsnn", f"paths.output_dir={tmp_path}", *EASY, *overrides]
    )
    module = build_experiment(config).module
    module.log = lambda *args, **kwargs: None  # no trainer attached
    batch = module.task.datamodule.dataset("train")[0]
    loss = module.shared_step(batch, "train")
    loss.backward()
    return loss.item(), {name: p.grad for name, p in module.named_parameters()}


def test_recompute_steps_trains_with_the_same_gradients(tmp_path) -> None:
    loss, grads = _gradients([], tmp_path)
    recomputed_loss, recomputed = _gradients(["recompute_steps=50"], tmp_path)
    assert recomputed_loss == pytest.approx(loss, rel=1e-6)
    for name, grad in grads.items():
        assert torch.allclose(recomputed[name], grad, atol=1e-6, rtol=1e-4), name
    config = compose_like_cli(
        [
            "experiment=memory_lsnn",
            f"paths.output_dir={tmp_path}",
            "recompute_steps=50",
            "tbptt_steps=100",
        ]
    )
    with pytest.raises(ConfigError, match="recompute_steps must be null when tbptt_steps"):
        build_experiment(config)
