"""The contract suite never passes on nothing (pytest hooks, loaded with :mod:`.pytest_plugin`).

They act only in a run that collects the suite's checks (``essc contract``, ``pytest --pyargs
essc.conformance.test_suite`` or a plugin repository's ``tests/test_contract.py``), the same
way from every entry point:

* **selection** - a ``--essc-plugin`` that names no plugin, or a quarantined or disabled one; a
  ``--essc-city`` no loaded plugin serves (unknown, or served by a quarantined plugin); a
  selection that matches no city, or a registry with no city at all: the run stops before any
  check with a usage error naming each reason (pytest exit status 4). The plugins of an explicit
  selection are imported first, so a plugin quarantined at import or registration is named too.
* **exemptions** - an exempt check (the manifest's ``exemptions``, :mod:`.tiers`) skips with
  ``"exempt: <reason>"`` before any fixture runs: the same outcome whether or not the mock can
  play the city.
* **verdict** - after the checks, a selected city the mock cannot play, and a city whose every
  check was skipped (exempt ones included), fail the run (exit status 1); the terminal summary
  names each city and why ("the run proves nothing for").
"""
from __future__ import annotations

import pytest

__all__ = ["CHECKS_MODULE", "SuiteRun", "is_check", "selection_problems", "verdict"]

CHECKS_MODULE = "essc.conformance.checks"
_RUN_KEY = pytest.StashKey["SuiteRun"]()


def _registry(config: pytest.Config):
    from .pytest_plugin import _manifest_registry

    return _manifest_registry(config)


def _find_plugin(reg, name: str):
    for record in reg.plugins:
        if name in (record.name, record.source.name, record.source.module):
            return record
    return None


def _unusable(record) -> str | None:
    if record.status in ("quarantined", "disabled"):
        return f"plugin {record.name!r} is {record.status}: {record.reason}"
    return None


def selection_problems(config: pytest.Config) -> list[str]:
    """Why the selection (``--essc-city`` / ``--essc-plugin``) cannot be checked; empty when it can."""
    from essc.core.errors import EsscError

    from .pytest_plugin import selected_cities

    reg = _registry(config)
    wanted, plugins = config.getoption("essc_city"), config.getoption("essc_plugin")
    known_cities = [c.code for c in reg.cities()]
    problems: list[str] = []
    for name in dict.fromkeys(plugins):
        record = _find_plugin(reg, name)
        if record is None:
            names = ", ".join(sorted(r.name for r in reg.plugins)) or "none"
            problems.append(f"--essc-plugin {name}: no such plugin (known: {names}); `essc plugins` lists them")
        elif _unusable(record):
            problems.append(f"--essc-plugin {name}: {_unusable(record)}")
    for code in dict.fromkeys(wanted):
        if code in known_cities:
            continue
        try:
            reg.city(code)
        except EsscError as err:
            extra = f" (known: {', '.join(known_cities) or 'none'})" if err.code == "INVALID_INPUT" else ""
            problems.append(f"--essc-city {code}: {err.detail}{extra}")
    if problems:
        return problems
    cities = selected_cities(config)
    if not cities:
        if wanted or plugins:
            what = " ".join([f"--essc-city {c}" for c in wanted] + [f"--essc-plugin {p}" for p in plugins])
            return [f"{what}: selects no city (the plugins named do not serve the cities named)"]
        return ["no plugin serves any city: nothing to check (`essc plugins` shows what the registry found; "
                "check ESSC_LOAD_PLUGINS, ESSC_DISABLED_PLUGINS and ESSC_PLUGIN_DIRS)"]
    if wanted or plugins:  # an explicit selection: its plugins must load (import and registration)
        for name in dict.fromkeys(c.plugin for c in cities):
            record = reg.plugin(name)
            if record.status == "discovered":
                try:
                    reg.adapter(next(c.code for c in cities if c.plugin == name))
                except EsscError:
                    pass
            if _unusable(record):
                problems.append(f"plugin {name!r} of the selection: {_unusable(record)}")
    return problems


def _is_suite(item: pytest.Item) -> bool:
    return getattr(getattr(item, "obj", None), "__module__", None) == CHECKS_MODULE


def is_check(item: pytest.Item) -> bool:
    """A contract check (from :mod:`.checks`, whichever test module imported it) run for a city."""
    callspec = getattr(item, "callspec", None)
    return _is_suite(item) and callspec is not None and "essc_city" in callspec.params


class SuiteRun:
    """What a run collected and saw of the suite's checks, per city. Registered as a pytest plugin
    once the suite is collected; at the end it fails the run that proves nothing (:func:`verdict`)."""

    def __init__(self) -> None:
        self.cities: dict[str, str] = {}  #: city -> plugin
        self.items: dict[str, str] = {}  #: nodeid -> city
        self.ran: set[str] = set()  #: cities with a check that passed or failed
        self.skipped: dict[str, list[str]] = {}  #: city -> skip reasons
        self.failures: list[str] = []  #: why the run proves nothing (set at the end)
        self.notes: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        city = self.items.get(report.nodeid)
        if city is None:
            return
        if report.failed or (report.when == "call" and report.passed):
            self.ran.add(city)
        elif report.skipped:
            longrepr = report.longrepr
            text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
            self.skipped.setdefault(city, []).append(text.removeprefix("Skipped: "))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        result = yield
        if not session.config.option.collectonly:
            from .pytest_plugin import _MOCK_SKIPPED_KEY

            self.failures = verdict(self, session.config.stash.get(_MOCK_SKIPPED_KEY, {}))
            session.testsfailed += len(self.failures)  # pytest then exits with status 1 (tests failed)
        return result

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.failures:
            terminalreporter.section("essc contract suite: the run proves nothing for", sep="=", red=True,
                                     bold=True)
            for line in self.failures:
                terminalreporter.write_line(f"FAILED {line}", red=True)
        for note in self.notes:
            terminalreporter.write_line(f"essc: {note}", yellow=True)


def verdict(run: SuiteRun, unplayable: dict[str, str]) -> list[str]:
    """Why a finished run proves nothing for some selected city (empty: it proves something)."""
    out = []
    for city, plugin in run.cities.items():
        if city in unplayable:
            out.append(f"city {city} (plugin {plugin!r}): {unplayable[city]}")
        elif city not in run.ran and run.skipped.get(city):
            reasons = list(dict.fromkeys(run.skipped[city]))
            out.append(f"city {city} (plugin {plugin!r}): every check was skipped ({len(run.skipped[city])}), "
                       f"nothing shows the plugin works: {'; '.join(reasons[:3])}"
                       + (f" (+{len(reasons) - 3} more reasons)" if len(reasons) > 3 else ""))
    return out


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list) -> None:
    if not any(_is_suite(item) for item in items):
        return
    problems = selection_problems(config)
    if problems:
        raise pytest.UsageError("the contract suite cannot run this selection:\n  " + "\n  ".join(problems))
    old = config.stash.get(_RUN_KEY, None)
    if old is not None and config.pluginmanager.is_registered(old):
        config.pluginmanager.unregister(old)
    run = config.stash[_RUN_KEY] = SuiteRun()
    reg = _registry(config)
    for item in items:
        if is_check(item):
            city = str(item.callspec.params["essc_city"])
            run.items[item.nodeid] = city
            run.cities.setdefault(city, reg.city(city).plugin)
    if not (config.getoption("essc_city") or config.getoption("essc_plugin")):
        for record in reg.plugins:
            if record.status == "quarantined":
                run.notes.append(f"not checked: plugin {record.name!r} is quarantined: {record.reason}")
    config.pluginmanager.register(run, "essc-suite-run")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """An exempt check skips with its written reason before any fixture runs (the mock's included)."""
    if not is_check(item):
        return
    from .tiers import EXEMPT_PREFIX, exemption

    reg = _registry(item.config)
    try:
        manifest = reg.plugin(reg.city(str(item.callspec.params["essc_city"])).plugin).manifest
    except Exception:  # an unknown city: the check itself reports it
        return
    reason = exemption(manifest, getattr(item, "originalname", item.name))
    if reason:
        pytest.skip(EXEMPT_PREFIX + reason)
