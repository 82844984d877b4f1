"""``essc bench``: framework figures (not a test: targets are in the README)."""
from __future__ import annotations

import json

import click


@click.command("bench")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--calls", default=20000, show_default=True, help="Adapter calls per measurement.")
def bench_cmd(as_json: bool, calls: int) -> None:
    """Measure registry start-up (400 plugins) and per-call framework overhead (10 vs 1000 cities)."""
    from essc.tooling.bench import run

    figures = run(calls)
    if as_json:
        click.echo(json.dumps(figures))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="essc bench")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, str(value))
    Console().print(table)
