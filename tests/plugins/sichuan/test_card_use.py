"""Unit tests of the 四川 plugin's operations of contract 1.2 (gm-json, docs/dialects.md "gm-json"):
what goes on the wire, the contract answers, and each new failure kind as its typed error."""
from __future__ import annotations

import json
import time

import pytest
import responses

from essc.conformance.testing import assert_no_personal_data, assert_valid
from essc.core.errors import (
    CardStatusAbnormal,
    CredentialNotFound,
    IdentityMismatch,
    SettlementConflict,
    SettlementNotFound,
    UpstreamUnavailable,
)
from essc.core.masking import get_logger
from essc.core.settings import PluginContext, Timeouts
from essc.core.signing import sm3_hex, sm4_decrypt, sm4_encrypt
from essc.plugins.sichuan.adapter import SichuanAdapter

BASE, CITY = "http://city.test", "510100"
KEY, SECRET = b"essc-mock-sm4key", "mock-gm-secret"
ID, SIGN_NO, TICKET, NEW_PASSWORD = "11010119900307803X", "SC510100202611250001", "yz-8e2d4c6a1f3b", "258369"
ITEMS = [{"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_cents": 150000, "quantity": 2}]
BILL = {"action": "pre_settle", "settlement_id": "ST20261125000001", "aac002": ID, "aab301": CITY,
        "sign_no": SIGN_NO, "busi_type": "04", "hospital": {"code": "H51010001", "name": "四川大学华西医院"},
        "items": ITEMS}


@pytest.fixture
def adapter() -> SichuanAdapter:
    return SichuanAdapter(PluginContext(name="sichuan", version="1.0.0", cities=(CITY,), base_url=BASE,
                                        credentials={}, timeouts=Timeouts(1, 1, 2, 1),
                                        logger=get_logger("test.sichuan")))


def answer(rsps: responses.RequestsMock, method: str, payload: dict, code: int = 0) -> None:
    encrypted = sm4_encrypt(KEY, json.dumps(payload).encode())
    rsps.add("POST", f"{BASE}/gm/api/{method}", json={"code": code, "message": "", "encryptData": encrypted,
                                                      "signData": sm3_hex(str(code) + encrypted + SECRET)})


def sent(rsps: responses.RequestsMock) -> dict:
    envelope = json.loads(rsps.calls[0].request.body)
    assert abs(int(envelope["timestamp"]) - time.time() * 1000) < 5000
    return json.loads(sm4_decrypt(KEY, envelope["encryptData"]))


def test_card_status(adapter, rsps):
    answer(rsps, "card.status", {"xzqh": CITY, "kzt": "挂失", "cxsj": "20261125103001", "qydj": 2})
    result = adapter.card_status({"aac002": ID, "aab301": CITY, "sign_no": SIGN_NO})
    assert sent(rsps) == {"sfzh": ID, "xzqh": CITY, "qyh": SIGN_NO}
    assert result == {"aab301": CITY, "aaz502": "reported_lost", "checked_at": "20261125103001", "sign_level": 2}
    assert_valid(result, "card_status")


def test_enable_payment(adapter, rsps):
    answer(rsps, "card.pay.enable", {"xzqh": CITY, "qyh": SIGN_NO, "qydj": 2, "yh": "中国建设银行",
                                     "zhym": "6217****5678"})
    result = adapter.enable_payment({"aac002": ID, "aab301": CITY, "sign_no": SIGN_NO, "verify_id": TICKET,
                                     "channel": "bank.ccb"})
    assert sent(rsps) == {"sfzh": ID, "xzqh": CITY, "qyh": SIGN_NO, "yzid": TICKET, "qd": "bank.ccb"}
    assert result == {"aab301": CITY, "sign_no": SIGN_NO, "sign_level": 2, "aae008": "中国建设银行",
                      "account_hint": "6217****5678"}
    assert_valid(result, "enable_payment")


def test_a_full_account_number_is_refused(adapter, rsps):
    answer(rsps, "card.pay.enable", {"xzqh": CITY, "qyh": SIGN_NO, "qydj": 2, "yh": "中国建设银行",
                                     "zhym": "6217001234567895678"})
    with pytest.raises(UpstreamUnavailable) as err:
        adapter.enable_payment({"aac002": ID, "aab301": CITY, "sign_no": SIGN_NO, "verify_id": TICKET,
                                "channel": "bank.ccb"})
    assert err.value.reason == "malformed_response" and "6217001234567895678" not in json.dumps(err.value.to_dict())


def test_reset_password_sends_the_password_and_never_shows_it(adapter, rsps, caplog):
    answer(rsps, "password.reset", {"xzqh": CITY, "czrq": "20261125"})
    result = adapter.reset_password({"aac002": ID, "aab301": CITY, "verify_id": TICKET,
                                     "new_password": NEW_PASSWORD})
    assert sent(rsps) == {"sfzh": ID, "xzqh": CITY, "yzid": TICKET, "xmm": NEW_PASSWORD}
    assert result == {"aab301": CITY, "reset_date": "20261125"}
    assert NEW_PASSWORD not in caplog.text


def test_query_contributions(adapter, rsps):
    answer(rsps, "contribution.query", {"xzqh": CITY, "jfjl": [
        {"ny": "202401", "xz": "110", "jfjs": 800000, "jfje": 192000, "zt": "yj"},
        {"ny": "202402", "xz": "310", "jfjs": 800000, "jfje": 0, "zt": "qj"}]})
    result = adapter.query_contributions({"aac002": ID, "aab301": CITY, "from_month": "202401",
                                          "to_month": "202402"})
    assert sent(rsps) == {"sfzh": ID, "xzqh": CITY, "ksny": "202401", "jsny": "202402"}
    assert result["months"] == [
        {"month": "202401", "insurance": "110", "base_cents": 800000, "paid_cents": 192000, "status": "paid"},
        {"month": "202402", "insurance": "310", "base_cents": 800000, "paid_cents": 0, "status": "owed"}]
    assert_valid(result, "query_contributions")


def test_settle_medical(adapter, rsps):
    answer(rsps, "medical.settle", {"jsid": BILL["settlement_id"], "jszt": "01", "zje": 150000, "tcje": 45500,
                                    "zfje": 104500, "lsh": "JS0001"})
    result = adapter.settle_medical(BILL)
    assert sent(rsps) == {"czlx": "yjs", "jsid": BILL["settlement_id"], "sfzh": ID, "xzqh": CITY, "qyh": SIGN_NO,
                          "ywlx": "04", "jgbm": "H51010001", "jgmc": "四川大学华西医院",
                          "fymx": [{"xmbm": "XA01", "xmmc": "阿莫西林胶囊", "lb": "drug", "je": 150000, "sl": 2}]}
    assert result == {"settlement_id": BILL["settlement_id"], "state": "pre_settled", "total_cents": 150000,
                      "fund_cents": 45500, "self_pay_cents": 104500, "city_ref": "JS0001"}
    assert_valid(result, "settle_medical")


@pytest.mark.parametrize(("method", "operation", "request_", "code", "payload", "error", "details"), [
    ("medical.settle", "settle_medical", dict(BILL, action="confirm"), 50108, {"jszt": "03"}, SettlementConflict,
     {"state": "reversed"}),
    ("medical.settle", "settle_medical", dict(BILL, action="confirm"), 50107, {}, SettlementNotFound, {}),
    ("card.status", "card_status", {"aac002": ID, "aab301": CITY, "sign_no": SIGN_NO}, 50106, {},
     CredentialNotFound, {}),
    ("card.pay.enable", "enable_payment", {"aac002": ID, "aab301": CITY, "sign_no": SIGN_NO, "verify_id": TICKET,
                                           "channel": "bank.ccb"}, 50105, {}, IdentityMismatch, {}),
    ("card.pay.enable", "enable_payment", {"aac002": ID, "aab301": CITY, "sign_no": SIGN_NO, "verify_id": TICKET,
                                           "channel": "bank.ccb"}, 50103, {"kzt": "封存"}, CardStatusAbnormal,
     {"status": "sealed"}),
    ("password.reset", "reset_password", {"aac002": ID, "aab301": CITY, "verify_id": TICKET,
                                          "new_password": NEW_PASSWORD}, 50103, {"kzt": "注销"}, CardStatusAbnormal,
     {"status": "cancelled"}),
], ids=["conflict", "not_found", "credential", "ticket", "abnormal_payment", "abnormal_reset"])
def test_new_failure_kinds_are_typed(adapter, rsps, method, operation, request_, code, payload, error, details):
    answer(rsps, method, payload, code)
    with pytest.raises(error) as err:
        getattr(adapter, operation)(request_)
    assert details.items() <= err.value.details.items()
    assert_no_personal_data(err.value, (ID, SIGN_NO, NEW_PASSWORD))
