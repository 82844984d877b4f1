"""``essc conformance`` as QA runs it: passes on the committed cassettes, fails naming what
differs, and never passes on nothing."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import essc.plugins
from essc.conformance.cassettes import leaks

CASSETTES = Path(essc.plugins.__path__[0]) / "changzhou" / "cassettes"


def essc(*args, cwd=None):
    return subprocess.run([sys.executable, "-c", "from essc.cli import main; main()", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=120)


def test_committed_cassettes_conform_and_report_complete_coverage(tmp_path):
    run = essc("conformance", "--city", "320400", "--report", str(tmp_path))
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads((tmp_path / "conformance-320400.json").read_text(encoding="utf-8"))
    assert report["verdict"] == "pass" and report["complete"] and report["sides"][1] == "mock dialect soap-1.1"


def test_committed_cassettes_hold_no_personal_data():
    files = list(CASSETTES.glob("*.json"))
    assert len(files) >= 8
    for path in files:
        assert leaks(path.read_text(encoding="utf-8")) == [], path.name


def test_a_changed_answer_fails_naming_the_cassette_and_the_field(tmp_path):
    folder = tmp_path / "cassettes"
    shutil.copytree(CASSETTES, folder)
    path = next(folder.glob("*-read_card-ok.json"))
    data = json.loads(path.read_text(encoding="utf-8"))
    wire = data["wire"][0]["answer"]
    wire["body"] = wire["body"].replace("<CardStatus>01</CardStatus>", "<CardStatus>02</CardStatus>")
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    run = essc("conformance", "--city", "320400", "--cassettes", str(folder))
    assert run.returncode == 1
    assert f"MISMATCH {path.name} read_card" in run.stdout
    assert "RspBody.CardStatus: the mock answers '01', the city answered '02'" in run.stdout


def test_nothing_to_check_is_not_a_pass(tmp_path):
    run = essc("conformance", "--city", "320400", "--cassettes", str(tmp_path))
    assert run.returncode == 2 and "nothing was checked" in run.stderr
    assert essc("conformance", "--city", "999999").returncode != 0
