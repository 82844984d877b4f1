"""Unit tests of the 福建 plugin (pinyin-form), HTTP mocked with ``responses``.

Fixtures hold raw upstream answers as docs/dialects.md describes them (synthetic citizen data)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
import responses

import essc.plugins.fujian as plugin
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
from essc.core.signing import hmac_sha256
from essc.plugins.fujian.adapter import FujianAdapter

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = Path(plugin.__file__).parent / "manifest.json"
BASE = "http://city.test"
CITIES = ("350100",)
CITY = "350100"

ID, NAME, CARD_NO, PHONE = "11010119900307803X", "张三", "K13822465", "13812345678"
FACE, CODE = "live-9d8c7b6a5f4e", "123456"
PERSONAL = (ID, NAME, CARD_NO, PHONE, FACE, CODE)

REQUESTS = {
    "read_card": {"aac002": ID, "aac003": NAME, "aab301": CITY},
    "verify_identity": {"aac002": ID, "aab301": CITY, "face_token": FACE, "factor": "sms", "code": CODE},
    "activate": {"aac002": ID, "aab301": CITY, "verify_id": "vid-5c1e8f2a9b3d", "channel": "wechat"},
    "list_services": {"aab301": CITY},
    "health": {"aab301": CITY},
}
PATHS = {
    "read_card": "/pinyin/card/query",
    "verify_identity": "/pinyin/identity/verify",
    "activate": "/pinyin/card/sign",
    "list_services": "/pinyin/service/list",
    "health": "/pinyin/health",
}


# --- helpers ------------------------------------------------------------------------------------
def context(**credentials: str) -> PluginContext:
    return PluginContext(name="fujian", version="1.0.0", cities=CITIES, base_url=BASE, credentials=credentials,
                         timeouts=Timeouts(1, 1, 2, 1), logger=get_logger("test.fujian"))


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


ERRORS = fixture("errors.json")


def mock(rsps: responses.RequestsMock, operation: str, *, status: int = 200, body=None, **kwargs) -> None:
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    elif body is not None:
        kwargs["body"] = body
    rsps.add("POST", BASE + PATHS[operation], status=status, **kwargs)


def sent_form(rsps: responses.RequestsMock, index: int = 0, *, secret: str = "mock-hmac-secret",
              appid: str = "essc-mock") -> dict:
    """The business fields of a sent form, after checking the common fields and the signature."""
    request = rsps.calls[index].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = dict(parse_qsl(request.body, keep_blank_values=True))
    sign = form.pop("sign")
    assert sign == hmac_sha256(form, secret)
    assert form.pop("appid") == appid
    assert abs(int(form.pop("timestamp")) - time.time()) < 5
    assert len(form.pop("nonce")) >= 8
    return form




@pytest.fixture
def adapter() -> FujianAdapter:
    return FujianAdapter(context())



# --- manifest and hook --------------------------------------------------------------------------
def test_manifest_is_valid():
    manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
    assert validator("manifest").problems(manifest) == []
    assert manifest["name"] == MANIFEST.parent.name
    assert [c["code"] for c in manifest["cities"]] == list(CITIES)


def test_hook_registers_the_adapter_for_every_city():
    registered = {}
    plugin.essc_register_adapters(register=registered.__setitem__, context=context())
    assert set(registered) == set(CITIES)
    assert isinstance(registered[CITY], FujianAdapter)


# --- happy paths --------------------------------------------------------------------------------
def test_read_card(adapter, rsps):
    mock(rsps, "read_card", body=fixture("card_query.json"))
    result = adapter.read_card(REQUESTS["read_card"])
    assert sent_form(rsps) == {"aac002": ID, "aac003": NAME, "aab301": CITY}
    assert result == {"aac002": ID, "aac003": NAME, "aab301": CITY, "aaz500": CARD_NO,
                      "aaz501": "3a9f0c2e7b6d4e1f8a5b2c3d4e5f6a7b", "aaz502": "normal", "aaz508": "3",
                      "aae008": "中国银行", "aac067": PHONE}
    assert_valid(result, "read_card")


def test_read_card_omits_empty_optional_fields(adapter, rsps):
    mock(rsps, "read_card", body=fixture("card_query_minimal.json"))
    result = adapter.read_card(REQUESTS["read_card"])
    assert result == {"aac002": ID, "aac003": NAME, "aab301": CITY, "aaz500": CARD_NO, "aaz502": "sealed",
                      "aaz508": "2"}
    assert_valid(result, "read_card")


@pytest.mark.parametrize("wire, status", [("1", "normal"), ("2", "reported_lost"), ("3", "sealed"),
                                          ("4", "cancelled"), ("5", "locked")])
def test_read_card_normalises_every_status(adapter, rsps, wire, status):
    body = fixture("card_query.json")
    body["data"]["aaz502"] = wire
    mock(rsps, "read_card", body=body)
    assert adapter.read_card(REQUESTS["read_card"])["aaz502"] == status


@pytest.mark.parametrize("factor, wire, code", [("sms", "1", CODE), ("password", "2", "147258")])
def test_verify_identity(adapter, rsps, factor, wire, code):
    mock(rsps, "verify_identity", body=fixture("identity_verify.json"))
    result = adapter.verify_identity(dict(REQUESTS["verify_identity"], factor=factor, code=code))
    assert sent_form(rsps) == {"aac002": ID, "aab301": CITY, "face_token": FACE, "verify_type": wire,
                               "verify_code": code}
    assert result == {"verified": True, "verify_id": "vid-5c1e8f2a9b3d", "factor": factor}
    assert_valid(result, "verify_identity")


@pytest.mark.parametrize("sign_level", [None, 1, 2])
def test_activate(adapter, rsps, sign_level):
    body = fixture("card_sign.json")
    body["data"]["signLevel"] = str(sign_level or 1)
    mock(rsps, "activate", body=body)
    request = dict(REQUESTS["activate"])
    if sign_level is not None:
        request["sign_level"] = sign_level
    result = adapter.activate(request)
    assert sent_form(rsps) == {"aac002": ID, "aab301": CITY, "verify_id": "vid-5c1e8f2a9b3d", "channel": "wechat",
                               "sign_level": str(sign_level or 1)}
    assert result == {"aab301": CITY, "signNo": "FJ350100202611250001", "signSeq": "1", "signLevel": sign_level or 1,
                      "validate": "20361124", "signDate": "20261125"}
    assert_valid(result, "activate")


def test_list_services_skips_unknown_codes(adapter, rsps):
    mock(rsps, "list_services", body=fixture("service_list.json"))
    result = adapter.list_services(REQUESTS["list_services"])
    assert sent_form(rsps) == {"aab301": CITY}
    assert result == {"aab301": CITY, "services": [
        {"code": "identity_login", "name": "身份认证"}, {"code": "social_security", "name": "社保查询"},
        {"code": "employment", "name": "就业服务"}, {"code": "payment", "name": "移动支付"},
        {"code": "medical_bill", "name": "医保结算"}]}
    assert_valid(result, "list_services")


def test_health(adapter, rsps):
    mock(rsps, "health", body=fixture("health.json"))
    result = adapter.health(REQUESTS["health"])
    assert sent_form(rsps) == {"aab301": CITY}
    assert result["status"] == "up" and result["latency_ms"] >= 0
    assert_valid(result, "health")


@pytest.mark.parametrize("wire, status", [("down", "down"), ("busy", "degraded")])
def test_health_reports_what_the_city_says(adapter, rsps, wire, status):
    mock(rsps, "health", body={"code": "0000", "msg": "成功", "data": {"status": wire}})
    result = adapter.health(REQUESTS["health"])
    assert result["status"] == status
    assert_valid(result, "health")


def test_configured_credentials_are_used(rsps):
    mock(rsps, "health", body=fixture("health.json"))
    FujianAdapter(context(appid="fj-prod", secret="prod-secret")).health(REQUESTS["health"])
    assert sent_form(rsps, appid="fj-prod", secret="prod-secret") == {"aab301": CITY}


def test_every_request_has_a_fresh_nonce(adapter, rsps):
    mock(rsps, "health", body=fixture("health.json"))
    adapter.health(REQUESTS["health"])
    adapter.health(REQUESTS["health"])
    nonces = {dict(parse_qsl(call.request.body))["nonce"] for call in rsps.calls}
    assert len(nonces) == 2


# --- errors -------------------------------------------------------------------------------------
def _card_status(wire: str) -> dict:
    return dict(ERRORS["card_status"], data={"aaz502": wire})


def _answer(body, status: int = 200, **extra) -> dict:
    return {"status": status, "body": body, **extra}


ERROR_CASES = [
    # id, operation, upstream answer, expected error type, expected details
    ("not_opened", "read_card", _answer(ERRORS["not_opened"]), CityNotOpened, {}),
    ("not_synced", "read_card", _answer(ERRORS["not_synced"]), RecordNotSynced, {"retry_after": 86400}),
    *[(f"card_status_{wire}", "activate", _answer(_card_status(wire)), CardStatusAbnormal, {"status": status})
      for wire, status in [("2", "reported_lost"), ("3", "sealed"), ("4", "cancelled"), ("5", "locked")]],
    ("card_status_unknown", "activate", _answer(_card_status("9")), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("identity_mismatch", "verify_identity", _answer(ERRORS["identity_mismatch"]), IdentityMismatch, {}),
    ("verify_id_invalid", "activate", _answer(ERRORS["verify_id_invalid"]), IdentityMismatch, {}),
    ("bad_signature", "read_card", _answer(ERRORS["bad_signature"]), ContractViolation,
     {"rule": "city-rejected-request", "hook": "read_card"}),
    ("bad_field", "read_card", _answer(ERRORS["bad_field"]), ContractViolation, {"rule": "city-rejected-request"}),
    ("timestamp_off", "verify_identity", _answer(ERRORS["timestamp_off"]), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("unknown_city", "list_services", _answer(ERRORS["unknown_city"]), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("unknown_result_code", "read_card", _answer(ERRORS["unknown_code"]), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("not_json", "read_card", _answer("<html>oops</html>"), UpstreamUnavailable, {"reason": "malformed_response"}),
    ("json_not_object", "health", _answer(["0000"]), UpstreamUnavailable, {"reason": "malformed_response"}),
    ("success_without_data", "health", _answer(ERRORS["success_without_data"]), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("missing_key", "read_card", _answer(ERRORS["card_without_number"]), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("unknown_card_status", "read_card", _answer(ERRORS["card_unknown_status"]), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("value_breaks_schema", "read_card", _answer(ERRORS["card_bad_phone"]), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("bad_date", "activate", _answer(ERRORS["sign_bad_date"]), UpstreamUnavailable, {"reason": "malformed_response"}),
    ("http_500", "read_card", _answer("Internal Server Error", 500), UpstreamUnavailable,
     {"reason": "http_5xx", "http_status": 500}),
    ("http_429", "verify_identity", _answer("", 429, headers={"Retry-After": "7"}), UpstreamUnavailable,
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


def test_bad_field_names_only_our_field(adapter, rsps):
    mock(rsps, "read_card", body=ERRORS["bad_field"])
    with pytest.raises(ContractViolation) as info:
        adapter.read_card(REQUESTS["read_card"])
    assert "aac002" in str(info.value)


def test_activate_is_not_retried_but_reads_are(adapter, rsps):
    mock(rsps, "activate", status=503, body="busy")
    with pytest.raises(UpstreamUnavailable):
        adapter.activate(REQUESTS["activate"])
    assert len(rsps.calls) == 1
    mock(rsps, "read_card", status=503, body="busy")
    with pytest.raises(UpstreamUnavailable):
        adapter.read_card(REQUESTS["read_card"])
    assert len(rsps.calls) == 3  # 1 activate + 2 read_card attempts (retries: 1)
