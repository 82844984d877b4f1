"""``essc dialects``: every installed dialect, its origin and the sides it provides."""
from __future__ import annotations

import json
import sys

import click

CODE_TITLES = {"gm-json": "JSON sealed with national crypto (SM4 payload, SM3 sign), pinyin-initial fields"}


def dialect_rows() -> list[dict]:
    """One row per dialect the framework and the mock know: installed dialects (specs and
    code registered through entry points) and the mock's hand-written city sides."""
    from essc.core.dialects import dialects
    from essc.mockserver.cities import DIALECTS as HAND_WRITTEN

    rows = {name: entry.to_dict() for name, entry in dialects().items()}
    for name in HAND_WRITTEN:
        row = rows.setdefault(name, {"name": name, "title": CODE_TITLES.get(name, ""), "origin": "builtin",
                                     "platform_side": "code", "source": None})
        row["city_side"] = "code"  # the mock plays it with hand-written code (mockserver/dialects/)
    return sorted(rows.values(), key=lambda r: r["name"])


@click.command("dialects")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array instead of a table.")
def dialects_cmd(as_json: bool) -> None:
    """List the wire dialects: name, origin package, the sides provided (platform: how an
    adapter speaks it; city: how the mock answers in it) and whether each is a spec or code."""
    from essc.core.dialects.catalog import spec_problems

    rows = dialect_rows()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"{len(rows)} dialects")
        for col in ("name", "origin", "platform side", "city side", "title"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(r["name"], r["origin"], r["platform_side"], r["city_side"], r["title"])
        Console(width=120 if not sys.stdout.isatty() else None).print(table)
    for problem in spec_problems():
        click.echo(f"essc dialects: not registered: {problem}", err=True)
