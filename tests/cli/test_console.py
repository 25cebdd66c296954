"""The efficiency report as a console table: one row per layer, total last."""

from __future__ import annotations

from rich.console import Console

from spikeexp.cli.console import efficiency_table


def test_efficiency_table_rows() -> None:
    metrics = {
        "test/acc": 0.9,
        "test/efficiency/synops_ac/readout": 1234.0,
        "test/efficiency/synops_ac/total": 123456.0,
        "test/efficiency/synops_ac/hidden1": 122222.0,
        "test/efficiency/activation_sparsity/hidden1": 0.8125,
        "test/efficiency/activation_sparsity/total": 0.8125,
    }
    table = efficiency_table(metrics)
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    lines = [line for line in text.splitlines() if "│" in line]
    first_cells = [line.split("│")[1].strip() for line in lines]
    assert [cell for cell in first_cells if cell and cell != "layer"] == [
        "readout",
        "hidden1",
        "total",
    ]
    assert "1.22e+05" in text and "1234" in text and "0.812" in text
    assert efficiency_table({"test/acc": 0.9}) is None
