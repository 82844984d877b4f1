"""Unit tests of the MOHRSS plugin (xml-envelope), HTTP mocked with ``responses``.

Fixtures hold raw gateway answers as docs/dialects.md describes them (synthetic citizen data);
``ECHO-MSG-ID`` / ``ECHO-MSG-TYPE`` in them stand for the MsgID / MsgType the gateway echoes from
the request, filled in by the mock callback."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import responses
from defusedxml import ElementTree

import essc.plugins.mohrss as plugin
from essc.conformance.testing import assert_no_personal_data, assert_valid
from essc.core.errors import (
    CardStatusAbnormal,
    CityNotOpened,
    ContractViolation,
    IdentityMismatch,
    RecordNotSynced,
    UpstreamUnavailable,
)
from essc.core.masking import get_logger
from essc.core.schemas import validator
from essc.core.settings import PluginContext, Timeouts
from essc.core.signing import canonical_string, sm3_hex
from essc.plugins.mohrss.adapter import MohrssAdapter

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = Path(plugin.__file__).parent / "manifest.json"
BASE = "http://city.test"
GATEWAY = BASE + "/xml/gateway"
CITIES = ("370200", "440300", "659012", "110000", "310000", "650100", "460300", "810000", "820000")
NOT_OPENED = {"460300", "810000", "820000"}
CITY = "370200"
SENDER_ID, KEY = "essc-mock", "mock-xml-key"

ID, NAME, CARD_NO, PHONE = "11010119900307803X", "张三", "K13822465", "13812345678"
FACE, CODE = "live-9d8c7b6a5f4e", "123456"
PERSONAL = (ID, NAME, CARD_NO, PHONE, FACE, CODE)

REQUESTS = {
    "read_card": {"aac002": ID, "aac003": NAME, "aab301": CITY},
    "verify_identity": {"aac002": ID, "aab301": CITY, "face_token": FACE, "factor": "sms", "code": CODE},
    "activate": {"aac002": ID, "aab301": CITY, "verify_id": "vid-2b7e4f9c1a6d", "channel": "app12333"},
    "list_services": {"aab301": CITY},
    "health": {"aab301": CITY},
}
MSG_TYPES = {"read_card": "CARD_QUERY", "verify_identity": "IDENTITY_VERIFY", "activate": "CARD_SIGN",
             "list_services": "SERVICE_LIST", "health": "HEALTH"}


# --- helpers ------------------------------------------------------------------------------------
def context(**credentials: str) -> PluginContext:
    return PluginContext(name="mohrss", version="1.0.0", cities=CITIES, base_url=BASE, credentials=credentials,
                         timeouts=Timeouts(1, 1, 2, 1), logger=get_logger("test.mohrss"))


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def mock(rsps: responses.RequestsMock, text: str, *, status: int = 200, headers: dict | None = None,
         msg_id: str | None = None, msg_type: str | None = None) -> None:
    """Answer every gateway POST with ``text``, echoing the request's MsgID and MsgType (or the given ones)."""
    def answer(request):
        header = ElementTree.fromstring(request.body).find("HEADER")
        body = (text.replace("ECHO-MSG-ID", msg_id or header.findtext("MsgID"))
                .replace("ECHO-MSG-TYPE", msg_type or header.findtext("MsgType")))
        return status, dict(headers or {}), body.encode("utf-8")

    rsps.add_callback("POST", GATEWAY, callback=answer, content_type="application/xml; charset=utf-8")


def sent_body(rsps: responses.RequestsMock, msg_type: str, index: int = 0, *, sender_id: str = SENDER_ID,
              key: str = KEY) -> dict:
    """BODY of a sent envelope as ``{tag: text}``, after checking the HEADER and its DSIGN."""
    request = rsps.calls[index].request
    assert request.headers["Content-Type"] == "application/xml; charset=utf-8"
    assert request.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ElementTree.fromstring(request.body)
    assert root.tag == "ROOT"
    header = {child.tag: child.text for child in root.find("HEADER")}
    body = {child.tag: child.text for child in root.find("BODY")}
    assert set(header) == {"MsgType", "SenderID", "MsgID", "SendTime", "DSIGN"}
    assert header["MsgType"] == msg_type and header["SenderID"] == sender_id and header["MsgID"]
    assert re.fullmatch(r"20\d{12}", header["SendTime"])
    assert header["DSIGN"] == sm3_hex(msg_type + header["MsgID"] + canonical_string(body) + "&key=" + key)
    return body




@pytest.fixture
def adapter() -> MohrssAdapter:
    return MohrssAdapter(context())



# --- manifest and hook --------------------------------------------------------------------------
def test_manifest_is_valid():
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert validator("manifest").problems(manifest) == []
    assert manifest["name"] == MANIFEST.parent.name
    assert [c["code"] for c in manifest["cities"]] == list(CITIES)
    assert {c["code"] for c in manifest["cities"] if not c["opened"]} == NOT_OPENED


def test_hook_registers_one_adapter_for_every_city():
    registered = {}
    plugin.essc_register_adapters(register=registered.__setitem__, context=context())
    assert set(registered) == set(CITIES)
    assert len({id(a) for a in registered.values()}) == 1
    assert isinstance(registered[CITY], MohrssAdapter)


# --- happy paths --------------------------------------------------------------------------------
def test_read_card(adapter, rsps):
    mock(rsps, fixture("card_query.xml"))
    result = adapter.read_card(REQUESTS["read_card"])
    assert sent_body(rsps, "CARD_QUERY") == {"AAC002": ID, "AAC003": NAME, "AAB301": CITY}
    assert result == {"aac002": ID, "aac003": NAME, "aab301": CITY, "aaz500": CARD_NO,
                      "aaz501": "3a9f0c2e7b6d4e1f8a5b2c3d4e5f6a7b", "aaz502": "normal", "aaz508": "3",
                      "aae008": "中国农业银行", "aac067": PHONE}
    assert_valid(result, "read_card")


def test_read_card_omits_empty_optional_fields(adapter, rsps):
    mock(rsps, fixture("card_query_minimal.xml"))
    result = adapter.read_card(REQUESTS["read_card"])
    assert result == {"aac002": ID, "aac003": NAME, "aab301": CITY, "aaz500": CARD_NO, "aaz502": "sealed",
                      "aaz508": "2"}
    assert_valid(result, "read_card")


@pytest.mark.parametrize("wire, status", [("0", "normal"), ("1", "reported_lost"), ("2", "sealed"),
                                          ("3", "cancelled"), ("4", "locked")])
def test_read_card_normalises_every_status(adapter, rsps, wire, status):
    mock(rsps, fixture("card_query.xml").replace("<AAZ502>0</AAZ502>", f"<AAZ502>{wire}</AAZ502>"))
    assert adapter.read_card(REQUESTS["read_card"])["aaz502"] == status


@pytest.mark.parametrize("factor, wire, code", [("sms", "1", CODE), ("password", "2", "147258")])
def test_verify_identity(adapter, rsps, factor, wire, code):
    mock(rsps, fixture("identity_verify.xml"))
    result = adapter.verify_identity(dict(REQUESTS["verify_identity"], factor=factor, code=code))
    assert sent_body(rsps, "IDENTITY_VERIFY") == {"AAC002": ID, "AAB301": CITY, "FACETOKEN": FACE,
                                                  "VERIFYTYPE": wire, "VERIFYCODE": code}
    assert result == {"verified": True, "verify_id": "vid-2b7e4f9c1a6d", "factor": factor}
    assert_valid(result, "verify_identity")


@pytest.mark.parametrize("sign_level", [None, 1, 2])
def test_activate(adapter, rsps, sign_level):
    level = str(sign_level or 1)
    mock(rsps, fixture("card_sign.xml").replace("<SIGNLEVEL>1</SIGNLEVEL>", f"<SIGNLEVEL>{level}</SIGNLEVEL>"))
    request = dict(REQUESTS["activate"])
    if sign_level is not None:
        request["sign_level"] = sign_level
    result = adapter.activate(request)
    assert sent_body(rsps, "CARD_SIGN") == {"AAC002": ID, "AAB301": CITY, "VERIFYID": "vid-2b7e4f9c1a6d",
                                            "CHANNEL": "app12333", "SIGNLEVEL": level}
    assert result == {"aab301": CITY, "signNo": "MH370200202611250001", "signSeq": "1", "signLevel": int(level),
                      "validate": "20361124", "signDate": "20261125"}
    assert_valid(result, "activate")


def test_list_services_skips_unknown_codes(adapter, rsps):
    mock(rsps, fixture("service_list.xml"))
    result = adapter.list_services(REQUESTS["list_services"])
    assert sent_body(rsps, "SERVICE_LIST") == {"AAB301": CITY}
    assert result == {"aab301": CITY, "services": [
        {"code": "identity_login", "name": "身份认证"}, {"code": "social_security", "name": "社保查询"},
        {"code": "employment", "name": "就业服务"}, {"code": "payment", "name": "移动支付"},
        {"code": "medical_bill", "name": "医保结算"}]}
    assert_valid(result, "list_services")


def test_health(adapter, rsps):
    mock(rsps, fixture("health.xml"))
    result = adapter.health(REQUESTS["health"])
    assert sent_body(rsps, "HEALTH") == {"AAB301": CITY}
    assert result["status"] == "up" and result["latency_ms"] >= 0
    assert_valid(result, "health")


@pytest.mark.parametrize("wire, status", [("DOWN", "down"), ("BUSY", "degraded")])
def test_health_reports_what_the_gateway_says(adapter, rsps, wire, status):
    mock(rsps, fixture("health.xml").replace("<STATUS>UP</STATUS>", f"<STATUS>{wire}</STATUS>"))
    result = adapter.health(REQUESTS["health"])
    assert result["status"] == status
    assert_valid(result, "health")


def test_configured_credentials_are_used(rsps):
    mock(rsps, fixture("health.xml"))
    MohrssAdapter(context(sender_id="mh-prod", dsign_key="prod-key")).health(REQUESTS["health"])
    assert sent_body(rsps, "HEALTH", sender_id="mh-prod", key="prod-key") == {"AAB301": CITY}


def test_every_request_has_a_fresh_msg_id(adapter, rsps):
    mock(rsps, fixture("health.xml"))
    adapter.health(REQUESTS["health"])
    adapter.health(REQUESTS["health"])
    ids = {ElementTree.fromstring(call.request.body).find("HEADER").findtext("MsgID") for call in rsps.calls}
    assert len(ids) == 2


def test_one_adapter_serves_every_city_of_the_gateway(adapter, rsps):
    mock(rsps, fixture("health.xml"))
    for city in ("440300", "659012", "110000"):
        adapter.health({"aab301": city})
    assert [sent_body(rsps, "HEALTH", i)["AAB301"] for i in range(3)] == ["440300", "659012", "110000"]


# --- errors -------------------------------------------------------------------------------------
def _answer(text: str, status: int = 200, **extra) -> dict:
    return {"text": text, "status": status, **extra}


def _card_status(wire: str) -> dict:
    return _answer(fixture("error_90103.xml").replace("<AAZ502>1</AAZ502>", f"<AAZ502>{wire}</AAZ502>"))


ERROR_CASES = [
    # id, operation, upstream answer, expected error type, expected details
    ("not_opened", "read_card", _answer(fixture("error_90101.xml")), CityNotOpened, {}),
    ("not_synced", "read_card", _answer(fixture("error_90102.xml")), RecordNotSynced, {"retry_after": 3600}),
    *[(f"card_status_{status}", "activate", _card_status(wire), CardStatusAbnormal, {"status": status})
      for wire, status in [("1", "reported_lost"), ("2", "sealed"), ("3", "cancelled"), ("4", "locked")]],
    ("card_status_unknown", "activate", _card_status("7"), UpstreamUnavailable, {"reason": "malformed_response"}),
    ("identity_mismatch", "verify_identity", _answer(fixture("error_90104.xml")), IdentityMismatch, {}),
    ("verify_id_invalid", "activate", _answer(fixture("error_90105.xml")), IdentityMismatch, {}),
    ("envelope_not_parseable", "read_card", _answer(fixture("error_99001.xml"), 400), ContractViolation,
     {"rule": "city-rejected-request", "hook": "read_card"}),
    ("bad_dsign", "read_card", _answer(fixture("error_99002.xml")), ContractViolation,
     {"rule": "city-rejected-request", "hook": "read_card"}),
    ("unknown_msg_type", "health", _answer(fixture("error_99003.xml")), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("bad_field", "read_card", _answer(fixture("error_99004.xml")), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("unknown_city", "list_services", _answer(fixture("error_99005.xml")), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("unknown_result_code", "read_card", _answer(fixture("error_unknown_code.xml")), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("msg_id_not_echoed", "read_card", _answer(fixture("card_query.xml"), msg_id="someone-elses-id"),
     UpstreamUnavailable, {"reason": "malformed_response"}),
    ("error_msg_id_not_echoed", "read_card", _answer(fixture("error_90101.xml"), msg_id="someone-elses-id"),
     UpstreamUnavailable, {"reason": "malformed_response"}),
    ("msg_type_not_echoed", "read_card", _answer(fixture("card_query.xml"), msg_type="HEALTH"), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("no_result_code", "health", _answer(fixture("health.xml").replace("<ResultCode>90000</ResultCode>", "")),
     UpstreamUnavailable, {"reason": "malformed_response"}),
    ("no_body", "health", _answer(fixture("health.xml").replace("<BODY><STATUS>UP</STATUS></BODY>", "")),
     UpstreamUnavailable, {"reason": "malformed_response"}),
    ("not_an_envelope", "health", _answer("<html><body>oops</body></html>"), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("not_xml", "read_card", _answer("{\"code\": 0}"), UpstreamUnavailable, {"reason": "malformed_response"}),
    ("missing_key", "read_card", _answer(fixture("card_query.xml").replace("<AAZ500>K13822465</AAZ500>", "")),
     UpstreamUnavailable, {"reason": "malformed_response"}),
    ("value_breaks_schema", "read_card",
     _answer(fixture("card_query.xml").replace("<AAC067>13812345678</AAC067>", "<AAC067>12345</AAC067>")),
     UpstreamUnavailable, {"reason": "malformed_response"}),
    ("bad_date", "activate",
     _answer(fixture("card_sign.xml").replace("<VALIDATE>20361124</VALIDATE>", "<VALIDATE>2036-11-24</VALIDATE>")),
     UpstreamUnavailable, {"reason": "malformed_response"}),
    ("http_500", "read_card", _answer("Internal Server Error", 500), UpstreamUnavailable,
     {"reason": "http_5xx", "http_status": 500}),
    ("http_429", "verify_identity", _answer("", 429, headers={"Retry-After": "7"}), UpstreamUnavailable,
     {"reason": "rate_limited", "retry_after": 7.0}),
]


@pytest.mark.parametrize("operation, answer, error_type, details",
                         [pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES])
def test_upstream_error_is_typed(adapter, rsps, operation, answer, error_type, details):
    mock(rsps, answer["text"], status=answer["status"], headers=answer.get("headers"), msg_id=answer.get("msg_id"),
         msg_type=answer.get("msg_type"))
    with pytest.raises(error_type) as info:
        getattr(adapter, operation)(REQUESTS[operation])
    err = info.value
    assert type(err) is error_type
    assert err.details["city"] == CITY and err.details["operation"] == operation
    for key, value in details.items():
        assert err.details[key] == value
    assert validator("error").problems(err.to_dict()) == []
    assert_no_personal_data(err, PERSONAL)


def test_not_opened_city(adapter, rsps):
    mock(rsps, fixture("error_90101.xml"))
    with pytest.raises(CityNotOpened) as info:
        adapter.read_card(dict(REQUESTS["read_card"], aab301="460300"))
    assert info.value.details["city"] == "460300"
    assert sent_body(rsps, "CARD_QUERY")["AAB301"] == "460300"


def test_bad_field_names_only_our_field(adapter, rsps):
    mock(rsps, fixture("error_99004.xml"))
    with pytest.raises(ContractViolation) as info:
        adapter.read_card(REQUESTS["read_card"])
    assert "AAC002" in str(info.value)


def test_activate_is_not_retried_but_reads_are(adapter, rsps):
    mock(rsps, "busy", status=503)
    with pytest.raises(UpstreamUnavailable):
        adapter.activate(REQUESTS["activate"])
    assert len(rsps.calls) == 1
    with pytest.raises(UpstreamUnavailable):
        adapter.read_card(REQUESTS["read_card"])
    assert len(rsps.calls) == 3  # 1 activate + 2 read_card attempts (retries: 1)
