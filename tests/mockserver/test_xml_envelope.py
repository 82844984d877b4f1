"""xml-envelope wire format (docs/dialects.md) against the Flask test client."""
from __future__ import annotations

import datetime as dt

import pytest

from essc.core.idnumber import make_id_number

CITY = "370200"


def fields(body) -> dict[str, str]:
    return {c.tag: c.text or "" for c in body}


def verify(xml, person, city=CITY, **override):
    body = {"AAC002": person["id_number"], "AAB301": city, "FACETOKEN": "live-9", "VERIFYTYPE": "1",
            "VERIFYCODE": "123456", **override}
    return xml.call("IDENTITY_VERIFY", body)


def sign(xml, person, verify_id, city=CITY, **override):
    body = {"AAC002": person["id_number"], "AAB301": city, "VERIFYID": verify_id, "CHANNEL": "bank-app",
            "SIGNLEVEL": "1", **override}
    return xml.call("CARD_SIGN", body)


def test_card_query_echoes_header_and_gives_the_record(xml, citizen):
    person = citizen(CITY, "cancelled")
    header, body = xml.call("CARD_QUERY", {"AAC002": person["id_number"], "AAC003": person["name"], "AAB301": CITY},
                            msg_id="msg-0001")
    assert header["MsgType"] == "CARD_QUERY" and header["MsgID"] == "msg-0001"
    assert (header["ResultCode"], header["ResultMsg"]) == ("90000", "成功")
    data = fields(body)
    assert list(data) == ["AAC002", "AAC003", "AAB301", "AAZ500", "AAZ501", "AAZ502", "AAZ508", "AAE008", "AAC067"]
    assert data["AAC002"] == person["id_number"] and data["AAZ502"] == "3"


def test_verify_sign_services_health(xml, citizen):
    person = citizen("659012")
    header, body = verify(xml, person, city="659012", VERIFYTYPE="2", VERIFYCODE="147258")
    assert header["ResultCode"] == "90000"
    verify_id = fields(body)["VERIFYID"]
    header, body = sign(xml, person, verify_id, city="659012", SIGNLEVEL="2")
    data = fields(body)
    assert header["ResultCode"] == "90000"
    assert set(data) == {"AAB301", "SIGNNO", "SIGNSEQ", "SIGNLEVEL", "VALIDATE", "SIGNDATE"}
    assert data["SIGNLEVEL"] == "2" and dt.datetime.strptime(data["VALIDATE"], "%Y%m%d")
    header, body = xml.call("SERVICE_LIST", {"AAB301": CITY})
    services = body.findall("SERVICE")
    assert [s.findtext("CODE") for s in services] == ["A01", "A02", "A03", "A04", "A05"]
    assert all(s.findtext("NAME") for s in services)
    header, body = xml.call("HEALTH", {"AAB301": CITY})
    assert header["ResultCode"] == "90000" and fields(body) == {"STATUS": "UP"}


def test_business_errors(xml, citizen):
    person = citizen(CITY)
    unknown = make_id_number("370200", dt.date(1960, 2, 29), 20)
    header, body = xml.call("CARD_QUERY", {"AAC002": unknown, "AAC003": "李四", "AAB301": CITY})
    assert header["ResultCode"] == "90102" and fields(body) == {"RETRYAFTER": "86400"}
    assert verify(xml, person, VERIFYCODE="000000")[0]["ResultCode"] == "90104"
    assert sign(xml, person, "nope")[0]["ResultCode"] == "90105"
    sealed = citizen(CITY, "sealed")
    verify_id = fields(verify(xml, sealed)[1])["VERIFYID"]
    header, body = sign(xml, sealed, verify_id)
    assert header["ResultCode"] == "90103" and fields(body) == {"AAZ502": "2"}
    assert xml.call("SERVICE_LIST", {"AAB301": "460300"})[0]["ResultCode"] == "90101"
    assert xml.call("HEALTH", {"AAB301": "810000"})[0]["ResultCode"] == "90000"
    assert xml.call("SERVICE_LIST", {"AAB301": "330100"})[0]["ResultCode"] == "99005"


def test_bad_dsign_and_sender(xml):
    assert xml.call("HEALTH", {"AAB301": CITY}, key="wrong-key")[0]["ResultCode"] == "99002"
    assert xml.call("HEALTH", {"AAB301": CITY}, sender="stranger")[0]["ResultCode"] == "99002"
    tampered = xml.envelope("HEALTH", {"AAB301": CITY}).replace(b"370200", b"440300")
    assert xml.parse(xml.raw(tampered).data)[0]["ResultCode"] == "99002"


@pytest.mark.parametrize("data", [
    b"", b"<ROOT><HEADER>", b"{\"json\": true}", b"<OTHER><HEADER/><BODY/></OTHER>", b"<ROOT><HEADER/></ROOT>",
    b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><ROOT><HEADER/><BODY>&a;</BODY></ROOT>',
])
def test_unparseable_envelope_is_http_400(xml, data):
    resp = xml.raw(data)
    assert resp.status_code == 400
    header, _ = xml.parse(resp.data)
    assert header["ResultCode"] == "99001"


def test_unknown_msg_type_and_missing_field(xml, citizen):
    assert xml.call("CARD_DELETE", {"AAB301": CITY})[0]["ResultCode"] == "99003"
    person = citizen(CITY)
    header, _ = xml.call("CARD_QUERY", {"AAC002": person["id_number"], "AAB301": CITY})
    assert header["ResultCode"] == "99004" and "AAC003" in header["ResultMsg"]
    header, _ = xml.call("CARD_QUERY", {"AAC002": "12345", "AAC003": "王五", "AAB301": CITY})
    assert header["ResultCode"] == "99004" and "AAC002" in header["ResultMsg"]
    no_dsign = xml.envelope("HEALTH", {"AAB301": CITY}).replace(b"<DSIGN>", b"<X>").replace(b"</DSIGN>", b"</X>")
    header, _ = xml.parse(xml.raw(no_dsign).data)
    assert header["ResultCode"] == "99004" and "DSIGN" in header["ResultMsg"]
