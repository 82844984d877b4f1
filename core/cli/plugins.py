"""``essc plugins``: every plugin with its real state."""
from __future__ import annotations

import json

import click


def plugin_rows(registry) -> list[dict]:
    """One JSON-able dict per plugin (after loading all of them)."""
    rows = []
    for rec in registry.load_all():
        m = rec.manifest or {}
        hooks = sorted(h.name for h in registry.pm.get_hookcallers(rec.module) or []) if rec.module else []
        rows.append({
            "name": rec.name,
            "version": rec.version,
            "cities": list(rec.cities),
            "status": rec.status,
            "reason": rec.reason,
            "dialect": m.get("dialect"),
            "contract_version": m.get("contract_version"),
            "module": rec.source.module,
            "origin": rec.source.origin,
            "hooks": hooks,
        })
    return rows


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def plugins_cmd(as_json: bool) -> None:
    """Load every plugin and show name, version, cities, status and reason."""
    from ..registry import Registry

    registry = Registry()
    rows = plugin_rows(registry)
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    names = {c.code: c.name for c in registry.cities()}
    table = Table(title=f"essc plugins ({len(rows)})")
    for col in ("plugin", "version", "dialect", "cities", "status", "reason"):
        table.add_column(col, overflow="fold")
    colour = {"loaded": "green", "quarantined": "red", "disabled": "yellow"}
    for r in rows:
        cities = ", ".join(f"{c} {names.get(c, '')}".strip() for c in r["cities"])
        table.add_row(r["name"], r["version"] or "?", r["dialect"] or "?", cities,
                      f"[{colour.get(r['status'], 'white')}]{r['status']}[/]", r["reason"] or "")
    Console().print(table)
