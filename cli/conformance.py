"""``essc record`` and ``essc conformance``: conformance against the city's real test system.

    essc record --city 320400 --base-url https://test.city.example/ --citizen 3204...,钱多多 \\
                --citizen 3204...,孙悟净,reported_lost --out plugins/changzhou/cassettes
    essc conformance --city 320400 --cassettes plugins/changzhou/cassettes [--report DIR]

``conformance`` exits 0 only when cassettes were found and every one of them replays as
recorded; 1 on any mismatch (each printed with what differs); 2 when there is nothing to
check (no cassettes, unknown city).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click


def _registry(city: str, base_url: str | None):
    from essc.core.registry import Registry
    from essc.core.settings import Settings

    settings = Settings.from_env()
    registry = Registry(settings).setup()
    try:
        plugin = registry.city(city).plugin
    except Exception as err:  # unknown city: a typed error naming it
        raise click.ClickException(str(err)) from None
    if base_url:
        settings = dataclasses.replace(settings, endpoints={**settings.endpoints, plugin: base_url})
        registry = Registry(settings).setup()
    return registry, plugin


def _spec(registry, city: str):
    try:
        return getattr(registry.adapter(city), "spec", None)
    except Exception as err:
        raise click.ClickException(f"city {city}: {err}") from None


def _citizen(text: str):
    from essc.conformance.cassettes import Citizen

    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (2, 3) or not all(parts):
        raise click.BadParameter("give ID_NUMBER,NAME[,LABEL] (label: normal or the card status, e.g. reported_lost)")
    return Citizen(*parts)


@click.command("record")
@click.option("--city", required=True, help="City code whose plugin is recorded.")
@click.option("--base-url", required=True, help="The city's TEST system.")
@click.option("--citizen", "citizens", multiple=True, required=True, metavar="ID,NAME[,LABEL]",
              help="A test citizen of the city's test system (repeatable); label normal (default) or the "
                   "abnormal card status the city gives them.")
@click.option("--sms-code", default="123456", show_default=True, help="The test system's right SMS code.")
@click.option("--password", default=None, help="The test system's right e-SSC password (records that check too).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Cassette folder.")
def record_cmd(city, base_url, citizens, sms_code, password, out) -> None:
    """Drive the city's plugin through the flow against its test system and write cassettes
    (one exchange each; personal data and secrets replaced by synthetic values)."""
    from essc.conformance.cassettes import leaks, record

    people = [_citizen(c) for c in citizens]
    registry, plugin = _registry(city, base_url)
    spec = _spec(registry, city)
    files = record(registry, city, people, out, code=sms_code, password=password, spec=spec)
    secrets = [c.id_number for c in people] + [c.name for c in people]
    dirty = {f.name: leaks(f.read_text(encoding="utf-8"), secrets) for f in files}
    dirty = {k: v for k, v in dirty.items() if v}
    for name, found in dirty.items():
        click.echo(f"essc record: {name} still holds {', '.join(sorted(set(found)))}", err=True)
    click.echo(f"{len(files)} cassette(s) of {plugin} for city {city} in {out}")
    sys.exit(1 if dirty or not files else 0)


@click.command("conformance")
@click.option("--city", required=True)
@click.option("--cassettes", "folder", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cassette folder (default: the plugin's cassettes/ folder).")
@click.option("--mock-url", default=None, help="A running essc mock (default: one started in this process).")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write conformance-<city>.json there (the top quality tier reads it).")
def conformance_cmd(city, folder, mock_url, report_dir) -> None:
    """Replay recorded cassettes: (a) against the adapter, (b) against the mock's dialect."""
    from essc.conformance.cassettes import COVERAGE, cassettes_of, covered, replay_adapter, replay_mock

    registry, plugin = _registry(city, "http://cassette.invalid")
    folder, cassettes = cassettes_of(registry, city, folder)
    if not cassettes:
        click.echo(f"essc conformance: no cassettes of city {city} in {folder}: nothing was checked "
                   "(record them with essc record)", err=True)
        sys.exit(2)
    spec = _spec(registry, city)
    problems = replay_adapter(registry, city, cassettes, spec)
    checked = ["adapter"]
    if spec is not None:
        problems += _replay_mock(spec, city, cassettes, mock_url, replay_mock)
        checked.append(f"mock dialect {spec.name}")
    else:
        click.echo(f"essc conformance: {plugin}'s adapter is code: the mock side is not replayed", err=True)
    outcomes = covered(cassettes)
    for problem in problems:
        click.echo(f"MISMATCH {problem}")
    missing = sorted(COVERAGE - outcomes)
    verdict = "pass" if not problems else "fail"
    click.echo(f"{len(cassettes)} cassette(s) of city {city} replayed against the {' and the '.join(checked)}: "
               f"{len(problems)} mismatch(es); covers {len(outcomes)} outcome(s)"
               + (f"; the top tier also needs {', '.join(f'{o} {k}' for o, k in missing)}" if missing else ""))
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        version = registry.plugin(plugin).version
        (report_dir / f"conformance-{city}.json").write_text(json.dumps({
            "city": city, "plugin": plugin, "version": version, "verdict": verdict, "sides": checked,
            "cassettes": len(cassettes), "covered": sorted(f"{o} {k}" for o, k in outcomes),
            "complete": not missing, "mismatches": [str(p) for p in problems]}, ensure_ascii=False, indent=2),
            encoding="utf-8")
    sys.exit(1 if problems else 0)


def _replay_mock(spec, city, cassettes, mock_url, replay_mock):
    from essc.mockserver.client import MockAdmin

    server = None
    if mock_url is None:
        from essc.mockserver import create_app
        from essc.mockserver.serve import start_in_thread

        server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
        mock_url = server.url
    try:
        admin = MockAdmin(mock_url)
        if city not in {c["code"] for c in admin.cities()}:
            admin.add_city(code=city, name=city, province="?", dialect=spec.name, mode="supported")
        labels = {c["label"] for c in cassettes if c["label"] != "-"}
        people = {label: admin.citizen(city, label) for label in labels}
        return replay_mock(spec, mock_url, cassettes, people)
    finally:
        if server is not None:
            server.stop()
