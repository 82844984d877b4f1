"""gm-json wire format (docs/dialects.md) against the Flask test client."""
from __future__ import annotations

import datetime as dt

import pytest

from essc.core.idnumber import make_id_number
from essc.core.signing import sm3_hex, sm4_encrypt

CITY = "510100"


def verify(gm, person, **override):
    return gm.call("identity.verify", {"sfzh": person["id_number"], "xzqh": CITY, "rlToken": "live-z", "yzlx": "sms",
                                       "yzm": "123456", **override})


def sign(gm, person, yzid, **override):
    return gm.call("card.sign", {"sfzh": person["id_number"], "xzqh": CITY, "yzid": yzid, "qd": "alipay", "qydj": 1,
                                 **override})


def test_card_query_happy_path(gm, citizen):
    person = citizen(CITY, "reported_lost")
    code, payload = gm.call("card.query", {"sfzh": person["id_number"], "xm": person["name"], "xzqh": CITY})
    assert code == 0
    assert set(payload) == {"sfzh", "xm", "xzqh", "kh", "sbm", "kzt", "gfbb", "yh", "sjh"}
    assert (payload["sfzh"], payload["xm"], payload["kh"]) == (person["id_number"], person["name"], person["card_no"])
    assert payload["kzt"] == "挂失" and payload["gfbb"] in ("2", "3")


def test_verify_sign_services_health(gm, citizen):
    person = citizen(CITY)
    code, payload = verify(gm, person, yzlx="password", yzm="147258")
    assert code == 0
    code, cred = sign(gm, person, payload["yzid"], qydj=2)
    assert code == 0
    assert set(cred) == {"xzqh", "qyh", "qyxh", "qydj", "yxq", "qyrq"}
    assert cred["qydj"] == 2 and dt.datetime.strptime(cred["qyrq"], "%Y%m%d")
    assert sign(gm, person, payload["yzid"]) == (0, cred)
    code, payload = gm.call("service.list", {"xzqh": CITY})
    assert [s["fwdm"] for s in payload["fwlb"]] == ["sfrz", "sbfw", "jyfw", "zfjs", "yljs"]
    assert gm.call("health", {"xzqh": CITY}) == (0, {"zt": "up"})


def test_business_errors(gm, citizen, client):
    person = citizen(CITY)
    unknown = make_id_number("510100", dt.date(2001, 7, 1), 33)
    assert gm.call("card.query", {"sfzh": unknown, "xm": "赵六", "xzqh": CITY}) == (50102, {"retryAfter": 86400})
    assert verify(gm, citizen(CITY, "face_mismatch"))[0] == 50104
    assert sign(gm, person, "VTNOPE")[0] == 50105
    locked = citizen(CITY, "locked")
    assert sign(gm, locked, verify(gm, locked)[1]["yzid"]) == (50103, {"kzt": "锁定"})
    assert gm.call("health", {"xzqh": "370200"}) == (40004, {})
    client.put(f"/__admin/cities/{CITY}", json={"mode": "not_opened"})
    assert gm.call("card.query", {"sfzh": person["id_number"], "xm": person["name"], "xzqh": CITY})[0] == 50101


def test_bad_sign_data_and_app_id(gm):
    assert gm.call("health", {"xzqh": CITY}, secret="wrong")[0] == 40001
    assert gm.call("health", {"xzqh": CITY}, app_id="other")[0] == 40001
    body = gm.envelope({"xzqh": CITY})
    body["timestamp"] = str(int(body["timestamp"]) + 1)
    assert gm.open(gm.raw("health", body))[0] == 40001


def test_undecryptable_payload(gm):
    for encrypted in ("not-base64!!", sm4_encrypt(b"0123456789abcdef", b'{"xzqh": "510100"}'),
                      sm4_encrypt(gm.KEY, b"not json"), sm4_encrypt(gm.KEY, b"[1, 2]")):
        body = {"appId": "essc-mock", "timestamp": "1764037800000", "encryptData": encrypted,
                "signData": sm3_hex("essc-mock" + "1764037800000" + encrypted + gm.SECRET)}
        assert gm.open(gm.raw("health", body))[0] == 40002


@pytest.mark.parametrize("payload, field", [
    ({}, "xzqh"),
    ({"xzqh": "51010"}, "xzqh"),
])
def test_missing_or_invalid_payload_field(gm, payload, field):
    resp = gm.raw("health", gm.envelope(payload))
    assert gm.open(resp)[0] == 40003 and field in resp.get_json()["message"]


def test_missing_envelope_field_and_unknown_method(gm, client):
    body = gm.envelope({"xzqh": CITY})
    del body["signData"]
    resp = gm.raw("health", body)
    assert gm.open(resp)[0] == 40003 and "signData" in resp.get_json()["message"]
    resp = client.post("/gm/api/health", data=b"{oops", content_type="application/json")
    assert gm.open(resp)[0] == 40003
    resp = gm.raw("card.delete", gm.envelope({"xzqh": CITY}))
    assert gm.open(resp)[0] == 40003 and "method" in resp.get_json()["message"]


def test_activate_level_must_be_int(gm, citizen):
    person = citizen(CITY)
    yzid = verify(gm, person)[1]["yzid"]
    resp_code, _ = sign(gm, person, yzid, qydj="1")
    assert resp_code == 40003
