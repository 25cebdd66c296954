"""Which time-loop backend each layer runs, reported once at the start of a run.

A neuron layer's ``unroll.backend`` says what it may use; what it runs depends on the device,
the dtype and its parameters (:mod:`spikeexp.functional.fused`): the fused C++ kernels (CPU),
the fused Triton kernels (CUDA), the reference step loop where no kernel applies, or the
compiled step. :class:`BackendReport` watches the first batch of the run (the first sanity-check,
training, validation or test batch) through forward hooks and the operator record of
:func:`spikeexp.functional.fused.ops.recording`, then removes its hooks and logs one line per
layer, e.g.::

    backend of hidden1 (LIF): fused, Triton kernels (cuda, bfloat16 input)

and, with a TensorBoard logger, the same as a text entry ``backends``. Cost: one batch with
hooks, then nothing.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

from spikeexp.callbacks.tensorboard import tensorboard_writers
from spikeexp.functional.fused import ops
from spikeexp.module import FusedMaxPool2d, NeuronRecurrent, NeuronSequence

log = logging.getLogger(__name__)

WATCHED = (NeuronSequence, NeuronRecurrent, FusedMaxPool2d)


def describe(module: nn.Module, x: torch.Tensor, implementations: list[str]) -> str:
    """What ``module`` ran on input ``x``, given the operator implementations it called."""
    where = f"{x.device.type}, {str(x.dtype).removeprefix('torch.')} input"
    if implementations:
        kinds = ", ".join(dict.fromkeys(implementations))
        return f"fused, {kinds} ({where})"
    if isinstance(module, FusedMaxPool2d):
        return f"PyTorch max_pool2d ({where})"
    if getattr(module, "backend", None) == "compiled":
        return f"compiled step, torch.compile ({where})"
    return f"reference step loop ({where})"


class BackendReport(Callback):
    """Log the backend of every neuron layer and fused pooling layer once (module docstring)."""

    def __init__(self) -> None:
        self._done = False
        self._watch: contextlib.ExitStack | None = None
        self._lines: dict[str, str] = {}

    def _start(self, pl_module: LightningModule) -> None:
        if self._done or self._watch is not None:
            return
        self._watch = contextlib.ExitStack()
        names = self._watch.enter_context(ops.recording())
        for layer, module in pl_module.named_modules():
            if isinstance(module, WATCHED):
                # A lifted layer (spikeexp.module.Lift) is named after its wrapper.
                label = f"{layer.removesuffix('.module')} ({type(module).__name__})"
                for handle in self._hooks(label, module, names):
                    self._watch.callback(handle.remove)

    def _hooks(self, label: str, module: nn.Module, names: list[str]) -> list[Any]:
        starts: list[int] = []

        def before(_module: nn.Module, args: tuple[Any, ...]) -> None:
            starts.append(len(names))

        def after(_module: nn.Module, args: tuple[Any, ...], _output: Any) -> None:
            start = starts.pop()
            if label not in self._lines and args and isinstance(args[0], torch.Tensor):
                self._lines[label] = describe(module, args[0], names[start:])

        return [module.register_forward_pre_hook(before), module.register_forward_hook(after)]

    def _stop(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _report(self, trainer: Trainer) -> None:
        if self._done or self._watch is None:
            return
        self._stop()
        self._done = True
        if not trainer.is_global_zero or not self._lines:
            return
        for label, line in self._lines.items():
            log.info("backend of %s: %s", label, line)
        table = "\n".join(
            ["| layer | backend |", "|---|---|"]
            + [f"| {label} | {line} |" for label, line in self._lines.items()]
        )
        for writer in tensorboard_writers(trainer):
            writer.add_text("backends", table, global_step=0)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception) -> None:
        self._stop()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._start(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._report(trainer)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._start(pl_module)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._report(trainer)

    def on_test_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
        self._start(pl_module)

    def on_test_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        self._report(trainer)
