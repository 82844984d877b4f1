"""Unit tests of the 浙江 plugin (rest-json), HTTP mocked with ``responses``.

Fixtures hold raw upstream answers as docs/dialects.md describes them (synthetic citizen data)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import responses

import essc.plugins.zhejiang as plugin
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
from essc.plugins.zhejiang.adapter import ZhejiangAdapter

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = Path(plugin.__file__).parent / "manifest.json"
BASE = "http://city.test"
CITIES = ("330100", "330500")
CITY = "330100"

ID, NAME, CARD_NO, PHONE = "11010119900307803X", "张三", "K13822465", "13812345678"
FACE, CODE = "live-9d8c7b6a5f4e", "123456"
PERSONAL = (ID, NAME, CARD_NO, PHONE, FACE, CODE)

REQUESTS = {
    "read_card": {"aac002": ID, "aac003": NAME, "aab301": CITY},
    "verify_identity": {"aac002": ID, "aab301": CITY, "face_token": FACE, "factor": "sms", "code": CODE},
    "activate": {"aac002": ID, "aab301": CITY, "verify_id": "tkt-7f3c9a1e5b2d", "channel": "alipay"},
    "list_services": {"aab301": CITY},
    "health": {"aab301": CITY},
}
ROUTES = {
    "read_card": ("POST", "/rest/v1/cards/query"),
    "verify_identity": ("POST", "/rest/v1/identity/verify"),
    "activate": ("POST", "/rest/v1/credentials"),
    "list_services": ("GET", f"/rest/v1/cities/{CITY}/services"),
    "health": ("GET", "/rest/v1/health"),
}


# --- helpers ------------------------------------------------------------------------------------
def context(**credentials: str) -> PluginContext:
    return PluginContext(name="zhejiang", version="1.0.0", cities=CITIES, base_url=BASE, credentials=credentials,
                         timeouts=Timeouts(1, 1, 2, 1), logger=get_logger("test.zhejiang"))


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


ERRORS = fixture("errors.json")


def mock(rsps: responses.RequestsMock, operation: str, *, status: int = 200, body=None, **kwargs) -> None:
    method, path = ROUTES[operation]
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    elif body is not None:
        kwargs["body"] = body
    rsps.add(method, BASE + path, status=status, **kwargs)


def sent_json(rsps: responses.RequestsMock, index: int = 0) -> dict:
    return json.loads(rsps.calls[index].request.body)




@pytest.fixture
def adapter() -> ZhejiangAdapter:
    return ZhejiangAdapter(context())



# --- manifest and hook --------------------------------------------------------------------------
def test_manifest_is_valid():
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert validator("manifest").problems(manifest) == []
    assert manifest["name"] == MANIFEST.parent.name
    assert [c["code"] for c in manifest["cities"]] == list(CITIES)


def test_hook_registers_one_adapter_for_every_city():
    registered = {}
    plugin.essc_register_adapters(register=registered.__setitem__, context=context())
    assert set(registered) == set(CITIES)
    assert len({id(a) for a in registered.values()}) == 1
    assert isinstance(registered[CITY], ZhejiangAdapter)


# --- happy paths --------------------------------------------------------------------------------
def test_read_card(adapter, rsps):
    mock(rsps, "read_card", body=fixture("card_query.json"))
    result = adapter.read_card(REQUESTS["read_card"])
    request = rsps.calls[0].request
    assert request.headers["Authorization"] == "Bearer mock-rest-token"
    assert sent_json(rsps) == {"cityCode": CITY, "idNumber": ID, "name": NAME}
    assert result == {"aac002": ID, "aac003": NAME, "aab301": CITY, "aaz500": CARD_NO,
                      "aaz501": "3a9f0c2e7b6d4e1f8a5b2c3d4e5f6a7b", "aaz502": "normal", "aaz508": "3",
                      "aae008": "中国工商银行", "aac067": PHONE}
    assert_valid(result, "read_card")


def test_read_card_omits_empty_optional_fields(adapter, rsps):
    mock(rsps, "read_card", body=fixture("card_query_minimal.json"))
    result = adapter.read_card(dict(REQUESTS["read_card"], aab301="330500"))
    assert result == {"aac002": ID, "aac003": NAME, "aab301": "330500", "aaz500": CARD_NO, "aaz502": "sealed",
                      "aaz508": "2"}
    assert sent_json(rsps)["cityCode"] == "330500"
    assert_valid(result, "read_card")


@pytest.mark.parametrize("wire, status", [("ACTIVE", "normal"), ("LOST", "reported_lost"), ("SEALED", "sealed"),
                                          ("CANCELLED", "cancelled"), ("LOCKED", "locked")])
def test_read_card_normalises_every_status(adapter, rsps, wire, status):
    body = fixture("card_query.json")
    body["card"]["status"] = wire
    mock(rsps, "read_card", body=body)
    assert adapter.read_card(REQUESTS["read_card"])["aaz502"] == status


@pytest.mark.parametrize("factor, wire", [("sms", "SMS"), ("password", "PASSWORD")])
def test_verify_identity(adapter, rsps, factor, wire):
    mock(rsps, "verify_identity", body=fixture("identity_verify.json"))
    request = dict(REQUESTS["verify_identity"], factor=factor, code="147258" if factor == "password" else CODE)
    result = adapter.verify_identity(request)
    assert sent_json(rsps) == {"cityCode": CITY, "idNumber": ID, "faceToken": FACE, "factor": wire,
                               "code": request["code"]}
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer mock-rest-token"
    assert result == {"verified": True, "verify_id": "tkt-7f3c9a1e5b2d", "factor": factor}
    assert_valid(result, "verify_identity")


@pytest.mark.parametrize("sign_level", [None, 1, 2])
def test_activate(adapter, rsps, sign_level):
    body = fixture("card_sign.json")
    body["credential"]["level"] = sign_level or 1
    mock(rsps, "activate", status=201, body=body)
    request = dict(REQUESTS["activate"])
    if sign_level is not None:
        request["sign_level"] = sign_level
    result = adapter.activate(request)
    assert sent_json(rsps) == {"cityCode": CITY, "idNumber": ID, "ticket": "tkt-7f3c9a1e5b2d", "channel": "alipay",
                               "level": sign_level or 1}
    assert result == {"aab301": CITY, "signNo": "ZJ330100202611250001", "signSeq": "1", "signLevel": sign_level or 1,
                      "validate": "20361124", "signDate": "20261125"}
    assert_valid(result, "activate")


def test_list_services_skips_unknown_ids(adapter, rsps):
    mock(rsps, "list_services", body=fixture("service_list.json"))
    result = adapter.list_services(REQUESTS["list_services"])
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer mock-rest-token"
    assert result == {"aab301": CITY, "services": [
        {"code": "identity_login", "name": "身份认证"}, {"code": "social_security", "name": "社保查询"},
        {"code": "employment", "name": "就业服务"}, {"code": "payment", "name": "移动支付"},
        {"code": "medical_bill", "name": "医保结算"}]}
    assert_valid(result, "list_services")


def test_health(adapter, rsps):
    mock(rsps, "health", body=fixture("health.json"))
    result = adapter.health(REQUESTS["health"])
    assert rsps.calls[0].request.url == f"{BASE}/rest/v1/health?cityCode={CITY}"
    assert result["status"] == "up" and result["latency_ms"] >= 0
    assert_valid(result, "health")


@pytest.mark.parametrize("wire, status", [("DOWN", "down"), ("MAINTENANCE", "degraded")])
def test_health_reports_what_the_city_says(adapter, rsps, wire, status):
    mock(rsps, "health", body={"status": wire})
    result = adapter.health(REQUESTS["health"])
    assert result["status"] == status
    assert_valid(result, "health")


def test_configured_token_is_used(rsps):
    mock(rsps, "health", body=fixture("health.json"))
    ZhejiangAdapter(context(token="prod-token")).health(REQUESTS["health"])
    assert rsps.calls[0].request.headers["Authorization"] == "Bearer prod-token"


# --- errors -------------------------------------------------------------------------------------
def _card_status(wire: str) -> dict:
    case = json.loads(json.dumps(ERRORS["card_status"]))
    case["body"]["error"]["status"] = wire
    return case


ERROR_CASES = [
    # id, operation, upstream answer, expected error type, expected details
    ("not_opened", "read_card", ERRORS["not_opened"], CityNotOpened, {}),
    ("not_synced", "read_card", ERRORS["not_synced"], RecordNotSynced, {"retry_after": 86400}),
    *[(f"card_{wire.lower()}", "activate", _card_status(wire), CardStatusAbnormal, {"status": status})
      for wire, status in [("LOST", "reported_lost"), ("SEALED", "sealed"), ("CANCELLED", "cancelled"),
                           ("LOCKED", "locked")]],
    ("card_status_unknown", "activate", _card_status("FROZEN"), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("identity_mismatch", "verify_identity", ERRORS["identity_mismatch"], IdentityMismatch, {}),
    ("not_verified", "verify_identity", ERRORS["not_verified"], IdentityMismatch, {}),
    ("ticket_invalid", "activate", ERRORS["ticket_invalid"], IdentityMismatch, {}),
    ("unauthorized", "read_card", ERRORS["unauthorized"], ContractViolation,
     {"rule": "city-rejected-request", "hook": "read_card"}),
    ("unauthorized_no_body", "health", {"status": 401, "body": ""}, ContractViolation,
     {"rule": "city-rejected-request"}),
    ("unknown_city", "list_services", ERRORS["unknown_city"], ContractViolation, {"rule": "city-rejected-request"}),
    ("bad_request", "verify_identity", ERRORS["bad_request"], ContractViolation, {"rule": "city-rejected-request"}),
    ("unknown_error_code", "read_card", ERRORS["unknown_code"], UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("not_json", "read_card", {"status": 200, "body": "<html>oops</html>"}, UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("json_not_object", "health", {"status": 200, "body": ["UP"]}, UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("missing_key", "read_card", ERRORS["card_without_number"], UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("unknown_card_status", "read_card", ERRORS["card_unknown_status"], UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("value_breaks_schema", "read_card", ERRORS["card_bad_phone"], UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("bad_date", "activate", ERRORS["credential_bad_date"], UpstreamUnavailable, {"reason": "malformed_response"}),
    ("http_500", "read_card", {"status": 500, "body": "Internal Server Error"}, UpstreamUnavailable,
     {"reason": "http_5xx", "http_status": 500}),
    ("http_429", "verify_identity", {"status": 429, "body": "", "headers": {"Retry-After": "7"}}, UpstreamUnavailable,
     {"reason": "rate_limited", "retry_after": 7.0}),
]


@pytest.mark.parametrize("operation, answer, error_type, details",
                         [pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES])
def test_upstream_error_is_typed(adapter, rsps, operation, answer, error_type, details):
    mock(rsps, operation, status=answer["status"], body=answer["body"], headers=answer.get("headers"))
    with pytest.raises(error_type) as info:
        getattr(adapter, operation)(REQUESTS[operation])
    err = info.value
    assert type(err) is error_type
    assert err.details["city"] == CITY and err.details["operation"] == operation
    for key, value in details.items():
        assert err.details[key] == value
    assert validator("error").problems(err.to_dict()) == []
    assert_no_personal_data(err, PERSONAL)


def test_bad_request_names_only_our_field(adapter, rsps):
    answer = ERRORS["bad_request"]
    mock(rsps, "verify_identity", status=answer["status"], body=answer["body"])
    with pytest.raises(ContractViolation) as info:
        adapter.verify_identity(REQUESTS["verify_identity"])
    assert "idNumber" in str(info.value)


def test_activate_is_not_retried_but_reads_are(adapter, rsps):
    mock(rsps, "activate", status=503, body="busy")
    with pytest.raises(UpstreamUnavailable):
        adapter.activate(REQUESTS["activate"])
    assert len(rsps.calls) == 1
    mock(rsps, "read_card", status=503, body="busy")
    with pytest.raises(UpstreamUnavailable):
        adapter.read_card(REQUESTS["read_card"])
    assert len(rsps.calls) == 3  # 1 activate + 2 read_card attempts (retries: 1)
