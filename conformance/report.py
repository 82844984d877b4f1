"""The QA report of a contract-suite run: ``report.json``, ``junit.xml`` and ``index.html``.

:mod:`.recorder` collects the outcomes during the run; :func:`assemble` turns them (plus
the run's metadata and the manifests) into the report's data, computing every plugin's
tier (:mod:`.tiers`); :func:`write` renders the three files. ``index.html`` is one static
page (inline CSS and JS, no external assets) rendered by Jinja2 from
``templates/report.html.j2``.

``report.json`` (``"format": "essc-contract-report/1"``)::

    run:      seed, seed_source, mock, commit, started_at, finished_at, duration_s, exit_status,
              selection, collected, framework_version, contract_version, python, pytest,
              plugin_versions {plugin: version}
    summary:  {pass, fail, skipped, exempt, total}
    checks:   [{id, check, variant}]                 the matrix columns, in suite order
    plugins:  {name: {version, description, docs, exemptions, cities, cities_run, partial,
                      status, reason, tier, requirements {requirement: null | why unmet}}}
    cities:   {code: {name, province, opened, plugin, plugin_version, tier,
                      checks {id: {check, variant, outcome, duration_s, message, reason?, nodeid}}}}

Every message is scrubbed of personal data (:func:`essc.core.masking.scrub`) before it is
written, whoever built the data.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from essc.core.masking import scrub

from . import tiers

FORMAT = "essc-contract-report/1"
FILES = {"json": "report.json", "junit": "junit.xml", "html": "index.html"}
OUTCOME_ORDER = ("pass", "fail", "skipped", "exempt")

__all__ = ["FORMAT", "FILES", "assemble", "scrubbed", "write", "render_html", "render_junit", "load", "tier_of",
           "git_commit", "versions", "registry_info"]


# -- metadata ---------------------------------------------------------------------------
def git_commit() -> str | None:
    """``git rev-parse HEAD`` of the framework's own checkout, or None (an installed wheel,
    no git, or a checkout that is not essc-adapters')."""
    here = Path(__file__).resolve().parent  # conformance/ in a checkout
    try:
        top = subprocess.run(["git", "-C", str(here), "rev-parse", "--show-toplevel", "HEAD"],
                             capture_output=True, text=True, timeout=5, check=True).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    if len(top) != 2 or Path(top[0]).resolve() / "conformance" != here:
        return None
    return top[1]


def versions() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    import pytest

    from essc.core import CONTRACT_VERSION

    try:
        framework = version("essc-adapters")
    except PackageNotFoundError:
        framework = None
    return {"framework_version": framework, "contract_version": CONTRACT_VERSION,
            "python": platform.python_version(), "pytest": pytest.__version__}


def registry_info(registry: Any = None) -> dict[str, Any]:
    """Plugins and cities as the manifests describe them (no plugin code imported)."""
    if registry is None:
        from essc.core.registry import Registry

        registry = Registry()
    plugins = {}
    for rec in registry.plugins:
        m = rec.manifest or {}
        plugins[rec.name] = {
            "version": rec.version, "description": m.get("description"), "exemptions": m.get("exemptions") or {},
            "cities": list(rec.cities), "status": rec.status, "reason": rec.reason,
            "operations": list((m.get("capabilities") or {}).get("operations") or []),
        }
    cities = {c.code: {"name": c.name, "province": c.province, "opened": c.opened, "plugin": c.plugin}
              for c in registry.cities()}
    return {"plugins": plugins, "cities": cities}


# -- data ---------------------------------------------------------------------------------
def column_id(check: str, variant: str | None) -> str:
    return f"{check}[{variant}]" if variant else check


def _clean(text: Any) -> Any:
    return scrub(text) if isinstance(text, str) else text


def scrubbed(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of report ``data`` with every free text (messages, reasons, descriptions)
    scrubbed - whoever built the data. (Not the whole document: a commit hash may look like a
    phone number to the patterns.)"""
    out = json.loads(json.dumps(data, ensure_ascii=False))
    for plugin in (out.get("plugins") or {}).values():
        for key in ("description", "reason"):
            plugin[key] = _clean(plugin.get(key))
        plugin["exemptions"] = {k: _clean(v) for k, v in (plugin.get("exemptions") or {}).items()}
        plugin["requirements"] = {k: _clean(v) for k, v in (plugin.get("requirements") or {}).items()}
    for city in (out.get("cities") or {}).values():
        for cell in (city.get("checks") or {}).values():
            for key in ("message", "reason"):
                if key in cell:
                    cell[key] = _clean(cell[key])
    return out


def assemble(results: Iterable[Mapping[str, Any]], run: Mapping[str, Any], info: Mapping[str, Any]) -> dict:
    """The report's data from the recorded ``results`` (dicts with city, check, variant,
    outcome, duration_s, message[, reason, nodeid]), the ``run`` metadata and ``info``
    (:func:`registry_info`: plugins and cities)."""
    plugins_info: Mapping[str, Any] = info.get("plugins", {})
    cities_info: Mapping[str, Any] = info.get("cities", {})
    columns: dict[str, dict[str, Any]] = {}
    cities: dict[str, dict[str, Any]] = {}
    summary = dict.fromkeys(OUTCOME_ORDER, 0)
    for r in results:
        city = r.get("city")
        if city is None:  # not a per-city check
            continue
        city = str(city)
        outcome = r["outcome"] if r["outcome"] in OUTCOME_ORDER else "fail"
        cid = column_id(r["check"], r.get("variant"))
        columns.setdefault(cid, {"id": cid, "check": r["check"], "variant": r.get("variant")})
        ci = cities_info.get(city, {})
        plugin = ci.get("plugin") or r.get("plugin") or "?"
        row = cities.setdefault(city, {
            "name": ci.get("name", ""), "province": ci.get("province", ""), "opened": ci.get("opened"),
            "plugin": plugin, "plugin_version": (plugins_info.get(plugin) or {}).get("version"),
            "tier": tiers.UNRATED, "checks": {},
        })
        entry = {"check": r["check"], "variant": r.get("variant"), "outcome": outcome,
                 "duration_s": round(float(r.get("duration_s") or 0.0), 4), "message": _clean(r.get("message")),
                 "nodeid": r.get("nodeid")}
        if outcome == "exempt":
            entry["reason"] = _clean(r.get("reason"))
        row["checks"][cid] = entry
        summary[outcome] += 1
    summary["total"] = sum(summary[o] for o in OUTCOME_ORDER)
    # columns in the tiers' order (bronze checks first), then any other check as it came
    # and variants in the suite's order (card statuses, fault kinds)
    rank = {c: i for i, c in enumerate(r for t in tiers.TIERS for r in tiers.REQUIREMENTS[t])}
    variants = tiers.expected_variants()
    seen = list(columns)

    def position(cid: str) -> tuple[int, int, int]:
        check, variant = columns[cid]["check"], columns[cid]["variant"]
        known = variants.get(check, ())
        return (rank.get(check, len(rank)), known.index(variant) if variant in known else len(known),
                seen.index(cid))

    ordered = sorted(seen, key=position)
    for row in cities.values():
        row["checks"] = {cid: row["checks"][cid] for cid in ordered if cid in row["checks"]}

    plugins: dict[str, dict[str, Any]] = {}
    for name in sorted({row["plugin"] for row in cities.values()}):
        pi = plugins_info.get(name) or {}
        run_cities = sorted(c for c, row in cities.items() if row["plugin"] == name)
        outcomes = [{"city": c, **e} for c in run_cities for e in cities[c]["checks"].values()]
        result = tiers.compute_tier(outcomes, run_cities, description=pi.get("description"),
                                    operations=pi.get("operations"))
        all_cities = list(pi.get("cities") or run_cities)
        plugins[name] = {
            "version": pi.get("version"), "description": _clean(pi.get("description")),
            "docs": tiers.has_docs(pi.get("description")),
            "exemptions": {k: _clean(v) for k, v in (pi.get("exemptions") or {}).items()},
            "cities": all_cities, "cities_run": run_cities,
            "partial": bool(set(all_cities) - set(run_cities)),
            "status": pi.get("status"), "reason": _clean(pi.get("reason")),
            **result.to_dict(),
        }
        for c in run_cities:
            cities[c]["tier"] = result.tier
    run = dict(run)
    run.setdefault("plugin_versions", {n: p.get("version") for n, p in sorted(plugins_info.items())
                                       if p.get("status") != "disabled"})
    order = sorted(cities, key=lambda c: (cities[c]["plugin"], c))
    return {"format": FORMAT, "run": run, "summary": summary, "checks": [columns[cid] for cid in ordered],
            "plugins": plugins, "cities": {c: cities[c] for c in order}}


# -- rendering ----------------------------------------------------------------------------
def write(directory: str | os.PathLike, data: Mapping[str, Any]) -> dict[str, Path]:
    """Write report.json, junit.xml and index.html into ``directory`` (created)."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    data = scrubbed(data)
    paths = {key: out / name for key, name in FILES.items()}
    paths["json"].write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    paths["junit"].write_text(render_junit(data), encoding="utf-8")
    paths["html"].write_text(render_html(data), encoding="utf-8")
    return paths


def _tier_why(plugin: Mapping[str, Any]) -> list[str]:
    """Why the plugin is not one tier higher."""
    tier = plugin.get("tier")
    if tier == tiers.TIERS[-1]:
        return []
    target = tiers.TIERS[0] if tier not in tiers.TIERS else tiers.TIERS[tiers.TIERS.index(tier) + 1]
    reqs = plugin.get("requirements") or {}
    return [f"{r}: {reqs[r]}" for r in tiers.REQUIREMENTS[target] if reqs.get(r)]


def render_html(data: Mapping[str, Any]) -> str:
    """``index.html``: header (run, plugin versions, tiers), the city x check matrix, failures."""
    from importlib.resources import files

    import jinja2

    data = scrubbed(data)

    source = files("essc.conformance").joinpath("templates/report.html.j2").read_text(encoding="utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    groups: list[dict[str, Any]] = []
    for col in data["checks"]:
        if groups and groups[-1]["check"] == col["check"]:
            groups[-1]["columns"].append(col)
        else:
            groups.append({"check": col["check"], "columns": [col]})
    failures = [(code, city, cell) for code, city in data["cities"].items()
                for cell in city["checks"].values() if cell["outcome"] == "fail"]
    exempt = [(code, city, cell) for code, city in data["cities"].items()
              for cell in city["checks"].values() if cell["outcome"] == "exempt"]
    html = env.from_string(source).render(
        data=data, run=data["run"], groups=groups, columns=data["checks"], failures=failures, exempt=exempt,
        tiers=tiers, why={name: _tier_why(p) for name, p in data["plugins"].items()},
        label=lambda check: check.removeprefix("test_").replace("_", " "),
    )
    return html


def render_junit(data: Mapping[str, Any]) -> str:
    """``junit.xml`` from the same (scrubbed) data: one testcase per city x check."""
    data = scrubbed(data)
    run = data["run"]
    suite = ET.Element("testsuite", name="essc-contract", timestamp=str(run.get("started_at") or ""),
                       hostname=platform.node())
    props = ET.SubElement(suite, "properties")
    for key in ("seed", "commit", "framework_version", "contract_version", "mock"):
        ET.SubElement(props, "property", name=key, value="" if run.get(key) is None else str(run.get(key)))
    for name, version in (run.get("plugin_versions") or {}).items():
        ET.SubElement(props, "property", name=f"plugin:{name}", value=str(version))
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    total = 0.0
    for code, city in data["cities"].items():
        for cid, cell in city["checks"].items():
            case = ET.SubElement(suite, "testcase", classname=f"essc.contract.{city['plugin']}.{code}", name=cid,
                                 time=f"{cell['duration_s']:.3f}")
            counts["tests"] += 1
            total += cell["duration_s"]
            message = cell.get("message") or ""
            if cell["outcome"] == "fail":
                counts["failures"] += 1
                ET.SubElement(case, "failure", message=message.split("\n", 1)[0][:500]).text = message
            elif cell["outcome"] in ("skipped", "exempt"):
                counts["skipped"] += 1
                ET.SubElement(case, "skipped", type=cell["outcome"], message=message[:500])
    suite.set("tests", str(counts["tests"]))
    suite.set("failures", str(counts["failures"]))
    suite.set("errors", "0")
    suite.set("skipped", str(counts["skipped"]))
    suite.set("time", f"{total:.3f}")
    root = ET.Element("testsuites", name="essc contract")
    root.append(suite)
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- reading --------------------------------------------------------------------------------
def load(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The data of ``directory/report.json``, or None when there is none (or it is unreadable)."""
    path = Path(directory) / FILES["json"]
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def tier_of(data: Mapping[str, Any] | None, plugin: str, version: str | None = None) -> str:
    """The plugin's tier in a report; ``unrated`` when the report does not cover the plugin,
    or covers another version of it."""
    entry = ((data or {}).get("plugins") or {}).get(plugin)
    if not entry or (version is not None and entry.get("version") != version):
        return tiers.UNRATED
    return entry.get("tier") or tiers.UNRATED
