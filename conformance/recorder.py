"""pytest plugin recording the contract suite's outcomes for the QA report.

Loaded on demand (``essc contract --report DIR`` passes ``-p essc.conformance.recorder
--essc-report DIR``); in a plugin's own repository:
``pytest --pyargs essc.conformance.test_suite -p essc.conformance.recorder --essc-report DIR``.

A ``pytest_runtest_makereport`` wrapper (it sees the item with its callspec and fixtures,
the exception and the phase's report) records per test item the city (``essc_city`` of the
callspec), the check (the test function's name), the variant (the other parameters, e.g.
the card status) and the outcome: ``pass``, ``fail`` (a failure or an error in any phase), ``skipped``, or ``exempt``
(skipped with a reason starting ``"exempt: "``, see :mod:`.tiers`). Every message goes
through :func:`essc.core.masking.scrub`, and the synthetic citizens of the failed city
(read from the mock while it runs) are masked as well - names included, which no pattern
can catch. At the end of the session :mod:`.report` writes report.json, junit.xml and
index.html.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from .tiers import EXEMPT_PREFIX

MAX_MESSAGE = 4000
_RECORDER = pytest.StashKey["Recorder"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("essc", "e-SSC contract suite")
    group.addoption("--essc-report", default=None, metavar="DIR",
                    help="write the QA report (report.json, junit.xml, index.html) into DIR")


def pytest_configure(config: pytest.Config) -> None:
    directory = config.getoption("essc_report", None)
    if directory and not hasattr(config, "workerinput"):
        recorder = Recorder(Path(directory), config)
        config.stash[_RECORDER] = recorder
        config.pluginmanager.register(recorder, "essc-report-recorder")


def item_key(item: pytest.Item) -> tuple[str | None, str, str | None]:
    """(city, check, variant) of a contract-suite item."""
    callspec = getattr(item, "callspec", None)
    params = dict(callspec.params) if callspec else {}
    city = params.pop("essc_city", None)
    variant = "-".join(str(v) for v in params.values()) or None
    check = getattr(item, "originalname", None) or item.name.split("[", 1)[0]
    return (str(city) if city is not None else None), check, variant


def failure_text(call: pytest.CallInfo, report: pytest.TestReport) -> str:
    """What went wrong, without pytest's assertion introspection when the check wrote its
    own message (the introspection repeats the compared values: personal data)."""
    excinfo = call.excinfo
    if excinfo is None:
        return report.longreprtext or "failed"
    value = excinfo.value
    if isinstance(value, AssertionError):
        text = str(value)
        head, sep, _ = text.partition("\nassert ")
        text = head if sep and head.strip() else text
        text = text or "assertion failed"
    elif isinstance(value, pytest.fail.Exception):
        text = str(value.msg if hasattr(value, "msg") else value)
    else:
        text = f"{excinfo.typename}: {value}"
    if report.when != "call":
        text = f"error in {report.when}: {text}"
    return text


def skip_text(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr or "")
    return text.removeprefix("Skipped: ")


class Recorder:
    """Collects one result per test item; writes the report at the end of the session."""

    def __init__(self, directory: Path, config: pytest.Config) -> None:
        self.directory = directory
        self.config = config
        self.started = datetime.now(UTC)
        self.t0 = time.monotonic()
        self.results: dict[str, dict[str, Any]] = {}  # nodeid -> result
        self.mock_url: str | None = None
        self.seed: int | None = None
        self.seed_source: str | None = None
        self._citizens: dict[str, list[dict]] = {}
        self.paths: dict[str, Path] = {}

    # -- hooks -------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        url = item.funcargs.get("essc_mock_url") if hasattr(item, "funcargs") else None
        if isinstance(url, str):
            self.mock_url = url
            if report.when == "call" and self.seed is None and "essc_mock" in item.funcargs:
                self.seed, self.seed_source = self._ask_seed(item.funcargs["essc_mock"])
        city, check, variant = item_key(item)
        result = self.results.setdefault(report.nodeid, {
            "nodeid": report.nodeid, "city": city, "check": check, "variant": variant,
            "outcome": "pass", "duration_s": 0.0, "message": None,
        })
        result["duration_s"] = round(result["duration_s"] + report.duration, 4)
        if result["outcome"] == "fail":
            return report
        if report.failed:
            result["outcome"] = "fail"
            result["message"] = self.clean(failure_text(call, report), city)
        elif report.skipped:
            if hasattr(report, "wasxfail"):
                result["outcome"], text = "skipped", f"xfail: {report.wasxfail}"
            else:
                text = skip_text(report)
                result["outcome"] = "exempt" if text.startswith(EXEMPT_PREFIX) else "skipped"
            result["message"] = self.clean(text, city)
            if result["outcome"] == "exempt":
                result["reason"] = self.clean(text.removeprefix(EXEMPT_PREFIX), city)
        return report

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from . import report

        data = report.assemble(list(self.results.values()), self.metadata(session, int(exitstatus)),
                               report.registry_info())
        self.paths = report.write(self.directory, data)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.paths:
            terminalreporter.write_line(f"essc report: {self.paths['html']} (+ report.json, junit.xml)")

    # -- helpers -------------------------------------------------------------------------
    def clean(self, text: str, city: str | None) -> str:
        """Scrub personal data from a message (patterns + the mock's citizens of ``city``)."""
        from essc.core.masking import mask_card, mask_id, mask_name, mask_phone, scrub

        if len(text) > MAX_MESSAGE:
            text = text[:MAX_MESSAGE] + " [...]"
        for person in self._city_citizens(city):
            for key, mask in (("id_number", mask_id), ("card_no", mask_card), ("mobile", mask_phone),
                              ("name", mask_name)):
                value = person.get(key)
                if isinstance(value, str) and len(value) >= 2 and value in text:
                    text = text.replace(value, mask(value))
        return scrub(text)

    def _city_citizens(self, city: str | None) -> list[dict]:
        if not city or not self.mock_url:
            return []
        if city not in self._citizens:
            try:
                from essc.mockserver.client import MockAdmin

                found = MockAdmin(self.mock_url).citizens(city)
                self._citizens[city] = found if isinstance(found, list) else []
            except Exception:  # the mock is gone (end of session) or does not know the city
                self._citizens[city] = []
        return self._citizens[city]

    @staticmethod
    def _ask_seed(admin: Any) -> tuple[int | None, str | None]:
        """The seed the mock runs with: the answer of ``POST /__admin/reset`` (no GET tells it).
        Asked once, after a test that uses the ``essc_mock`` fixture, which resets the mock
        before every test anyway (keeping the cities the suite taught it)."""
        try:
            answer = admin._call("POST", "reset", json={"keep_cities": True})
            return int(answer["seed"]), "mock"
        except Exception:
            return None, None

    def metadata(self, session: pytest.Session, exitstatus: int) -> dict[str, Any]:
        from essc.conformance import report

        config = self.config
        seed, source = self.seed, self.seed_source
        external = config.getoption("essc_mock_url", None)
        if seed is None and not external and self.mock_url:  # the in-process mock: default config
            from essc.mockserver import DEFAULTS

            seed, source = int(DEFAULTS["SEED"]), "mock config default"
        finished = datetime.now(UTC)
        return {
            "seed": seed,
            "seed_source": source,
            "mock": external or "in-process",
            "commit": report.git_commit(),
            "started_at": self.started.isoformat(timespec="seconds"),
            "finished_at": finished.isoformat(timespec="seconds"),
            "duration_s": round(time.monotonic() - self.t0, 2),
            "exit_status": exitstatus,
            "selection": {"cities": list(config.getoption("essc_city", None) or []),
                          "plugins": list(config.getoption("essc_plugin", None) or []),
                          "keyword": config.getoption("keyword", None) or None},
            "collected": session.testscollected,
            **report.versions(),
        }
