"""Dialect-neutral behaviour: modes, delayed sync on the virtual clock, tickets, credentials."""
from __future__ import annotations

import pytest

from essc.mockserver import business
from essc.mockserver.business import MockBusinessError

XML = "xml-envelope"


def fields(body) -> dict[str, str]:
    return {c.tag: c.text or "" for c in body}


def read(xml, person, city):
    return xml.call("CARD_QUERY", {"AAC002": person["id_number"], "AAC003": person["name"], "AAB301": city})


def test_delayed_city_counts_down_on_the_virtual_clock(xml, citizen, client):
    person = citizen("110000")
    header, body = read(xml, person, "110000")
    assert header["ResultCode"] == "90102" and fields(body) == {"RETRYAFTER": "3600"}
    client.post("/__admin/clock", json={"advance": 1000})
    header, body = read(xml, person, "110000")
    assert header["ResultCode"] == "90102" and fields(body) == {"RETRYAFTER": "2600"}
    client.post("/__admin/clock", json={"advance": 2600})
    header, body = read(xml, person, "110000")
    assert header["ResultCode"] == "90000" and fields(body)["AAC002"] == person["id_number"]


def test_delay_is_per_citizen_from_their_first_read(xml, citizen, client):
    first, second = citizen("310000"), citizen("310000", "sealed")
    read(xml, first, "310000")
    client.post("/__admin/clock", json={"advance": 1800})
    assert read(xml, first, "310000")[0]["ResultCode"] == "90000"
    header, body = read(xml, second, "310000")
    assert header["ResultCode"] == "90102" and fields(body) == {"RETRYAFTER": "1800"}


def test_sync_after_attempts(xml, citizen, client):
    resp = client.put("/__admin/cities/650100", json={"sync_after_attempts": 3})
    assert resp.status_code == 200 and resp.get_json()["sync_after_attempts"] == 3
    person = citizen("650100")
    assert [read(xml, person, "650100")[0]["ResultCode"] for _ in range(4)] == ["90102", "90102", "90000", "90000"]


def test_verify_waits_for_the_sync_and_does_not_start_it(xml, citizen, client):
    person = citizen("110000")
    body = {"AAC002": person["id_number"], "AAB301": "110000", "FACETOKEN": "live-1", "VERIFYTYPE": "1",
            "VERIFYCODE": "123456"}
    header, out = xml.call("IDENTITY_VERIFY", body)
    assert header["ResultCode"] == "90102" and fields(out) == {"RETRYAFTER": "3600"}
    client.post("/__admin/clock", json={"advance": 3600})
    assert xml.call("IDENTITY_VERIFY", body)[0]["ResultCode"] == "90102"  # no read_card yet
    read(xml, person, "110000")
    client.post("/__admin/clock", json={"advance": 3600})
    assert xml.call("IDENTITY_VERIFY", body)[0]["ResultCode"] == "90000"


def test_unknown_citizen_in_a_delayed_city_gets_a_day(xml, citizen):
    person = dict(citizen("110000"), name="不存在")
    header, body = read(xml, person, "110000")
    assert header["ResultCode"] == "90102" and fields(body) == {"RETRYAFTER": "86400"}


def test_switching_modes(xml, citizen, client):
    person = citizen("440300")
    client.put("/__admin/cities/440300", json={"mode": "delayed", "sync_delay_s": 60})
    assert read(xml, person, "440300")[0]["ResultCode"] == "90102"
    client.put("/__admin/cities/440300", json={"mode": "supported"})
    assert read(xml, person, "440300")[0]["ResultCode"] == "90000"
    client.put("/__admin/cities/440300", json={"mode": "not_opened"})
    assert read(xml, person, "440300")[0]["ResultCode"] == "90101"


def test_business_functions_directly(state):
    person = state.citizens("330100")[0]
    assert business.read_card(state, "rest-json", "330100", person.id_number, person.name) == person
    with pytest.raises(MockBusinessError) as err:
        business.read_card(state, XML, "330100", person.id_number, person.name)
    assert err.value.kind == "unknown_city"
    with pytest.raises(MockBusinessError) as err:
        business.read_card(state, XML, "999999", person.id_number, person.name)
    assert err.value.kind == "unknown_city"
    ticket = business.verify_identity(state, "rest-json", "330100", person.id_number, "live-x", "password", "147258")
    cred = business.activate(state, "rest-json", "330100", person.id_number, ticket, "alipay", 1)
    assert business.activate(state, "rest-json", "330100", person.id_number, ticket, "wechat", 2) is cred
    assert business.health(state, XML, "460300") == "up"
    with pytest.raises(MockBusinessError) as err:
        business.list_services(state, XML, "460300")
    assert err.value.kind == "not_opened"


def test_credentials_are_deterministic_across_apps():
    from essc.mockserver import create_app

    sign_nos = []
    for _ in range(2):
        state = create_app({"CLOCK_MODE": "frozen"}).extensions["essc_mock"]
        person = state.citizens("510100")[0]
        ticket = business.verify_identity(state, "gm-json", "510100", person.id_number, "live-1", "sms", "123456")
        sign_nos.append(business.activate(state, "gm-json", "510100", person.id_number, ticket, "qd", 1).sign_no)
    assert sign_nos[0] == sign_nos[1]
