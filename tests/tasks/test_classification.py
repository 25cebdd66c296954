"""Classification task: the (label-smoothed) cross-entropy against hand-computed values."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from spikeexp.module.decode import MaxOverTime
from spikeexp.tasks.classification import ClassificationTask


def _task(label_smoothing: float = 0.0) -> ClassificationTask:
    data = SimpleNamespace(input_shape=(2,), num_classes=3)
    return ClassificationTask(data, MaxOverTime(), label_smoothing=label_smoothing)


# Readout [T=2, batch=2, classes=3]; the maximum over time gives the logits
# [[2, 0, 0], [0, 1, 3]], labels [0, 2].
READOUT = torch.tensor([[[2.0, -1.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 0.0, -2.0], [-1.0, 0.5, 3.0]]])
TARGET = torch.tensor([0, 2])


def _log_softmax(logits: list[float]) -> list[float]:
    norm = math.log(sum(math.exp(z) for z in logits))
    return [z - norm for z in logits]


def _smoothed_cross_entropy(epsilon: float) -> float:
    """mean_i -sum_k q_ik log p_ik with q_ik = (1 - eps) [k = y_i] + eps / K, by hand."""
    total = 0.0
    for logits, label in (([2.0, 0.0, 0.0], 0), ([0.0, 1.0, 3.0], 2)):
        log_p = _log_softmax(logits)
        total -= sum(((1 - epsilon) * (k == label) + epsilon / 3) * log_p[k] for k in range(3))
    return total / 2


@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_training_loss_is_the_smoothed_cross_entropy(epsilon: float) -> None:
    loss = _task(epsilon).step(READOUT, (None, TARGET), "train").loss
    assert loss.item() == pytest.approx(_smoothed_cross_entropy(epsilon), rel=1e-6)


@pytest.mark.parametrize("stage", ["val", "test"])
def test_validation_and_test_losses_are_not_smoothed(stage: str) -> None:
    loss = _task(0.3).step(READOUT, (None, TARGET), stage).loss
    assert loss.item() == pytest.approx(_smoothed_cross_entropy(0.0), rel=1e-6)
    assert _smoothed_cross_entropy(0.3) != pytest.approx(_smoothed_cross_entropy(0.0))


def test_accuracy_is_unaffected_by_smoothing() -> None:
    task = _task(0.2)
    task.step(READOUT, (None, torch.tensor([0, 1])), "train")
    assert task.accuracy["train_acc"].compute().item() == pytest.approx(0.5)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 2, True, "0.1", None])
def test_bad_label_smoothing_is_rejected(bad: object) -> None:
    with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 1\)"):
        _task(bad)  # type: ignore[arg-type]
