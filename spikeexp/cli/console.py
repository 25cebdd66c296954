"""What the commands print: the resolved config as a tree, the final metrics and the efficiency
report of the test stage (:mod:`spikeexp.callbacks.efficiency`)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table
from rich.tree import Tree
from yaml import safe_dump

from spikeexp.callbacks.efficiency import PREFIX, format_count, report_rows

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


def config_tree(config: Mapping[str, Any]) -> Tree:
    """The resolved (plain) config as a rich tree, main groups first."""
    tree = Tree("config", guide_style="dim")
    keys = [k for k in CONFIG_ORDER if k in config] + [k for k in config if k not in CONFIG_ORDER]
    for key in keys:
        node = config[key]
        branch = tree.add(f"[bold]{key}[/bold]")
        text = safe_dump(node, sort_keys=False) if isinstance(node, Mapping) else str(node)
        branch.add(Syntax(text.rstrip(), "yaml", theme="ansi_dark", background_color="default"))
    return tree


def print_config(config: Mapping[str, Any], output_dir: Path) -> None:
    """Print the resolved config as a tree and save it as ``config_tree.log``."""
    tree = config_tree(config)
    Console().print(tree)
    output_dir.mkdir(parents=True, exist_ok=True)
    with open(output_dir / "config_tree.log", "w") as handle:
        Console(file=handle, width=120, color_system=None).print(tree)


EFFICIENCY_COLUMNS = (
    ("activation_sparsity", "act. sparsity"),
    ("synops_ac", "synops AC"),
    ("synops_mac", "synops MAC"),
    ("synops_dense", "synops dense"),
    ("neuron_updates", "neuron updates"),
    ("parameters", "parameters"),
    ("footprint_bytes", "footprint (B)"),
    ("connection_sparsity", "conn. sparsity"),
)
RATIOS = ("activation_sparsity", "connection_sparsity")
EFFICIENCY_WIDTH = 150


def efficiency_table(metrics: Mapping[str, float]) -> Table | None:
    """The efficiency report (``test/efficiency/<metric>/<layer>``) as one row per layer, counts
    per test sample; ``None`` when the metrics hold none."""
    rows = report_rows(dict(metrics))
    if not rows:
        return None
    table = Table(title="efficiency (test set, per sample; NeuroBench definitions)")
    table.add_column("layer")
    for _, title in EFFICIENCY_COLUMNS:
        table.add_column(title, justify="right")
    for layer, values in rows:
        cells = []
        for key, _ in EFFICIENCY_COLUMNS:
            value = values.get(key)
            if value is None:
                cells.append("-")
            else:
                cells.append(f"{value:.3f}" if key in RATIOS else format_count(value))
        table.add_row(layer, *cells, style="bold" if layer == "total" else None)
    return table


def print_summary(metrics: Mapping[str, float], output_dir: Path, best: str | None) -> None:
    """Final metrics, the efficiency report and where the outputs are."""
    table = Table(title="final metrics")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name in sorted(metrics):
        if not name.startswith(f"{PREFIX}/"):
            table.add_row(name, f"{metrics[name]:.4f}")
    console = Console()
    console.print(table)
    efficiency = efficiency_table(metrics)
    if efficiency is not None:  # wide: never shortened to fit an 80-column log file
        Console(width=max(console.width, EFFICIENCY_WIDTH)).print(efficiency)
    console.print(f"outputs: {output_dir}")
    if best:
        console.print(f"best checkpoint: {best}")
    if (output_dir / "tensorboard").is_dir():
        console.print(f"view: tensorboard --logdir {output_dir / 'tensorboard'}")
    if best:
        console.print(f"plots: spikeexp-plot run_dir={output_dir}")
