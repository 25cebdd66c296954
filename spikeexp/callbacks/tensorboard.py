"""Small helper shared by the callbacks: the TensorBoard writers of a trainer."""

from __future__ import annotations

from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.loggers import TensorBoardLogger


def tensorboard_writers(trainer: Trainer) -> list[Any]:
    """The ``SummaryWriter`` of every TensorBoard logger of ``trainer`` (empty if none)."""
    return [
        logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)
    ]
