"""Unit tests of the 四川 plugin (gm-json), HTTP mocked with ``responses``.

Fixtures hold the upstream payloads as docs/dialects.md describes them (synthetic citizen data):
``<name>.json`` is ``{"code", "message", "payload"}`` before sealing; the helper ``seal`` turns it
into the wire answer (SM4 ``encryptData``, SM3 ``signData``) and ``card_query.sealed.json`` pins
one such raw answer byte for byte."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import responses

import essc.plugins.sichuan as plugin
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
from essc.core.signing import sm3_hex, sm4_decrypt, sm4_encrypt
from essc.plugins.sichuan.adapter import SichuanAdapter

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = Path(plugin.__file__).parent / "manifest.json"
BASE = "http://city.test"
CITIES = ("510100",)
CITY = "510100"
APP_ID, KEY, SECRET = "essc-mock", b"essc-mock-sm4key", "mock-gm-secret"

ID, NAME, CARD_NO, PHONE = "11010119900307803X", "张三", "K13822465", "13812345678"
FACE, CODE = "live-9d8c7b6a5f4e", "123456"
PERSONAL = (ID, NAME, CARD_NO, PHONE, FACE, CODE)

REQUESTS = {
    "read_card": {"aac002": ID, "aac003": NAME, "aab301": CITY},
    "verify_identity": {"aac002": ID, "aab301": CITY, "face_token": FACE, "factor": "sms", "code": CODE},
    "activate": {"aac002": ID, "aab301": CITY, "verify_id": "yz-8e2d4c6a1f3b", "channel": "bank.icbc"},
    "list_services": {"aab301": CITY},
    "health": {"aab301": CITY},
}
METHODS = {"read_card": "card.query", "verify_identity": "identity.verify", "activate": "card.sign",
           "list_services": "service.list", "health": "health"}


# --- helpers ------------------------------------------------------------------------------------
def context(**credentials: str) -> PluginContext:
    return PluginContext(name="sichuan", version="1.0.0", cities=CITIES, base_url=BASE, credentials=credentials,
                         timeouts=Timeouts(1, 1, 2, 1), logger=get_logger("test.sichuan"))


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


ERRORS = fixture("errors.json")


def seal(answer: dict, *, key: bytes = KEY, secret: str = SECRET) -> dict:
    """The wire answer of ``{"code", "message", "payload"}``, sealed as docs/dialects.md says."""
    encrypted = sm4_encrypt(key, json.dumps(answer["payload"]).encode())
    return {"code": answer["code"], "message": answer["message"], "encryptData": encrypted,
            "signData": sm3_hex(str(answer["code"]) + encrypted + secret)}


def mock(rsps: responses.RequestsMock, operation: str, *, status: int = 200, body=None, **kwargs) -> None:
    if isinstance(body, (dict, list)):
        kwargs["json"] = body
    elif body is not None:
        kwargs["body"] = body
    rsps.add("POST", f"{BASE}/gm/api/{METHODS[operation]}", status=status, **kwargs)


def sent_payload(rsps: responses.RequestsMock, index: int = 0, *, app_id: str = APP_ID, key: bytes = KEY,
                 secret: str = SECRET) -> dict:
    """The decrypted payload of a sent request, after checking the envelope and its signData."""
    envelope = json.loads(rsps.calls[index].request.body)
    assert set(envelope) == {"appId", "timestamp", "encryptData", "signData"}
    assert envelope["appId"] == app_id
    assert abs(int(envelope["timestamp"]) - time.time() * 1000) < 5000
    assert envelope["signData"] == sm3_hex(app_id + envelope["timestamp"] + envelope["encryptData"] + secret)
    return json.loads(sm4_decrypt(key, envelope["encryptData"]))




@pytest.fixture
def adapter() -> SichuanAdapter:
    return SichuanAdapter(context())



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
    assert isinstance(registered[CITY], SichuanAdapter)


def test_a_misconfigured_sm4_key_is_refused_at_start():
    with pytest.raises(ValueError, match="16 bytes"):
        SichuanAdapter(context(sm4_key="too-short"))


# --- happy paths --------------------------------------------------------------------------------
def test_read_card_from_the_raw_sealed_answer(adapter, rsps):
    raw = fixture("card_query.sealed.json")
    assert raw == seal(fixture("card_query.json"))  # the fixture is exactly what the dialect puts on the wire
    mock(rsps, "read_card", body=raw)
    result = adapter.read_card(REQUESTS["read_card"])
    assert sent_payload(rsps) == {"sfzh": ID, "xm": NAME, "xzqh": CITY}
    assert result == {"aac002": ID, "aac003": NAME, "aab301": CITY, "aaz500": CARD_NO,
                      "aaz501": "3a9f0c2e7b6d4e1f8a5b2c3d4e5f6a7b", "aaz502": "normal", "aaz508": "3",
                      "aae008": "中国建设银行", "aac067": PHONE}
    assert_valid(result, "read_card")


def test_read_card_omits_empty_optional_fields(adapter, rsps):
    mock(rsps, "read_card", body=seal(fixture("card_query_minimal.json")))
    result = adapter.read_card(REQUESTS["read_card"])
    assert result == {"aac002": ID, "aac003": NAME, "aab301": CITY, "aaz500": CARD_NO, "aaz502": "sealed",
                      "aaz508": "2"}
    assert_valid(result, "read_card")


@pytest.mark.parametrize("wire, status", [("正常", "normal"), ("挂失", "reported_lost"), ("封存", "sealed"),
                                          ("注销", "cancelled"), ("锁定", "locked")])
def test_read_card_normalises_every_status(adapter, rsps, wire, status):
    answer = fixture("card_query.json")
    answer["payload"]["kzt"] = wire
    mock(rsps, "read_card", body=seal(answer))
    assert adapter.read_card(REQUESTS["read_card"])["aaz502"] == status


@pytest.mark.parametrize("factor, code", [("sms", CODE), ("password", "147258")])
def test_verify_identity(adapter, rsps, factor, code):
    mock(rsps, "verify_identity", body=seal(fixture("identity_verify.json")))
    result = adapter.verify_identity(dict(REQUESTS["verify_identity"], factor=factor, code=code))
    assert sent_payload(rsps) == {"sfzh": ID, "xzqh": CITY, "rlToken": FACE, "yzlx": factor, "yzm": code}
    assert result == {"verified": True, "verify_id": "yz-8e2d4c6a1f3b", "factor": factor}
    assert_valid(result, "verify_identity")


@pytest.mark.parametrize("sign_level", [None, 1, 2])
def test_activate(adapter, rsps, sign_level):
    answer = fixture("card_sign.json")
    answer["payload"]["qydj"] = sign_level or 1
    mock(rsps, "activate", body=seal(answer))
    request = dict(REQUESTS["activate"])
    if sign_level is not None:
        request["sign_level"] = sign_level
    result = adapter.activate(request)
    assert sent_payload(rsps) == {"sfzh": ID, "xzqh": CITY, "yzid": "yz-8e2d4c6a1f3b", "qd": "bank.icbc",
                                  "qydj": sign_level or 1}
    assert result == {"aab301": CITY, "sign_no": "SC510100202611250001", "sign_seq": "1",
                      "sign_level": sign_level or 1, "valid_until": "20361124", "sign_date": "20261125"}
    assert_valid(result, "activate")


def test_list_services_skips_unknown_codes(adapter, rsps):
    mock(rsps, "list_services", body=seal(fixture("service_list.json")))
    result = adapter.list_services(REQUESTS["list_services"])
    assert sent_payload(rsps) == {"xzqh": CITY}
    assert result == {"aab301": CITY, "services": [
        {"code": "identity_login", "name": "身份认证"}, {"code": "social_security", "name": "社保查询"},
        {"code": "employment", "name": "就业服务"}, {"code": "payment", "name": "移动支付"},
        {"code": "medical_bill", "name": "医保结算"}]}
    assert_valid(result, "list_services")


def test_health(adapter, rsps):
    mock(rsps, "health", body=seal(fixture("health.json")))
    result = adapter.health(REQUESTS["health"])
    assert sent_payload(rsps) == {"xzqh": CITY}
    assert result["status"] == "up" and result["latency_ms"] >= 0
    assert_valid(result, "health")


@pytest.mark.parametrize("wire, status", [("down", "down"), ("busy", "degraded")])
def test_health_reports_what_the_city_says(adapter, rsps, wire, status):
    mock(rsps, "health", body=seal({"code": 0, "message": "成功", "payload": {"zt": wire}}))
    result = adapter.health(REQUESTS["health"])
    assert result["status"] == status
    assert_valid(result, "health")


def test_configured_credentials_are_used(rsps):
    key, secret = b"prod-sm4-key-16b", "prod-secret"
    mock(rsps, "health", body=seal(fixture("health.json"), key=key, secret=secret))
    adapter = SichuanAdapter(context(app_id="sc-prod", sm4_key=key.decode(), sm3_secret=secret))
    assert adapter.health(REQUESTS["health"])["status"] == "up"
    assert sent_payload(rsps, app_id="sc-prod", key=key, secret=secret) == {"xzqh": CITY}


# --- errors -------------------------------------------------------------------------------------
def _card_status(wire: str) -> dict:
    return seal(dict(ERRORS["card_status"], payload={"kzt": wire}))


def _answer(body, status: int = 200, **extra) -> dict:
    return {"status": status, "body": body, **extra}


def _tampered(answer: dict) -> dict:
    body = seal(answer)
    body["signData"] = sm3_hex("forged")
    return body


def _undecryptable() -> dict:
    encrypted = "bm90IFNNNCBjaXBoZXJ0ZXh0IQ=="  # valid base64, not an SM4 block
    return {"code": 0, "message": "成功", "encryptData": encrypted, "signData": sm3_hex("0" + encrypted + SECRET)}


ERROR_CASES = [
    # id, operation, upstream answer, expected error type, expected details
    ("not_opened", "read_card", _answer(seal(ERRORS["not_opened"])), CityNotOpened, {}),
    ("not_synced", "read_card", _answer(seal(ERRORS["not_synced"])), RecordNotSynced, {"retry_after": 86400}),
    *[(f"card_status_{status}", "activate", _answer(_card_status(wire)), CardStatusAbnormal, {"status": status})
      for wire, status in [("挂失", "reported_lost"), ("封存", "sealed"), ("注销", "cancelled"), ("锁定", "locked")]],
    ("card_status_unknown", "activate", _answer(_card_status("冻结")), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("identity_mismatch", "verify_identity", _answer(seal(ERRORS["identity_mismatch"])), IdentityMismatch, {}),
    ("yzid_invalid", "activate", _answer(seal(ERRORS["yzid_invalid"])), IdentityMismatch, {}),
    ("bad_sign_data", "read_card", _answer(seal(ERRORS["bad_sign_data"])), ContractViolation,
     {"rule": "city-rejected-request", "hook": "read_card"}),
    ("bad_sign_data_other_secret", "read_card", _answer(seal(ERRORS["bad_sign_data"], secret="their-secret")),
     ContractViolation, {"rule": "city-rejected-request"}),
    ("undecryptable_request", "verify_identity", _answer(seal(ERRORS["undecryptable"])), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("bad_field", "read_card", _answer(seal(ERRORS["bad_field"])), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("unknown_city", "list_services", _answer(seal(ERRORS["unknown_city"])), ContractViolation,
     {"rule": "city-rejected-request"}),
    ("unknown_result_code", "read_card", _answer(seal(ERRORS["unknown_code"])), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("answer_sign_data_forged", "read_card", _answer(_tampered(fixture("card_query.json"))), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("error_sign_data_forged", "read_card", _answer(_tampered(ERRORS["not_opened"])), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("answer_undecryptable", "health", _answer(_undecryptable()), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("payload_not_object", "health", _answer(seal(ERRORS["payload_not_object"])), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("code_missing", "health", _answer({"message": "?", "encryptData": "", "signData": ""}), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("not_json", "read_card", _answer("<html>oops</html>"), UpstreamUnavailable, {"reason": "malformed_response"}),
    ("missing_key", "read_card", _answer(seal(ERRORS["card_without_number"])), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("unknown_card_status", "read_card", _answer(seal(ERRORS["card_unknown_status"])), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("value_breaks_schema", "read_card", _answer(seal(ERRORS["card_bad_phone"])), UpstreamUnavailable,
     {"reason": "malformed_response"}),
    ("bad_date", "activate", _answer(seal(ERRORS["sign_bad_date"])), UpstreamUnavailable,
     {"reason": "malformed_response"}),
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
    mock(rsps, "read_card", body=seal(ERRORS["bad_field"]))
    with pytest.raises(ContractViolation) as info:
        adapter.read_card(REQUESTS["read_card"])
    assert "sfzh" in str(info.value)


def test_activate_is_not_retried_but_reads_are(adapter, rsps):
    mock(rsps, "activate", status=503, body="busy")
    with pytest.raises(UpstreamUnavailable):
        adapter.activate(REQUESTS["activate"])
    assert len(rsps.calls) == 1
    mock(rsps, "read_card", status=503, body="busy")
    with pytest.raises(UpstreamUnavailable):
        adapter.read_card(REQUESTS["read_card"])
    assert len(rsps.calls) == 3  # 1 activate + 2 read_card attempts (retries: 1)
