"""The contract suite never passes on nothing (issue 9, section 5).

Both entry points - ``essc contract`` and plain ``pytest --pyargs essc.conformance.test_suite`` -
refuse a selection that names an unknown plugin or city, or a quarantined plugin (exit status 4,
naming the reason), and fail a run in which a selected city proves nothing: the mock cannot play
it, or every one of its checks was skipped (exit status 1). Exemptions apply before any fixture,
so they count the same whether or not the mock can play the city. An untyped exception in a
plugin is reported with the plugin's file and line; a response that lacks a required value is the
plugin's CONTRACT_VIOLATION with the full JSON path, saying whose side lost the value.

Plugins are written into a temporary folder named by ``ESSC_PLUGIN_DIRS``; the suite runs in a
subprocess with a clean environment.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from essc.core import CONTRACT_VERSION
from essc.core.answers import CityCall
from essc.core.errors import ContractViolation, UpstreamUnavailable
from essc.core.registry import Registry
from essc.core.settings import Settings

ESSC = "import sys; from essc.cli import main; sys.exit(main())"  # `essc ...` with this interpreter
REASON = "the city gateway answers every fault with a fixed 200 page; agreed with QA on 2026-11-01"
ID = "11010119900307803X"

SYNTHETIC_INIT = '''from essc.core import hookimpl
from essc.tooling.bench import SyntheticAdapter


@hookimpl
def essc_register_adapters(register, context):
    for city in context.cities:
        register(city, SyntheticAdapter())
'''

# A plugin in a dialect the mock plays (so the suite's mock fixtures run for its city), with its own
# adapter module: the in-memory adapter of the bench (it passes the happy path), plus a bug.
PLAYABLE_INIT = '''from essc.core import hookimpl

from .adapter import Adapter


@hookimpl
def essc_register_adapters(register, context):
    adapter = Adapter()
    for city in context.cities:
        register(city, adapter)
'''
PLAYABLE_ADAPTER = '''from essc.core.answers import CityCall
from essc.tooling.bench import SyntheticAdapter


class Adapter(SyntheticAdapter):
{body}
'''
KEYERROR_BODY = '''    def read_card(self, request):
        answer = {"card": {}}
        return answer["card"]["cardNo"]  # KEYERROR-LINE
'''
DROP_BODY = '''    def activate(self, request):
        call = CityCall(request["aab301"], "activate")
        credential = dict(super().activate(request))
        del credential["sign_date"]  # the translation drops it
        return call.fits("credential", credential)
'''


def manifest(name: str, city: str, **overrides) -> dict:
    data = {
        "name": name, "version": "1.0.0", "contract_version": CONTRACT_VERSION, "dialect": "other",
        "description": "a plugin written by the selection tests",
        "cities": [{"code": city, "name": "合成市", "province": "合成省", "opened": True}],
        "capabilities": {"operations": ["read_card", "verify_identity", "activate", "health"],
                         "identity_checks": ["sms"], "services": []},
        "timeouts": {"connect_s": 1, "read_s": 1, "total_s": 2},
        "maintainers": [{"name": "t", "email": "t@example.org"}],
    }
    data.update(overrides)
    return data


class Plugins:
    """Throw-away plugin packages (unique names) in one folder for ``ESSC_PLUGIN_DIRS``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = uuid.uuid4().hex[:6]
        self.modules: list[str] = []

    def add(self, short: str, data: dict | None = None, *, init: str = SYNTHETIC_INIT, city: str = "700001",
            files: dict[str, str] | None = None, **mf) -> str:
        name = f"sel_{short}_{self.tag}"
        pkg = self.root / name
        pkg.mkdir()
        (pkg / "manifest.json").write_text(json.dumps(data or manifest(name, city, **mf), ensure_ascii=False),
                                           encoding="utf-8")
        (pkg / "__init__.py").write_text(init, encoding="utf-8")
        for file, text in (files or {}).items():
            (pkg / file).write_text(text, encoding="utf-8")
        self.modules.append(name)
        return name

    def playable(self, short: str, city: str, body: str = "    pass\n", **mf) -> str:
        return self.add(short, init=PLAYABLE_INIT, city=city, dialect="rest-json",
                        files={"adapter.py": PLAYABLE_ADAPTER.format(body=body)}, **mf)

    def registry(self) -> Registry:
        return Registry(Settings(builtin_plugins=False, entry_points=False, plugin_dirs=(self.root,))).setup()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ESSC_", "PYTEST_"))}
        env.update(ESSC_PLUGIN_DIRS=str(self.root), PYTHONDONTWRITEBYTECODE="1")
        return env

    def contract(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """``essc contract ARGS`` in a subprocess."""
        return subprocess.run([sys.executable, "-c", ESSC, "contract", *args], cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    def pytest(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
        """Plain pytest with the suite, as in a plugin's own repository."""
        return subprocess.run([sys.executable, "-m", "pytest", "--pyargs", "essc.conformance.test_suite",
                               "-p", "no:cacheprovider", "-q", "-rfEs", *args], cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def plugins(tmp_path):
    folder = Plugins(tmp_path)
    yield folder
    sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
    for name in folder.modules:
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            sys.modules.pop(module, None)


def out(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout + proc.stderr


def line_of(text: str, marker: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if marker in line)


# -- selections that cannot run: usage error (4) before any check ------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("entry", ["essc", "pytest"])
def test_an_unknown_plugin_is_refused(plugins, entry):
    proc = plugins.contract("--plugin", "nosuchplugin") if entry == "essc" else \
        plugins.pytest("--essc-plugin", "nosuchplugin")
    assert proc.returncode == 4, out(proc)
    assert "--essc-plugin nosuchplugin: no such plugin" in out(proc)
    assert "skipped" not in proc.stdout and "passed" not in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["essc", "pytest"])
def test_an_unknown_city_is_refused(plugins, entry):
    proc = plugins.contract("--city", "999999") if entry == "essc" else plugins.pytest("--essc-city", "999999")
    assert proc.returncode == 4, out(proc)
    assert "--essc-city 999999: no plugin serves city 999999" in out(proc)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["essc", "pytest"])
def test_a_quarantined_plugin_selected_by_name_is_refused_with_the_reason(plugins, entry):
    name = plugins.add("future", contract_version="2.0")
    proc = plugins.contract("--plugin", name) if entry == "essc" else plugins.pytest("--essc-plugin", name)
    assert proc.returncode == 4, out(proc)
    assert f"--essc-plugin {name}: plugin '{name}' is quarantined: incompatible contract: plugin targets 2.0" \
        in out(proc)


@pytest.mark.slow
def test_a_city_of_a_quarantined_plugin_is_refused_with_the_reason(plugins):
    plugins.add("future", contract_version="2.0", city="700009")
    proc = plugins.contract("--city", "700009")
    assert proc.returncode == 4, out(proc)
    assert "--essc-city 700009:" in out(proc) and "is quarantined: incompatible contract" in out(proc)


@pytest.mark.slow
def test_a_plugin_quarantined_at_import_is_refused_with_the_reason(plugins):
    name = plugins.add("broken", init="import not_a_module_anywhere\n")
    proc = plugins.contract("--plugin", name)
    assert proc.returncode == 4, out(proc)
    assert f"plugin '{name}' is quarantined: import of {name} failed: ModuleNotFoundError" in out(proc)


@pytest.mark.slow
def test_a_scaffold_like_repository_with_a_quarantined_plugin_fails(plugins):
    """A plugin repository's conftest selects its plugin and its test module imports the suite: the
    contract version that got the plugin quarantined no longer ends in "N passed, 17 skipped", exit 0."""
    name = plugins.add("repo", contract_version="1.9")
    tests = plugins.root / "repo_tests"
    tests.mkdir()
    (tests / "conftest.py").write_text(
        f"def pytest_configure(config):\n    config.option.essc_plugin = [{name!r}]\n", encoding="utf-8")
    (tests / "test_contract.py").write_text("from essc.conformance.test_suite import *  # noqa: F403\n",
                                            encoding="utf-8")
    (tests / "test_unit.py").write_text("def test_unit():\n    pass\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(tests)],
                          cwd=plugins.root, env=plugins.env(), capture_output=True, text=True, timeout=240)
    assert proc.returncode == 4, out(proc)
    assert f"plugin '{name}' is quarantined: plugin targets contract 1.9, newer than the framework's" in out(proc)


# -- runs that prove nothing: failed (1) with the reason -----------------------------------------------
@pytest.mark.slow
def test_every_check_skipped_fails_the_run(plugins):
    """A city that has not opened the service, with the two checks that would run deselected."""
    plugins.add("closed", city="700002", dialect="rest-json",
                cities=[{"code": "700002", "name": "合成市", "province": "合成省", "opened": False}])
    proc = plugins.contract("--city", "700002", "-k",
                            "not test_manifest_valid and not test_capabilities and not test_city_not_opened")
    assert proc.returncode == 1, out(proc)
    assert "20 skipped" in proc.stdout and "passed" not in proc.stdout.splitlines()[-1]
    assert "the run proves nothing for" in proc.stdout
    assert "city 700002" in proc.stdout and "every check was skipped (20)" in proc.stdout
    assert "has not opened the e-SSC service" in proc.stdout


@pytest.mark.slow
def test_a_city_the_mock_cannot_play_fails_the_run_and_exemptions_still_apply(plugins):
    name = plugins.add("other", exemptions={"test_upstream_fault": REASON, "test_delayed_sync": REASON})
    proc = plugins.contract("--plugin", name)
    assert proc.returncode == 1, out(proc)
    text = proc.stdout
    assert "the run proves nothing for" in text
    assert f"FAILED city 700001 (plugin '{name}'): the mock city systems cannot play city 700001" in text
    # exempt checks are exempt (not "the mock cannot play"), exactly as for a city the mock knows
    assert "SKIPPED [7] " in text and f"exempt: {REASON}" in text  # the 6 faults and the delayed sync
    skipped_for_the_mock = sum(int(line.split("[", 1)[1].split("]", 1)[0]) for line in text.splitlines()
                               if line.startswith("SKIPPED [") and "cannot play city 700001" in line)
    assert skipped_for_the_mock == 21 - 7  # the checks of contract 1.2 too: the mock is needed before "not declared"
    assert "2 passed, 21 skipped" in text


# -- exemptions -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_happy_path_cannot_be_exempted(plugins):
    name = plugins.playable("nohappy", "320581", exemptions={"test_happy_path": REASON,
                                                        "test_no_personal_data_in_logs": REASON})
    proc = plugins.contract("--plugin", name, "-k",
                            "test_manifest_valid or test_happy_path or test_no_personal_data", "-rA")
    assert proc.returncode == 1, out(proc)
    text = proc.stdout
    assert f"FAILED ::test_manifest_valid[320581-{name}]" in text or "test_manifest_valid" in text
    assert "$.exemptions.test_happy_path: test_happy_path cannot be exempted" in text
    assert "test_no_personal_data_in_logs cannot be exempted" in text
    assert f"PASSED ::test_happy_path[320581-{name}]" in text  # it ran anyway
    assert f"PASSED ::test_no_personal_data_in_logs[320581-{name}]" in text
    assert "exempt:" not in text
    assert "1 failed, 2 passed" in text


def test_exemptions_of_unknown_or_unexemptible_checks_are_refused():
    from essc.conformance.tiers import NOT_EXEMPTIBLE, refused_exemptions

    assert NOT_EXEMPTIBLE == {"test_manifest_valid", "test_happy_path", "test_no_personal_data_in_logs"}
    refused = refused_exemptions({"exemptions": {
        "test_happy_path": REASON, "test_upstream_faults": REASON, "test_delayed_sync": "         x",
        "test_card_status": REASON}})
    assert set(refused) == {"test_happy_path", "test_upstream_faults", "test_delayed_sync"}
    assert "cannot be exempted" in refused["test_happy_path"]
    assert "no check 'test_upstream_faults'" in refused["test_upstream_faults"]
    assert refused_exemptions({"exemptions": {"test_card_status": REASON}}) == {}
    assert refused_exemptions(None) == {}


# -- failure messages: file and line; translation vs the city's answer -------------------------------
def test_an_untyped_exception_names_the_plugins_file_and_line(plugins):
    name = plugins.playable("keyerror", "320582", KEYERROR_BODY)
    reg = plugins.registry()
    with pytest.raises(ContractViolation) as err:
        reg.call("320582", "read_card", {"aac002": ID, "aac003": "张三", "aab301": "320582"})
    details = err.value.details
    line = line_of(PLAYABLE_ADAPTER.format(body=KEYERROR_BODY), "KEYERROR-LINE")
    assert (details["file"], details["line"], details["function"]) == ("adapter.py", line, "read_card")
    assert details["rule"] == "typed-errors" and details["plugin"] == name
    assert f"adapter raised KeyError instead of a typed error at adapter.py:{line} in read_card" in str(err.value)
    assert ID not in json.dumps(err.value.to_dict(), ensure_ascii=False)
    assert str(plugins.root) not in json.dumps(err.value.to_dict(), ensure_ascii=False)  # relative path only


def test_a_dropped_required_value_is_the_plugins_contract_violation_with_the_full_path():
    call = CityCall("330100", "activate")
    credential = {"aab301": "330100", "signNo": "SN12345678", "signSeq": "1", "signLevel": 1,
                  "validate": "20301231"}
    with pytest.raises(ContractViolation) as err:
        call.fits("credential", credential)
    d = err.value.details
    assert (d["path"], d["rule"], d["source"]) == ("$.signDate", "required", "translation")
    assert "the translation dropped it" in str(err.value)

    call = CityCall("330100", "activate")
    assert call.optional({"signNo": "SN12345678"}, "signedAt") is None  # the city's answer lacks it
    with pytest.raises(ContractViolation) as err:
        call.fits("credential", credential)
    d = err.value.details
    assert (d["path"], d["source"]) == ("$.signDate", "city-answer")
    assert "the city's answer lacked 'signedAt'" in str(err.value)

    # a value that is there but does not fit came from the city's data: malformed answer, full path
    with pytest.raises(UpstreamUnavailable, match=r"\$\.signDate"):
        CityCall("330100", "activate").fits("credential", {**credential, "signDate": "2030-12-31"})


def test_the_registry_names_the_full_path_of_a_missing_value(plugins):
    init = SYNTHETIC_INIT.replace("SyntheticAdapter())", "Dropping())") + '''

class Dropping(SyntheticAdapter):
    def activate(self, request):
        answer = dict(super().activate(request))
        answer.pop("sign_date")
        return answer
'''
    plugins.add("regdrop", init=init, city="700003")
    with pytest.raises(ContractViolation) as err:
        plugins.registry().call("700003", "activate", {"aac002": ID, "aab301": "700003", "verify_id": "abcd",
                                                       "channel": "test"})
    assert (err.value.details["path"], err.value.details["rule"]) == ("$.sign_date", "required")


@pytest.mark.slow
def test_the_suite_reports_file_line_and_the_dropped_value(plugins):
    keyerror = plugins.playable("keyerror", "320583", KEYERROR_BODY)
    dropper = plugins.playable("dropper", "320584", DROP_BODY)
    proc = plugins.contract("--plugin", keyerror, "--plugin", dropper, "-k", "happy")
    assert proc.returncode == 1, out(proc)
    text = proc.stdout
    line = line_of(PLAYABLE_ADAPTER.format(body=KEYERROR_BODY), "KEYERROR-LINE")
    assert f"expected success, got CONTRACT_VIOLATION raised at adapter.py:{line} in read_card" in text
    assert ("[city 320584, hook activate] expected success, got CONTRACT_VIOLATION at $.sign_date (rule required): "
            "the translation dropped it") in text
    assert "UPSTREAM_UNAVAILABLE" not in text
    assert "2 failed" in text
