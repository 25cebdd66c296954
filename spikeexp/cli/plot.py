"""``spikeexp-plot``: render a finished run's network activity on a data sample into PNG files.

    spikeexp-plot run_dir=outputs/2026-01-01/12-00-00            # -> <run_dir>/plots/*.png
    spikeexp-plot run_dir=<dir> out=figs sample=3 split=test checkpoint=last
    spikeexp-plot ckpt_path=<dir>/checkpoints/last.ckpt out=figs

The network, encoder and data are rebuilt from the run's config (``run_dir``) or the config
stored in the checkpoint (``ckpt_path``), the weights are loaded through the safe loader, and the
first batch of the chosen split (not shuffled) is run with neuron states recorded
(:func:`spikeexp.viz.record_activity`). Files written (``<layer>`` = each spiking layer):
``input.png``, ``raster_<layer>.png``, ``voltage_<layer>.png``, ``rates_<layer>.png`` (over the
batch), ``readout.png`` and ``weights.png`` (every weight matrix / kernel).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikeexp.cli.arguments import check_choice, parse_key_values, run_command
from spikeexp.engine import build_experiment
from spikeexp.runtime.checkpoint import verify_checkpoint
from spikeexp.runtime.run_files import CHECKPOINT_CHOICES, locate_run, offline_config
from spikeexp.viz.record import parameter_label, record_activity, recording_figures

SPLITS = ("train", "val", "test")


@dataclass
class PlotArguments:
    """Arguments of ``spikeexp-plot`` (``key=value`` on the command line).

    Attributes:
        run_dir: a run directory of ``spikeexp-train`` (its ``checkpoints/`` are used).
        ckpt_path: a checkpoint file (instead of ``run_dir``).
        out: folder for the PNG files (default ``<run_dir>/plots``, or ``plots`` next to the
            checkpoint's folder).
        checkpoint: ``best`` (falls back to ``last``) or ``last``, for ``run_dir``.
        split: data split whose first batch is shown: train, val or test.
        sample: index of the shown sample in that batch.
    """

    run_dir: str | None = None
    ckpt_path: str | None = None
    out: str | None = None
    checkpoint: str = "best"
    split: str = "val"
    sample: int = 0


def parse_arguments(argv: Sequence[str]) -> PlotArguments:
    """``key=value`` words into :class:`PlotArguments`; one-line ``ValueError`` on bad input."""
    arguments = parse_key_values(argv, PlotArguments, integers=("sample",))
    if (arguments.run_dir is None) == (arguments.ckpt_path is None):
        raise ValueError("give exactly one of run_dir=<run directory> or ckpt_path=<file>")
    check_choice("split", arguments.split, SPLITS)
    check_choice("checkpoint", arguments.checkpoint, CHECKPOINT_CHOICES)
    return arguments


def first_batch(datamodule: Any, split: str) -> Any:
    """The first batch of ``split`` (the loaders of train are shuffled, val and test are not)."""
    stage = {"train": "fit", "val": "validate", "test": "test"}[split]
    datamodule.prepare_data()
    datamodule.setup(stage)
    loader = getattr(datamodule, f"{split}_dataloader")()
    return next(iter(loader))


def render(arguments: PlotArguments) -> list[Path]:
    """Write the PNG files of :func:`spikeexp.viz.recording_figures`; return their paths."""
    config, checkpoint_path = locate_run(
        arguments.run_dir, arguments.ckpt_path, arguments.checkpoint
    )
    if arguments.out:
        out = Path(arguments.out)
    elif arguments.run_dir is not None:
        out = Path(arguments.run_dir) / "plots"
    else:
        out = checkpoint_path.parent.parent / "plots"
    experiment = build_experiment(offline_config(config, out))
    module = experiment.module
    module.load_state_dict(verify_checkpoint(checkpoint_path, module)["state_dict"])
    module.eval()
    batch = first_batch(experiment.datamodule, arguments.split)
    inputs = module.task.inputs(batch)
    if arguments.sample >= inputs.shape[0]:
        raise ValueError(
            f"sample must be < the {arguments.split} batch size {inputs.shape[0]} "
            f"(got {arguments.sample})"
        )
    recording = record_activity(module.encoder, module.network, inputs)
    periods_of = getattr(module.task, "periods", None)
    weights = {
        parameter_label(name): parameter
        for name, parameter in module.named_parameters()
        if parameter.dim() >= 2
    }
    figures = recording_figures(
        recording,
        sample=arguments.sample,
        periods=periods_of(batch) if callable(periods_of) else None,
        weights=weights,
    )
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, figure in figures.items():
        path = out / f"{name.replace('/', '_')}.png"
        figure.savefig(path)
        paths.append(path)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``spikeexp-plot``; returns the exit status."""

    def work(words: list[str]) -> list[str]:
        return [str(path) for path in render(parse_arguments(words))]

    return run_command("spikeexp-plot", __doc__, argv, work)


if __name__ == "__main__":
    sys.exit(main())
