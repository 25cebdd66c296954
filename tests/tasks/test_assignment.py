"""Label assignment: neurons get the class of their highest mean response, samples the class
whose neurons respond most on average; the assignments travel in the state_dict."""

from __future__ import annotations

import pytest
import torch

from spikeexp.tasks.assignment import LabelAssignmentTask
from spikeexp.tasks.digits import DigitsDataModule


def _readout(counts: list[list[float]]) -> torch.Tensor:
    """Spike counts ``[batch, neurons]`` as a readout ``[T=2, batch, neurons]``."""
    counts_tensor = torch.tensor(counts)
    return torch.stack([counts_tensor - counts_tensor // 2, counts_tensor // 2])


@pytest.fixture
def task() -> LabelAssignmentTask:
    return LabelAssignmentTask(DigitsDataModule(batch_size=4))


def test_assignment_by_highest_mean_response(task: LabelAssignmentTask) -> None:
    task.calibration_start()
    # neurons: 0 likes class 3, 1 likes class 7, 2 never spikes, 3 likes class 3 more than 7
    task.calibrate(_readout([[4, 0, 0, 2], [2, 1, 0, 4]]), (None, torch.tensor([3, 3])))
    task.calibrate(_readout([[1, 5, 0, 3]]), (None, torch.tensor([7])))
    task.calibration_end()
    assert task.assignments.tolist() == [3, 7, -1, 3]
    votes = task.votes(torch.tensor([[2.0, 1.0, 9.0, 4.0], [0.0, 6.0, 0.0, 1.0]]))
    assert votes[0, 3] == 3.0 and votes[0, 7] == 1.0  # mean of neurons 0 and 3, neuron 1
    assert votes[1, 3] == 0.5 and votes[1, 7] == 6.0
    assert torch.isinf(votes[0, 0]) and votes[0, 0] < 0  # no neuron for class 0
    output = task.step(_readout([[2, 1, 9, 4], [0, 6, 0, 1]]), (None, torch.tensor([3, 3])), "val")
    assert output.loss is None
    assert float(output.metrics["acc"].compute()) == 0.5


def test_before_calibration_every_sample_is_class_zero(task: LabelAssignmentTask) -> None:
    assert task.votes(torch.ones(3, 5)).argmax(-1).tolist() == [0, 0, 0]


def test_assignments_are_saved_and_restored(task: LabelAssignmentTask) -> None:
    task.assignments = torch.tensor([1, -1, 4])
    restored = LabelAssignmentTask(DigitsDataModule(batch_size=4))
    restored.load_state_dict(task.state_dict())
    assert restored.assignments.tolist() == [1, -1, 4]


def test_calibration_batches_are_the_training_set_in_order(task: LabelAssignmentTask) -> None:
    data = task.datamodule
    batches = list(task.calibration_batches())
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(x, data.train_set.tensors[0])


def test_calibration_needs_a_batch(task: LabelAssignmentTask) -> None:
    task.calibration_start()
    with pytest.raises(ValueError, match="needs at least one calibration batch"):
        task.calibration_end()
