"""``spikeexp-export``: write a trained network as a NIR graph (HDF5), for other simulators and
neuromorphic hardware.

    spikeexp-export run_dir=outputs/2026-01-01/12-00-00             # -> <run_dir>/model.nir
    spikeexp-export run_dir=<dir> checkpoint=last out=model.nir
    spikeexp-export ckpt_path=<dir>/checkpoints/last.ckpt out=model.nir
    spikeexp-export run_dir=<dir> resistance=tau_over_dt readout=li_li out=for_snntorch.nir

The network is rebuilt from the run's config (``run_dir``) or the config stored in the checkpoint
(``ckpt_path``), the weights are loaded through the safe loader, and the network in eval mode is
converted by :func:`spikeexp.nir.to_nir` (mapping and conventions: :mod:`spikeexp.nir`). The
graph starts after the encoder and ends at the readout; its metadata records ``dt``, the spike
convention, the encoder, the decoder and the checkpoint. A layer NIR cannot express ends the
command with one line naming it, and no file is written (the file appears complete or not at
all).

Arguments (``key=value``): ``run_dir``, ``ckpt_path`` (one or both), ``checkpoint`` (``best``,
falling back to ``last``, or ``last``; with ``run_dir``), ``out`` (default ``model.nir`` in the
run directory, or next to the checkpoint's folder), ``resistance`` (``unit`` or
``tau_over_dt``), ``readout`` (``cuba_li`` or ``li_li``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nir

from spikeexp.cli.arguments import check_choice, parse_key_values, run_command
from spikeexp.engine import build_experiment
from spikeexp.nir import export_nir
from spikeexp.nir.conventions import READOUTS, RESISTANCES
from spikeexp.runtime.checkpoint import verify_checkpoint
from spikeexp.runtime.run_files import CHECKPOINT_CHOICES, locate_run, offline_config

DEFAULT_NAME = "model.nir"


@dataclass
class ExportArguments:
    """Arguments of ``spikeexp-export`` (``key=value`` on the command line); see the module
    docstring."""

    run_dir: str | None = None
    ckpt_path: str | None = None
    out: str | None = None
    checkpoint: str = "best"
    resistance: str = "unit"
    readout: str = "cuba_li"


def parse_arguments(argv: Sequence[str]) -> ExportArguments:
    """``key=value`` words into :class:`ExportArguments`; one-line ``ValueError`` on bad input."""
    arguments = parse_key_values(argv, ExportArguments)
    if arguments.run_dir is None and arguments.ckpt_path is None:
        raise ValueError("give run_dir=<run directory> or ckpt_path=<checkpoint file>")
    check_choice("checkpoint", arguments.checkpoint, CHECKPOINT_CHOICES)
    check_choice("resistance", arguments.resistance, RESISTANCES)
    check_choice("readout", arguments.readout, READOUTS)
    return arguments


def export(arguments: ExportArguments) -> tuple[Path, nir.NIRGraph]:
    """Rebuild the run's network, load its checkpoint, write its NIR graph; return the file and
    the graph."""
    config, checkpoint = locate_run(arguments.run_dir, arguments.ckpt_path, arguments.checkpoint)
    if arguments.out:
        out = Path(arguments.out)
    elif arguments.run_dir is not None:
        out = Path(arguments.run_dir) / DEFAULT_NAME
    else:
        out = checkpoint.parent.parent / DEFAULT_NAME
    experiment = build_experiment(offline_config(config, out.parent))
    module = experiment.module
    module.load_state_dict(verify_checkpoint(checkpoint, module)["state_dict"])
    module.eval()
    metadata: dict[str, Any] = {"encoder": repr(module.encoder), "checkpoint": str(checkpoint)}
    seq_length = getattr(module.encoder, "seq_length", None)
    if seq_length is not None:
        metadata["seq_length"] = int(seq_length)
    decoder = getattr(module.task, "decoder", None)
    if decoder is not None:
        metadata["decoder"] = repr(decoder)
    graph = export_nir(
        module.network,
        out,
        input_shape=module.encoder.output_shape(module.task.input_shape),
        resistance=arguments.resistance,
        readout=arguments.readout,
        metadata=metadata,
    )
    return out, graph


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``spikeexp-export``; returns the exit status."""

    def work(words: list[str]) -> list[str]:
        out, graph = export(parse_arguments(words))
        shape = tuple(int(size) for size in graph.nodes["input"].input_type["input"])
        dt = graph.metadata["dt"]
        nodes, edges = len(graph.nodes), len(graph.edges)
        return [f"{out}: {nodes} nodes, {edges} edges, dt={dt:g} s, input shape {shape}"]

    return run_command("spikeexp-export", __doc__, argv, work)


if __name__ == "__main__":
    sys.exit(main())
