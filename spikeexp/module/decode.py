r"""Decoders: the readout layer's sequence ``[T, batch, classes]`` -> logits ``[batch, classes]``.

================  ==========================================  =====================
decoder           logits :math:`y_c`                          readout layer
================  ==========================================  =====================
``MaxOverTime``   :math:`\max_t v_c(t)` (Norse's ``li_max``)  leaky integrator (LI)
``MeanOverTime``  :math:`\frac1T \sum_t v_c(t)`               leaky integrator (LI)
``LastStep``      :math:`v_c(T-1)`                            leaky integrator (LI)
``SpikeCount``    :math:`\text{scale} \sum_t z_c(t)`          spiking neurons
================  ==========================================  =====================

``reads`` tells the network builder which readout layer a decoder needs: ``"voltage"`` (a
non-spiking model such as LI) or ``"spikes"`` (a spiking model).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn


def _check_sequence(x: torch.Tensor, owner: str) -> None:
    if x.dim() != 3:
        raise ValueError(
            f"{owner} expects a readout sequence [T, batch, classes] (got shape {tuple(x.shape)})"
        )


class Decoder(nn.Module):
    """Base class: ``logits = decoder(readout)`` with ``readout`` of shape ``[T, batch, C]``."""

    reads: ClassVar[str] = "voltage"

    def forward(self, readout: torch.Tensor) -> torch.Tensor:
        _check_sequence(readout, type(self).__name__)
        return self.decode(readout)

    def decode(self, readout: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MaxOverTime(Decoder):
    """Maximum membrane voltage over time of each readout neuron."""

    def decode(self, readout: torch.Tensor) -> torch.Tensor:
        return readout.max(dim=0).values


class MeanOverTime(Decoder):
    """Membrane voltage averaged over time."""

    def decode(self, readout: torch.Tensor) -> torch.Tensor:
        return readout.mean(dim=0)


class LastStep(Decoder):
    """Membrane voltage at the last time step."""

    def decode(self, readout: torch.Tensor) -> torch.Tensor:
        return readout[-1]


class SpikeCount(Decoder):
    """Spike count of each readout neuron times ``scale`` (rate code).

    Args:
        scale: factor turning counts into logits (cross-entropy is sharper for larger scales).
    """

    reads = "spikes"

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError(f"decoder.scale must be > 0 (got {scale})")
        self.scale = float(scale)

    def decode(self, readout: torch.Tensor) -> torch.Tensor:
        return self.scale * readout.sum(dim=0)
