"""Dialect specs: validation, and both sides derived from one spec.

Every built-in spec dialect runs its derived adapter against the mock twice: once against
the mock's hand-written city side (written independently from the spec), once against the
city side derived from the same spec. Both must give the same contract answers and errors."""
from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from essc.core.dialects import SpecAdapter, SpecError, dialect, dialects, parse_spec
from essc.core.errors import EsscError
from essc.core.masking import get_logger
from essc.core.settings import PluginContext, Timeouts
from essc.mockserver import create_app
from essc.mockserver.client import MockAdmin
from essc.mockserver.serve import start_in_thread

CITIES = {"rest-json": "330100", "pinyin-form": "350100", "xml-envelope": "370200", "soap-1.1": "320400"}


@pytest.fixture(scope="module", params=[False, True], ids=["hand-written-city", "spec-city"])
def mock(request):
    server = start_in_thread(create_app({"CLOCK_MODE": "frozen", "SPEC_CITY_SIDES": request.param}))
    yield MockAdmin(server.url), server.url
    server.stop()


def adapter(name, url, **credentials):
    ctx = PluginContext(name="t", version="1", cities=(CITIES[name],), base_url=url, credentials=credentials,
                        timeouts=Timeouts(1, 2, 3, 1), logger=get_logger("test.dialects"))
    return SpecAdapter(ctx, dialect(name).spec)


def outcome(fn, request):
    try:
        return fn(request)
    except EsscError as err:
        return {"error": err.code, "retry_after": err.details.get("retry_after"), "status": err.details.get("status"),
                "reason": err.details.get("reason")}


@pytest.mark.parametrize("name", sorted(CITIES))
def test_one_spec_gives_both_sides(mock, name):
    admin, url = mock
    admin.reset()
    city, a = CITIES[name], adapter(name, url)
    who = admin.citizens(city, "normal")[0]
    card = a.read_card({"aac002": who["id_number"], "aac003": who["name"], "aab301": city})
    assert card["aac002"] == who["id_number"] and card["aaz502"] == "normal" and card["aab301"] == city
    check = a.verify_identity({"aac002": who["id_number"], "aab301": city, "face_token": "live-x",
                               "factor": "password", "code": "147258"})
    credential = a.activate({"aac002": who["id_number"], "aab301": city, "verify_id": check["verify_id"],
                             "channel": "demo", "sign_level": 2})
    assert credential["sign_level"] == 2 and len(credential["sign_date"]) == 8 and credential["aab301"] == city
    assert [s["code"] for s in a.list_services({"aab301": city})["services"]][0] == "identity_login"
    assert a.health({"aab301": city})["status"] == "up"
    lost = admin.citizens(city, "reported_lost")[0]
    assert a.read_card({"aac002": lost["id_number"], "aac003": lost["name"], "aab301": city})["aaz502"] == \
        "reported_lost"
    unknown = outcome(a.read_card, {"aac002": who["id_number"], "aac003": "王五", "aab301": city})
    assert unknown["error"] == "RECORD_NOT_SYNCED" and unknown["retry_after"] == 86400
    wrong_code = outcome(a.verify_identity, {"aac002": who["id_number"], "aab301": city, "face_token": "live-x",
                                             "factor": "sms", "code": "000000"})
    assert wrong_code["error"] == "IDENTITY_MISMATCH"
    bad_ticket = outcome(a.activate, {"aac002": who["id_number"], "aab301": city, "verify_id": "nope",
                                      "channel": "demo"})
    assert bad_ticket["error"] == "IDENTITY_MISMATCH"
    wrong_secrets = adapter(name, url, **{k: "wrong" for k in dialect(name).spec.credentials})
    refused = outcome(wrong_secrets.health, {"aab301": city})
    assert refused["error"] == "CONTRACT_VIOLATION"  # our credentials are wrong: not an outage to retry


@pytest.mark.parametrize("name", sorted(CITIES))
def test_a_city_that_has_not_opened(mock, name):
    admin, url = mock
    city, a = CITIES[name], adapter(name, url)
    who = admin.citizens(city, "normal")[0]
    admin.set_city(city, mode="not_opened")
    try:
        got = outcome(a.read_card, {"aac002": who["id_number"], "aac003": who["name"], "aab301": city})
    finally:
        admin.reset()
    assert got["error"] == "CITY_NOT_OPENED"


def test_soap_fault_on_500_is_read_not_retried_as_an_outage(mock):
    admin, url = mock
    admin.reset()
    a = adapter("soap-1.1", url, sign_key="forged")
    result = outcome(a.read_card, {"aac002": "11010119900307803X", "aac003": "张三", "aab301": "320400"})
    assert result["error"] == "CONTRACT_VIOLATION"  # a bad-signature fault: our side must be fixed
    [entry] = admin.journal(operation="read_card")  # asked once: not retried as an outage
    assert entry["status"] == 500 and entry["outcome"] == "bad_signature"


def test_essc_dialects_lists_five_with_their_sides():
    out = subprocess.run([sys.executable, "-c", "from essc.cli import main; main()", "dialects", "--json"],
                         capture_output=True, text=True, check=True)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(rows) == {"rest-json", "pinyin-form", "xml-envelope", "gm-json", "soap-1.1"}
    assert rows["soap-1.1"]["platform_side"] == "spec" and rows["soap-1.1"]["city_side"] == "spec"
    assert rows["gm-json"]["platform_side"] == "code"
    assert all(r["origin"] == "builtin" for r in rows.values())


def soap():
    return copy.deepcopy(dialect("soap-1.1").spec.data)


@pytest.mark.parametrize("change, path, words", [
    (lambda d: d["tables"].pop("card_status"), "$.outcomes['1003'].status.table", "no table 'card_status'"),
    (lambda d: d["operations"]["read_card"]["response"].pop("aaz500"), "$.operations.read_card.response",
     "aaz500"),
    (lambda d: d["operations"]["activate"]["request"].update({"ReqBody.X": "nonsense"}),
     "$.operations.activate.request['ReqBody.X']", "not a field"),
    (lambda d: d["transport"].pop("namespace"), "$.transport", "namespace"),
    (lambda d: d["outcomes"]["1001"].update(kind="gone"), "$.outcomes['1001'].kind", "enum"),
    (lambda d: d.update(name="Bad Name"), "$.name", "pattern"),
    (lambda d: d["auth"].update(template=5), "$.auth", "oneOf"),
    (lambda d: d["operations"]["activate"]["response"].pop("sign_date"), "$.operations.activate.response",
     "sign_date"),  # the credential's names of 1.2, or all the deprecated ones: not half of either
])
def test_a_broken_spec_names_where_and_what(change, path, words):
    data = soap()
    change(data)
    with pytest.raises(SpecError) as info:
        parse_spec(data, "soap-test.yaml")
    assert info.value.where == "soap-test.yaml" and info.value.path == path
    assert words in str(info.value)


def test_a_spec_may_still_map_the_deprecated_credential_names():
    data = soap()
    answer = data["operations"]["activate"]["response"]
    for old, new in (("signNo", "sign_no"), ("signSeq", "sign_seq"), ("signLevel", "sign_level"),
                     ("validate", "valid_until"), ("signDate", "sign_date")):
        answer[old] = answer.pop(new)
    assert "signNo" in parse_spec(data, "soap-1.0-names.yaml").operations["activate"].response


def test_builtin_specs_are_valid_yaml_round_trip(tmp_path):
    for name, entry in dialects().items():
        assert entry.spec is not None and entry.spec.name == name
        again = parse_spec(yaml.safe_load(yaml.safe_dump(entry.spec.data, allow_unicode=True)), "again")
        assert set(again.operations) == set(entry.spec.operations)
