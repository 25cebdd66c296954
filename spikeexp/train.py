"""``spikeexp-train``: compose a config with Hydra, train, test the best checkpoint.

    spikeexp-train                                   # the default digits experiment
    spikeexp-train neuron=lsnn optimizer.lr=1e-2 trainer.max_epochs=3
    spikeexp-train experiment=fashion_mnist_conv
    spikeexp-train -m neuron=lif,lsnn                # a sweep (outputs/multirun/...)
    spikeexp-train --cfg job | --info | --help       # Hydra's own views of the config

A run writes into its Hydra run directory (``outputs/<date>/<time>`` under the current folder):
``.hydra/`` (composed config and overrides), ``config_tree.log`` (the resolved config),
``checkpoints/`` (best on ``optimized_metric``, and ``last.ckpt``), ``tensorboard/`` (events) and
``metrics.json`` (final metrics). The return value of :func:`main` is the value of
``optimized_metric`` (for sweepers).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree

from spikeexp.allocator import keep_freed_memory
from spikeexp.errors import guarded, run_cli
from spikeexp.experiment import build_experiment, build_test_trainer, build_trainer
from spikeexp.parallel import guard_ddp_relaunch, limit_torch_threads
from spikeexp.resume import checkpoint_to_resume
from spikeexp.sweep_summary import is_multirun, record_job_failure

CONFIG_ORDER = (
    "task",
    "data",
    "encoder",
    "neuron",
    "topology",
    "decoder",
    "optimizer",
    "scheduler",
    "regularization",
    "trainer",
    "callbacks",
    "logger",
    "paths",
)


def config_tree(config: DictConfig) -> Tree:
    """The resolved config as a rich tree, main groups first."""
    tree = Tree("config", guide_style="dim")
    keys = [k for k in CONFIG_ORDER if k in config] + [k for k in config if k not in CONFIG_ORDER]
    for key in keys:
        node = config[key]
        branch = tree.add(f"[bold]{key}[/bold]")
        text = OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else str(node)
        branch.add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config(config: DictConfig, output_dir: Path) -> None:
    """Print the resolved config as a tree and save it as ``config_tree.log``."""
    tree = config_tree(config)
    Console().print(tree)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "config_tree.log", "w") as handle:
        Console(file=handle, width=120, color_system=None).print(tree)


def _number(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def print_summary(metrics: dict[str, float], output_dir: Path, best: str | None) -> None:
    """Final metrics and where the outputs are."""
    table = Table(title="final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in sorted(metrics):
        table.add_row(name, f"{metrics[name]:.4f}")
    console = Console()
    console.print(table)
    console.print(f"outputs: {output_dir}")
    if best:
        console.print(f"best checkpoint: {best}")
    if (output_dir / "tensorboard").is_dir():
        console.print(f"view: tensorboard --logdir {output_dir / 'tensorboard'}")
    if best:
        console.print(f"plots: spikeexp-plot run_dir={output_dir}")


def train(config: DictConfig) -> dict[str, float]:
    """Seed, build, fit, test the best checkpoint; return the final metrics.

    The metrics are the last logged epoch values, ``test/*`` from the best checkpoint, and
    ``optimized_metric`` set to the best score seen by the checkpoint callback when it monitors
    that metric.
    """
    if config.get("keep_freed_memory"):
        keep_freed_memory()
    pl.seed_everything(config.seed, workers=True, verbose=False)
    limit_torch_threads(config.get("torch_threads"))
    output_dir = Path(config.paths.output_dir)
    if rank_zero_only.rank == 0:
        print_config(config, output_dir)
    experiment = build_experiment(config)
    trainer = build_trainer(guard_ddp_relaunch(config))
    trainer.fit(
        experiment.module,
        datamodule=experiment.datamodule,
        ckpt_path=checkpoint_to_resume(config, experiment.module),
    )
    metrics = {k: _number(v) for k, v in trainer.callback_metrics.items()}
    checkpoint = trainer.checkpoint_callback
    best = checkpoint.best_model_path if isinstance(checkpoint, ModelCheckpoint) else ""
    if best and checkpoint.monitor == config.optimized_metric and checkpoint.best_model_score:
        metrics[config.optimized_metric] = _number(checkpoint.best_model_score)
    tester = build_test_trainer(config, trainer) if config.get("test") else None
    if tester is not None:
        results = tester.test(
            experiment.module, datamodule=experiment.datamodule, ckpt_path=best or None
        )
        metrics.update({k: float(v) for k, v in results[0].items()} if results else {})
    if trainer.is_global_zero:
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print_summary(metrics, output_dir, best)
    return metrics


@hydra.main(version_base="1.3", config_path="pkg://spikeexp.conf", config_name="train")
def hydra_main(config: DictConfig) -> float | None:
    """The Hydra task: train; return ``optimized_metric`` for sweepers.

    In a multirun a failing job is logged and recorded (``job_error.txt``) and returns None, so
    the other jobs and the sweep summary still run (:mod:`spikeexp.sweep_summary`)."""
    try:
        metrics = guarded(train, config)
    except Exception as error:
        if not is_multirun():
            raise
        record_job_failure(error)
        return None
    value = metrics.get(config.optimized_metric)
    return None if value is None or math.isnan(value) else value


def main() -> None:
    """Console script ``spikeexp-train``: one-line errors, ``resume=<run_dir>``
    (:mod:`spikeexp.errors`, :mod:`spikeexp.resume`)."""
    run_cli(hydra_main, resumable=True)


if __name__ == "__main__":
    main()
