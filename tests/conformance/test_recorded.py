"""Recorded conformance against an independently written fake of 常州's test system
(tests/conformance/fake_changzhou.py, hand-written from the interface document, not from
the spec): record, check the cassettes hold nothing personal, replay against the adapter and
against the mock's dialect; then a wrong field mapping in the spec must fail, naming the field."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

import essc.plugins
from essc.conformance.cassettes import Citizen, leaks, load_cassettes, record, replay_adapter, replay_mock
from essc.core.dialects import dialect, parse_spec
from essc.core.registry import Registry
from essc.core.settings import Settings
from essc.mockserver import create_app
from essc.mockserver.client import MockAdmin
from essc.mockserver.serve import start_in_thread

from .fake_changzhou import CHANNEL, CITIZENS, KEY, FakeChangzhou, serve

CITY = "320400"
PEOPLE = [Citizen("320402199003071235", "钱多多", "normal"), Citizen("320402198505126422", "孙悟净", "reported_lost")]
CREDENTIALS = {"changzhou": {"channel_no": CHANNEL, "sign_key": KEY}}


@pytest.fixture(scope="module")
def fake_city():
    app = FakeChangzhou()
    url, stop = serve(app)
    yield url, app
    stop()


@pytest.fixture(scope="module")
def cassettes(fake_city, tmp_path_factory):
    url, _app = fake_city
    registry = Registry(Settings(base_url=url, credentials=CREDENTIALS, entry_points=False)).setup()
    folder = tmp_path_factory.mktemp("cassettes")
    files = record(registry, CITY, PEOPLE, folder, code="246810", password="135790",
                   spec=dialect("soap-1.1").spec)
    assert files
    return folder


@pytest.fixture(scope="module")
def mock():
    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    yield server.url
    server.stop()


def test_recording_covers_the_happy_path_and_each_business_error(cassettes):
    outcomes = {(c["operation"], c.get("error", {}).get("code", "ok")) for c in load_cassettes(cassettes)}
    assert {("read_card", "ok"), ("verify_identity", "ok"), ("activate", "ok"), ("list_services", "ok"),
            ("health", "ok"), ("verify_identity", "IDENTITY_MISMATCH"), ("activate", "IDENTITY_MISMATCH"),
            ("read_card", "RECORD_NOT_SYNCED")} <= outcomes
    lost = [c for c in load_cassettes(cassettes) if c["label"] == "reported_lost"]
    assert lost and lost[0]["result"]["aaz502"] == "reported_lost"


def test_cassettes_hold_no_personal_data_and_no_secret(cassettes):
    real = [v for p in CITIZENS.items() for v in (p[0], *p[1])] + [KEY, "246810", "135790"]
    for path in cassettes.glob("*.json"):
        text = path.read_text(encoding="utf-8")
        assert leaks(text, secrets=[KEY]) == [], path.name
        for value in real:
            if len(value) > 2:
                assert value not in text, (path.name, value[:3])


def test_the_leak_check_catches_what_it_must():
    assert leaks('{"aac002": "320402199003071235"}')  # a real-looking ID number
    assert leaks('{"aac067": "13912345678"}')
    assert leaks('{"aac003": "钱多多"}')
    assert leaks("<Sign>x</Sign> cz-test-key-2026", secrets=[KEY])
    assert leaks('"face_token": "live-7f3a"')
    assert not leaks('{"aac002": "990000199001010017", "aac003": "测试甲", "aac067": "13000000003"}')
    assert leaks("<Mobile>13912345678</Mobile>") and leaks("手机13912345678")
    # random hex serials (uuid4) may hold 11 digits in a row: no phone number
    assert not leaks("<TransSeq>46784df9fe1147dd8a08d5b60a0aecfd</TransSeq><TransSeq>ab13912345678cd</TransSeq>")


def test_replay_against_the_adapter(cassettes):
    registry = Registry(Settings(base_url="http://cassette.invalid", entry_points=False)).setup()
    assert replay_adapter(registry, CITY, load_cassettes(cassettes), dialect("soap-1.1").spec) == []


def test_replay_against_the_mock_dialect(cassettes, mock):
    admin = MockAdmin(mock)
    admin.reset()
    people = {"normal": admin.citizen(CITY, "normal"), "reported_lost": admin.citizen(CITY, "reported_lost")}
    assert replay_mock(dialect("soap-1.1").spec, mock, load_cassettes(cassettes), people) == []


def wrong_spec():
    data = copy.deepcopy(dialect("soap-1.1").spec.data)
    data["operations"]["read_card"]["response"]["aaz500"] = "RspBody.CardNum"  # the document says CardNo
    return parse_spec(data, "wrong-soap.yaml")


def test_a_wrong_field_mapping_fails_naming_the_field(cassettes, tmp_path, mock, monkeypatch):
    spec = wrong_spec()
    plugin = tmp_path / "plugins" / "changzhou_wrong"
    plugin.mkdir(parents=True)
    manifest = json.loads((Path(essc.plugins.__path__[0]) / "changzhou" / "manifest.json").read_text(encoding="utf-8"))
    manifest.update(name="changzhou_wrong", adapter={"spec": "dialect.yaml"})
    (plugin / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    (plugin / "dialect.yaml").write_text(yaml.safe_dump(spec.data, allow_unicode=True), encoding="utf-8")
    registry = Registry(Settings(base_url="http://cassette.invalid", plugin_dirs=(plugin.parent,),
                                 builtin_plugins=False, entry_points=False)).setup()
    problems = replay_adapter(registry, CITY, load_cassettes(cassettes), spec)
    assert problems and all(p.operation == "read_card" for p in problems)
    assert any("RspBody.CardNum" in p.what for p in problems), [str(p) for p in problems]

    from essc.core.dialects import catalog

    monkeypatch.setattr(catalog.dialect("soap-1.1"), "spec", spec)  # the mock plays the wrong spec too
    server = start_in_thread(create_app({"CLOCK_MODE": "frozen"}))
    try:
        admin = MockAdmin(server.url)
        people = {"normal": admin.citizen(CITY, "normal"), "reported_lost": admin.citizen(CITY, "reported_lost")}
        problems = replay_mock(spec, server.url, load_cassettes(cassettes), people)
    finally:
        server.stop()
    text = "\n".join(str(p) for p in problems)
    assert "RspBody.CardNo: in the recorded answer, missing in the mock's" in text
    assert "RspBody.CardNum: in the mock's answer, not in the recorded one" in text


def test_a_recorded_new_password_sign_number_and_account_hint_are_replaced():
    from essc.conformance import cassettes

    names = cassettes._Pseudonyms()
    cassettes.scrub_request(names, {"aac002": "x", "verify_id": "t", "new_password": "258369"}, "123456", None)
    names.result({"sign_no": "ES0123456789ABCDEF", "account_hint": "6222****1234"})
    text = names.apply('{"newPassword": "258369", "signNo": "ES0123456789ABCDEF", "account": "6222****1234"}')
    assert "258369" not in text and "ES0123456789ABCDEF" not in text and "6222****1234" not in text
    assert cassettes.SYNTHETIC_NEW_PASSWORD in text
