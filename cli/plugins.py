"""``essc plugins``: every plugin with its real state."""
from __future__ import annotations

import json

import click

TIER_COLOUR = {"platinum": "bold bright_cyan",
               "gold": "bold yellow", "silver": "bold white", "bronze": "bold dark_orange3", "none": "red",
               "unrated": "dim"}


def add_tiers(rows: list[dict], report_dir: str | None) -> dict | None:
    """Set every row's ``tier`` from the report in ``report_dir`` (``unrated`` without one,
    or when the report rated another version of the plugin). Never runs the suite."""
    from essc.conformance.report import load, tier_of

    data = load(report_dir) if report_dir else None
    if report_dir and data is None:
        click.echo(f"essc plugins: no contract report in {report_dir} (write one with "
                   f"'essc contract --report {report_dir}'); tiers are unrated", err=True)
    for r in rows:
        r["tier"] = tier_of(data, r["name"], r["version"])
    return data


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
@click.option("--report-dir", type=click.Path(file_okay=False), envvar="ESSC_REPORT_DIR", metavar="DIR",
              help="Read quality tiers from the contract report in DIR (essc contract --report DIR); "
                   "env ESSC_REPORT_DIR. Without one every tier is 'unrated'.")
def plugins_cmd(as_json: bool, report_dir: str | None) -> None:
    """Load every plugin and show name, version, cities, status, tier and reason."""
    from essc.core.registry import Registry

    registry = Registry()
    rows = registry.plugin_rows()
    report = add_tiers(rows, report_dir)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    names = {c.code: c.name for c in registry.cities()}
    rated = (report or {}).get("plugins") or {}
    caption = None
    if report:
        run = report.get("run") or {}
        caption = f"tiers from the contract report of {run.get('started_at', '?')} ({report_dir})"
        if any(r["tier"] != "unrated" and rated.get(r["name"], {}).get("partial") for r in rows):
            caption += "; * = rated on part of the plugin's cities"
    table = Table(title=f"essc plugins ({len(rows)})", caption=caption)
    for col in ("plugin", "version", "dialect", "cities", "status", "tier", "reason"):
        table.add_column(col, overflow="fold")
    colour = {"loaded": "green", "quarantined": "red", "disabled": "yellow"}
    for r in rows:
        cities = ", ".join(f"{c} {names.get(c, '')}".strip() for c in r["cities"])
        star = "*" if r["tier"] != "unrated" and rated.get(r["name"], {}).get("partial") else ""
        table.add_row(r["name"], r["version"] or "?", r["dialect"] or "?", cities,
                      f"[{colour.get(r['status'], 'white')}]{r['status']}[/]",
                      f"[{TIER_COLOUR.get(r['tier'], 'white')}]{r['tier']}{star}[/]", r["reason"] or "")
    Console().print(table)
