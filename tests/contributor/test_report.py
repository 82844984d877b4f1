"""The QA report of ``essc contract --report DIR``: data, rendering, masking, recorder, CLI."""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from click.testing import CliRunner

from essc.cli.contract import contract_cmd
from essc.cli.plugins import plugins_cmd
from essc.conformance import report
from essc.conformance.recorder import Recorder
from essc.core import CONTRACT_VERSION
from essc.core.idnumber import make_id_number
from essc.core.masking import mask_id, mask_name

ID_NUMBER = make_id_number("330106", dt.date(1990, 3, 7), 803)
PHONE = "13812345678"
REASON = "the city gateway answers every fault with a fixed 200 page; agreed with QA on 2026-11-01"
FAULTS = ("http_500", "http_503", "http_429", "malformed", "hang", "drop")
STATUSES = ("reported_lost", "sealed", "cancelled", "locked")
COLUMNS = (["test_manifest_valid", "test_capabilities_implemented", "test_happy_path", "test_city_not_opened",
            "test_delayed_sync"] + [f"test_card_status[{s}]" for s in STATUSES] + ["test_identity_mismatch"]
           + [f"test_upstream_fault[{k}]" for k in FAULTS] + ["test_no_personal_data_in_logs"])
RUN = {"seed": 20261125, "seed_source": "mock", "mock": "in-process", "commit": "0123456789abcdef" * 2 + "01234567",
       "started_at": "2026-11-25T08:00:00+00:00", "finished_at": "2026-11-25T08:00:40+00:00", "duration_s": 40.0,
       "exit_status": 1, "framework_version": "0.1.0", "contract_version": "1.0", "selection": {}}
OPERATIONS = ["read_card", "verify_identity", "activate", "health"]  # no operation of contract 1.2
INFO = {
    "plugins": {
        "alpha": {"version": "1.2.0", "description": "alpha gateway", "exemptions": {}, "cities": ["100001", "100002"],
                  "status": "discovered", "reason": None, "operations": OPERATIONS},
        "beta": {"version": "0.3.1", "description": "", "exemptions": {"test_upstream_fault": REASON},
                 "cities": ["200001"], "status": "discovered", "reason": None, "operations": OPERATIONS},
    },
    "cities": {
        "100001": {"name": "甲市", "province": "甲省", "opened": True, "plugin": "alpha"},
        "100002": {"name": "乙市", "province": "甲省", "opened": False, "plugin": "alpha"},
        "200001": {"name": "丙市", "province": "丙省", "opened": True, "plugin": "beta"},
    },
}
FAILURE = f"[city 200001, hook activate] expected CARD_STATUS_ABNORMAL, got success for {ID_NUMBER} (phone {PHONE})"


def split(cid: str) -> tuple[str, str | None]:
    check, _, variant = cid.partition("[")
    return check, variant.rstrip("]") or None


def synthetic_results() -> list[dict]:
    """alpha: passes everywhere, its not-opened city skips the flow (gold); beta: one card
    status fails (with an ID number in the message), faults exempt (bronze)."""
    out = []
    for city in ("100001", "100002", "200001"):
        for cid in COLUMNS:
            check, variant = split(cid)
            r = {"nodeid": f"::{check}[{city}-{variant}]", "city": city, "check": check, "variant": variant,
                 "outcome": "pass", "duration_s": 0.01, "message": None}
            if city == "100002" and cid not in COLUMNS[:2] and check != "test_city_not_opened":
                r.update(outcome="skipped", message="city 100002 has not opened the e-SSC service")
            if city == "200001" and cid == "test_card_status[sealed]":
                r.update(outcome="fail", message=FAILURE)
            if city == "200001" and check == "test_upstream_fault":
                r.update(outcome="exempt", message="exempt: " + REASON, reason=REASON)
            out.append(r)
    return out


@pytest.fixture
def data() -> dict:
    return report.assemble(synthetic_results(), RUN, INFO)


class Cells(HTMLParser):
    """The matrix cells of index.html: (city, check id) -> {"classes", "details", "text"}."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[tuple[str, str], dict] = {}
        self.city: str | None = None
        self.cell: dict | None = None
        self.depth = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr" and "data-city" in a:
            self.city = a["data-city"]
        if self.cell is not None:
            self.depth += tag == "td"
            self.cell["details"] |= tag == "details"
        elif tag == "td" and "c" in (a.get("class") or "").split():
            self.cell = {"classes": set(a["class"].split()), "details": False, "text": ""}
            self.cells[(self.city, a.get("data-check"))] = self.cell

    def handle_endtag(self, tag):
        if tag == "td" and self.cell is not None:
            if self.depth:
                self.depth -= 1
            else:
                self.cell = None

    def handle_data(self, text):
        if self.cell is not None:
            self.cell["text"] += text


def cells(html: str) -> dict:
    parser = Cells()
    parser.feed(html)
    return parser.cells


# -- data ------------------------------------------------------------------------------------
def test_assemble_computes_tiers_per_plugin(data):
    assert data["format"] == report.FORMAT
    assert data["plugins"]["alpha"]["tier"] == "gold"
    beta = data["plugins"]["beta"]
    assert beta["tier"] == "bronze"
    assert beta["requirements"]["test_card_status"] == "failed in 200001 [sealed]"
    assert beta["requirements"]["test_upstream_fault"] is None  # exempt with a written reason
    assert beta["requirements"]["docs"] == "the manifest has no description"
    assert beta["exemptions"] == {"test_upstream_fault": REASON}
    assert data["cities"]["100002"]["tier"] == "gold" and data["cities"]["200001"]["tier"] == "bronze"
    assert data["summary"] == {"pass": 30, "fail": 1, "skipped": 14, "exempt": 6, "total": 51}
    assert [c["id"] for c in data["checks"]] == COLUMNS
    assert data["run"]["plugin_versions"] == {"alpha": "1.2.0", "beta": "0.3.1"}


def test_assemble_orders_columns_like_the_tiers():
    shuffled = list(reversed(synthetic_results()))
    assert [c["id"] for c in report.assemble(shuffled, RUN, INFO)["checks"]] == COLUMNS


def test_partial_run_is_flagged():
    results = [r for r in synthetic_results() if r["city"] != "100002"]
    alpha = report.assemble(results, RUN, INFO)["plugins"]["alpha"]
    assert alpha["partial"] and alpha["cities_run"] == ["100001"] and alpha["tier"] == "gold"


def test_no_personal_data_anywhere(data, tmp_path):
    paths = report.write(tmp_path, data)
    assert sorted(p.name for p in paths.values()) == ["index.html", "junit.xml", "report.json"]
    for path in paths.values():
        text = path.read_text(encoding="utf-8")
        assert ID_NUMBER not in text and PHONE not in text, path.name
        assert mask_id(ID_NUMBER) in text, path.name
    # also when someone hands the renderers unscrubbed data
    raw = json.loads(json.dumps(data))
    raw["cities"]["200001"]["checks"]["test_card_status[sealed]"]["message"] = FAILURE
    assert ID_NUMBER not in report.render_html(raw) and ID_NUMBER not in report.render_junit(raw)


def test_commit_hash_is_not_mangled_by_masking(data, tmp_path):
    data["run"]["commit"] = "ab13812345678cd" + "0" * 25  # looks like a phone number inside
    report.write(tmp_path, data)
    assert report.load(tmp_path)["run"]["commit"] == data["run"]["commit"]


# -- HTML -------------------------------------------------------------------------------------
def test_html_matrix_cells(data):
    html = report.render_html(data)
    found = cells(html)
    assert len(found) == 3 * len(COLUMNS)
    assert "pass" in found[("100001", "test_happy_path")]["classes"]
    assert "skipped" in found[("100002", "test_happy_path")]["classes"]
    fail = found[("200001", "test_card_status[sealed]")]
    assert "fail" in fail["classes"] and fail["details"]
    assert "expected CARD_STATUS_ABNORMAL" in fail["text"] and mask_id(ID_NUMBER) in fail["text"]
    exempt = found[("200001", "test_upstream_fault[hang]")]
    assert "exempt" in exempt["classes"] and exempt["details"] and REASON in exempt["text"]
    outcomes = {o: sum(o in c["classes"] for c in found.values()) for o in ("pass", "fail", "skipped", "exempt")}
    assert outcomes == {k: data["summary"][k] for k in outcomes}


def test_html_marks_a_check_that_did_not_run():
    results = [r for r in synthetic_results() if not (r["city"] == "100001" and r["variant"] == "hang")]
    data = report.assemble(results, RUN, INFO)
    cell = cells(report.render_html(data))[("100001", "test_upstream_fault[hang]")]
    assert "missing" in cell["classes"]
    assert data["plugins"]["alpha"]["tier"] == "silver"


def test_html_header_rows_and_self_containment(data):
    html = report.render_html(data)
    for text in ("20261125", RUN["commit"][:12], RUN["started_at"], "alpha 1.2.0", "beta 0.3.1", "contract"):
        assert text in html, text
    assert 'class="tier tier-gold">gold<' in html and 'class="tier tier-bronze">bronze<' in html
    assert "<b>100001</b> 甲市" in html and 'alpha<span class="mono">1.2.0</span>' in html
    assert REASON in html  # the exemption's reason is shown
    assert "<style>" in html and "<script>" in html
    for external in ("<link", " src=", "@import", "url(", "http://", "https://"):
        assert external not in html, external
    assert html.count('<details class="fail"') == 1  # the failures list, expandable


def test_html_escapes_messages():
    results = synthetic_results()
    results[0].update(outcome="fail", message="<script>alert(1)</script>")
    html = report.render_html(report.assemble(results, RUN, INFO))
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)" in html


# -- JUnit, JSON ------------------------------------------------------------------------------
def test_junit_matches_the_data(data):
    root = ET.fromstring(report.render_junit(data))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == data["summary"]["total"]
    assert int(suite.get("failures")) == 1 and int(suite.get("skipped")) == 14 + 6
    failed = [c for c in cases if c.find("failure") is not None]
    assert [(c.get("classname"), c.get("name")) for c in failed] == [
        ("essc.contract.beta.200001", "test_card_status[sealed]")]
    assert mask_id(ID_NUMBER) in failed[0].find("failure").text
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["seed"] == "20261125" and props["plugin:beta"] == "0.3.1"


def test_load_and_tier_of(data, tmp_path):
    assert report.load(tmp_path) is None
    report.write(tmp_path, data)
    loaded = report.load(tmp_path)
    assert loaded["plugins"]["beta"]["tier"] == "bronze"
    assert report.tier_of(loaded, "alpha", "1.2.0") == "gold"
    assert report.tier_of(loaded, "alpha", "1.3.0") == "unrated"  # another version was rated
    assert report.tier_of(loaded, "gamma") == "unrated"
    assert report.tier_of(None, "alpha") == "unrated"
    (tmp_path / "report.json").write_text("{not json", encoding="utf-8")
    assert report.load(tmp_path) is None


# -- recorder ---------------------------------------------------------------------------------
SYNTHETIC_SUITE = f'''
import pytest

ID = "{ID_NUMBER}"

@pytest.mark.parametrize("essc_city", ["330100"])
def test_manifest_valid(essc_city):
    pass

@pytest.mark.parametrize("essc_city", ["330100"])
@pytest.mark.parametrize("status", ["sealed", "locked"])
def test_card_status(essc_city, status):
    if status == "locked":
        pytest.fail(f"[city 330100] activate for {{ID}} succeeded", pytrace=False)

@pytest.mark.parametrize("essc_city", ["330100"])
def test_delayed_sync(essc_city):
    record = {{"aac002": ID}}
    assert record["aac002"] == "x", "the record is not the citizen's"

@pytest.mark.parametrize("essc_city", ["330100"])
def test_identity_mismatch(essc_city):
    assert ID == "y"

@pytest.mark.parametrize("essc_city", ["330100"])
def test_happy_path(essc_city):
    pytest.skip("city 330100 has not opened the e-SSC service")

@pytest.mark.parametrize("essc_city", ["330100"])
def test_upstream_fault(essc_city):
    pytest.skip("exempt: {REASON}")

@pytest.fixture
def broken():
    raise RuntimeError("fixture broke for " + ID)

@pytest.mark.parametrize("essc_city", ["330100"])
def test_no_personal_data_in_logs(essc_city, broken):
    pass

def test_without_city():
    pass
'''


def test_recorder_maps_outcomes_and_masks_messages(tmp_path):
    (tmp_path / "test_synthetic.py").write_text(SYNTHETIC_SUITE, encoding="utf-8")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:essc", "-p", "no:cacheprovider",
                           "-p", "essc.conformance.recorder", f"--essc-report={out}", "-q", "test_synthetic.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "essc report:" in proc.stdout
    data = report.load(out)
    checks = data["cities"]["330100"]["checks"]
    outcomes = {cid: c["outcome"] for cid, c in checks.items()}
    assert outcomes == {"test_manifest_valid": "pass", "test_happy_path": "skipped",
                        "test_delayed_sync": "fail", "test_card_status[sealed]": "pass",
                        "test_card_status[locked]": "fail", "test_identity_mismatch": "fail",
                        "test_upstream_fault": "exempt", "test_no_personal_data_in_logs": "fail"}
    assert checks["test_card_status[locked]"]["message"] == f"[city 330100] activate for {mask_id(ID_NUMBER)} succeeded"
    assert checks["test_delayed_sync"]["message"] == "the record is not the citizen's"  # no introspection
    assert mask_id(ID_NUMBER) in checks["test_identity_mismatch"]["message"]  # bare assert: masked introspection
    assert checks["test_no_personal_data_in_logs"]["message"].startswith("error in setup: RuntimeError")
    assert checks["test_upstream_fault"]["reason"] == REASON
    assert checks["test_happy_path"]["message"] == "city 330100 has not opened the e-SSC service"
    assert data["run"]["seed"] is None  # no mock ran
    for name in ("report.json", "junit.xml", "index.html"):
        assert ID_NUMBER not in (out / name).read_text(encoding="utf-8"), name


def test_recorder_masks_the_mock_citizens_names(tmp_path):
    class Config:
        def getoption(self, name, default=None):
            return default

    rec = Recorder(tmp_path, Config())
    rec.mock_url = "http://127.0.0.1:1"
    rec._citizens["330100"] = [{"id_number": ID_NUMBER, "name": "欧阳娜娜", "card_no": "K13822465",
                                "mobile": PHONE}]
    text = rec.clean("record of 欧阳娜娜 (K13822465, 13812345678) differs", "330100")
    assert text == f"record of {mask_name('欧阳娜娜')} (K1*****65, 138****5678) differs"


# -- CLI --------------------------------------------------------------------------------------
def test_contract_report_option_loads_the_recorder(monkeypatch, tmp_path):
    import pytest as pytest_module

    seen = {}
    monkeypatch.setattr(pytest_module, "main", lambda args: seen.setdefault("args", args) and 0)
    result = CliRunner().invoke(contract_cmd, ["--city", "330100", "--junit", str(tmp_path / "j.xml"),
                                               "--report", str(tmp_path / "r"), "-x"])
    assert result.exit_code == 0, result.output
    args = seen["args"]
    assert args[args.index("essc.conformance.recorder") - 1] == "-p"
    assert f"--essc-report={tmp_path / 'r'}" in args and f"--junitxml={tmp_path / 'j.xml'}" in args
    assert "--essc-city=330100" in args and args[-1] == "-x"


def test_plugins_shows_tiers_from_a_report(data, tmp_path, monkeypatch):
    from essc.core.registry import Registry

    versions = {r.name: r.version for r in Registry().plugins}
    data["plugins"] = {"zhejiang": {**data["plugins"]["alpha"], "version": versions["zhejiang"], "tier": "silver"},
                       "fujian": {**data["plugins"]["alpha"], "version": "0.0.1", "tier": "gold"}}
    report.write(tmp_path, data)
    monkeypatch.delenv("ESSC_REPORT_DIR", raising=False)
    runner = CliRunner()
    rows = json.loads(runner.invoke(plugins_cmd, ["--json", "--report-dir", str(tmp_path)]).stdout)
    tiers = {r["name"]: r["tier"] for r in rows}
    assert tiers["zhejiang"] == "silver"
    assert tiers["fujian"] == "unrated"  # the report rated another version
    assert tiers["sichuan"] == "unrated"  # not in the report
    rows = json.loads(runner.invoke(plugins_cmd, ["--json"], env={"ESSC_REPORT_DIR": str(tmp_path)}).stdout)
    assert {r["name"]: r["tier"] for r in rows}["zhejiang"] == "silver"
    result = runner.invoke(plugins_cmd, ["--json"])
    assert {r["tier"] for r in json.loads(result.stdout)} == {"unrated"}
    table = runner.invoke(plugins_cmd, ["--report-dir", str(tmp_path)])
    assert table.exit_code == 0 and "tier" in table.stdout and "silver" in table.stdout


def test_plugins_without_a_report_in_the_dir(tmp_path):
    result = CliRunner().invoke(plugins_cmd, ["--json", "--report-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert {r["tier"] for r in json.loads(result.stdout)} == {"unrated"}
    assert "no contract report" in result.stderr


# -- end to end -------------------------------------------------------------------------------
def test_contract_report_end_to_end(tmp_path):
    """``essc contract --city 330100 --report DIR`` (the hang fault deselected for speed:
    which also shows that an unrun check keeps the plugin below gold)."""
    out = tmp_path / "report"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ESSC_", "PYTEST_"))}
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from essc.cli import main; sys.exit(main())",
         "contract", "--city", "330100", "--report", str(out), "-k", "not hang"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} >= {"report.json", "junit.xml", "index.html"}

    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    run = data["run"]
    assert run["seed"] == 20261125 and run["seed_source"] == "mock"
    assert run["contract_version"] == CONTRACT_VERSION and run["framework_version"]
    assert run["plugin_versions"]["zhejiang"] and run["started_at"]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        head = None
    assert run["commit"] == head
    assert list(data["cities"]) == ["330100"]
    checks = data["cities"]["330100"]["checks"]
    assert len(checks) == 22 and "test_upstream_fault[hang]" not in checks  # 5 of contract 1.2
    assert checks["test_recorded_conformance"]["outcome"] == "skipped"  # no cassettes for 杭州
    assert {c["outcome"] for k, c in checks.items() if k != "test_recorded_conformance"} == {"pass"}
    zhejiang = data["plugins"]["zhejiang"]
    assert zhejiang["tier"] == "silver" and zhejiang["partial"]
    assert zhejiang["requirements"]["test_upstream_fault"] == "not run in 330100 [hang]"

    suite = ET.parse(out / "junit.xml").getroot().find("testsuite")
    junit = {(c.get("classname"), c.get("name")) for c in suite.findall("testcase")}
    assert junit == {("essc.contract.zhejiang.330100", cid) for cid in checks}
    assert suite.get("failures") == "0" and suite.get("tests") == "22"

    html = (out / "index.html").read_text(encoding="utf-8")
    found = cells(html)
    assert {cid for (city, cid) in found if city == "330100"} == {c["id"] for c in data["checks"]}
    assert all("pass" in c["classes"] for (city, cid), c in found.items() if cid != "test_recorded_conformance")
    assert "tier-silver" in html and "20261125" in html and "杭州" in html


def test_the_report_directory_is_described_in_the_module():
    """The format documented in report.py lists every top-level key it writes."""
    doc = textwrap.dedent(report.__doc__)
    for key in ("run:", "summary:", "checks:", "plugins:", "cities:"):
        assert key in doc
