"""pinyin-form wire format (docs/dialects.md) against the Flask test client."""
from __future__ import annotations

import datetime as dt
import time

import pytest

from essc.core.idnumber import make_id_number
from essc.core.signing import hmac_sha256

CITY = "350100"


def verify(pinyin, person, **override):
    fields = {"aac002": person["id_number"], "aab301": CITY, "face_token": "live-1", "verify_type": "1",
              "verify_code": "123456", **override}
    return pinyin.call("/identity/verify", fields)


def sign(pinyin, person, verify_id, **override):
    fields = {"aac002": person["id_number"], "aab301": CITY, "verify_id": verify_id, "channel": "wechat",
              "sign_level": "1", **override}
    return pinyin.call("/card/sign", fields)


def test_read_card_happy_path(pinyin, citizen):
    person = citizen(CITY, "locked")
    answer = pinyin.call("/card/query", {"aac002": person["id_number"], "aac003": person["name"], "aab301": CITY})
    assert (answer["code"], answer["msg"]) == ("0000", "成功")
    data = answer["data"]
    assert set(data) == {"aac002", "aac003", "aab301", "aaz500", "aaz501", "aaz502", "aaz508", "aae008", "aac067"}
    assert (data["aac002"], data["aac003"], data["aab301"]) == (person["id_number"], person["name"], CITY)
    assert data["aaz502"] == "5" and data["aaz508"] in ("2", "3")
    assert data["aaz500"] == person["card_no"] and data["aac067"] == person["mobile"]


def test_verify_sign_list_health(pinyin, citizen):
    person = citizen(CITY)
    answer = verify(pinyin, person, verify_type="2", verify_code="147258")
    assert answer["code"] == "0000"
    verify_id = answer["data"]["verify_id"]
    answer = sign(pinyin, person, verify_id, sign_level="2")
    assert answer["code"] == "0000"
    data = answer["data"]
    assert set(data) == {"aab301", "signNo", "signSeq", "signLevel", "validate", "signDate"}
    assert data["aab301"] == CITY and data["signLevel"] == "2"
    for key in ("validate", "signDate"):
        dt.datetime.strptime(data[key], "%Y%m%d")
    assert sign(pinyin, person, verify_id)["data"] == data  # the same credential again
    answer = pinyin.call("/service/list", {"aab301": CITY})
    assert [s["fwbm"] for s in answer["data"]["list"]] == ["01", "02", "03", "04", "05"]
    assert pinyin.call("/health", {"aab301": CITY}) == {"code": "0000", "msg": "成功", "data": {"status": "ok"}}


def test_business_errors(pinyin, citizen, client):
    person = citizen(CITY)
    unknown = make_id_number("350100", dt.date(1970, 5, 5), 1)
    answer = pinyin.call("/card/query", {"aac002": unknown, "aac003": "张三", "aab301": CITY})
    assert (answer["code"], answer["data"]) == ("1002", {"retry_after": 86400})
    assert verify(pinyin, person, face_token="dead-1")["code"] == "1004"
    assert verify(pinyin, citizen(CITY, "face_mismatch"))["code"] == "1004"
    assert sign(pinyin, person, "VT-unknown")["code"] == "1005"
    lost = citizen(CITY, "reported_lost")
    answer = sign(pinyin, lost, verify(pinyin, lost)["data"]["verify_id"])
    assert (answer["code"], answer["data"]) == ("1003", {"aaz502": "2"})
    assert pinyin.call("/service/list", {"aab301": "330100"})["code"] == "9004"
    client.put(f"/__admin/cities/{CITY}", json={"mode": "not_opened"})
    assert pinyin.call("/service/list", {"aab301": CITY})["code"] == "1001"
    assert pinyin.call("/health", {"aab301": CITY})["code"] == "0000"


def test_bad_signature(pinyin, citizen):
    fields = {"aab301": CITY}
    assert pinyin.call("/health", fields, secret="not-the-secret")["code"] == "9001"
    assert pinyin.call("/health", fields, appid="someone-else")["code"] == "9001"
    form = pinyin.sign(fields)
    form["aab301"] = "350101"  # tampered after signing
    assert pinyin.raw("/health", form).get_json()["code"] == "9001"


def test_timestamp_too_far_off(pinyin):
    assert pinyin.call("/health", {"aab301": CITY}, timestamp=int(time.time()) - 301)["code"] == "9003"
    assert pinyin.call("/health", {"aab301": CITY}, timestamp=int(time.time()) - 250)["code"] == "0000"


@pytest.mark.parametrize("drop, field", [("appid", "appid"), ("nonce", "nonce"), ("sign", "sign"),
                                         ("timestamp", "timestamp")])
def test_missing_common_field(pinyin, drop, field):
    form = pinyin.sign({"aab301": CITY})
    del form[drop]
    answer = pinyin.raw("/health", form).get_json()
    assert answer["code"] == "9002" and field in answer["msg"]


def test_missing_business_field_and_short_nonce(pinyin, citizen):
    person = citizen(CITY)
    answer = pinyin.call("/card/query", {"aac002": person["id_number"], "aab301": CITY})
    assert answer["code"] == "9002" and "aac003" in answer["msg"]
    answer = verify(pinyin, person, verify_type="3")
    assert answer["code"] == "9002" and "verify_type" in answer["msg"]
    form = pinyin.sign({"aab301": CITY})
    form["nonce"] = "short"
    form.pop("sign")
    form["sign"] = hmac_sha256(form, "mock-hmac-secret")
    answer = pinyin.raw("/health", form).get_json()
    assert answer["code"] == "9002" and "nonce" in answer["msg"]


def test_not_a_form_at_all(client):
    resp = client.post("/pinyin/health", data=b"\x00\x01garbage", content_type="application/octet-stream")
    assert resp.status_code == 200 and resp.get_json()["code"] == "9002"
