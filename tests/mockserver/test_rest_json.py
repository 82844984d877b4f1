"""rest-json wire format (docs/dialects.md) against the Flask test client."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from essc.core.idnumber import make_id_number

CITY = "330100"


def verify(rest, person, **override):
    body = {"cityCode": CITY, "idNumber": person["id_number"], "faceToken": "live-abc", "factor": "SMS",
            "code": "123456", **override}
    return rest.call("POST", "/identity/verify", body)


def activate(rest, person, ticket, **override):
    body = {"cityCode": CITY, "idNumber": person["id_number"], "ticket": ticket, "channel": "alipay", "level": 2,
            **override}
    return rest.call("POST", "/credentials", body)


def test_read_card_happy_path(rest, citizen):
    person = citizen(CITY)
    resp = rest.call("POST", "/cards/query", {"cityCode": CITY, "idNumber": person["id_number"],
                                              "name": person["name"]})
    assert resp.status_code == 200
    card = resp.get_json()["card"]
    assert set(card) == {"idNumber", "name", "cityCode", "cardNo", "cardId", "status", "generation", "bank", "mobile"}
    assert (card["idNumber"], card["name"], card["cityCode"]) == (person["id_number"], person["name"], CITY)
    assert card["cardNo"] == person["card_no"] and card["mobile"] == person["mobile"]
    assert card["status"] == "ACTIVE"
    assert card["generation"] in (2, 3) and isinstance(card["generation"], int)
    assert re.fullmatch(r"[0-9A-F]{32}", card["cardId"])


def test_read_card_shows_abnormal_status(rest, citizen):
    person = citizen(CITY, "reported_lost")
    resp = rest.call("POST", "/cards/query", {"cityCode": CITY, "idNumber": person["id_number"],
                                              "name": person["name"]})
    assert resp.status_code == 200
    assert resp.get_json()["card"]["status"] == "LOST"


def test_verify_and_activate_happy_path_same_credential_twice(rest, citizen):
    person = citizen(CITY)
    resp = verify(rest, person)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["verified"] is True and len(body["ticket"]) >= 4
    first = activate(rest, person, body["ticket"])
    assert first.status_code == 201
    cred = first.get_json()["credential"]
    assert set(cred) == {"signNo", "signSeq", "level", "validUntil", "signedAt"}
    assert cred["level"] == 2
    assert re.fullmatch(r"[A-Za-z0-9]{8,64}", cred["signNo"])
    dt.date.fromisoformat(cred["validUntil"])
    assert dt.datetime.strptime(cred["signedAt"], "%Y-%m-%dT%H:%M:%S")
    ticket2 = verify(rest, person, factor="PASSWORD", code="147258").get_json()["ticket"]
    again = activate(rest, person, ticket2)
    assert again.status_code == 201 and again.get_json()["credential"] == cred


def test_list_services_and_health(rest):
    resp = rest.call("GET", f"/cities/{CITY}/services")
    assert resp.status_code == 200
    assert [s["id"] for s in resp.get_json()["services"]] == [
        "ID_LOGIN", "SOCIAL_SECURITY", "EMPLOYMENT", "PAYMENT", "MEDICAL_BILL"]
    assert all(s["title"] for s in resp.get_json()["services"])
    resp = rest.call("GET", f"/health?cityCode={CITY}")
    assert (resp.status_code, resp.get_json()) == (200, {"status": "UP"})


def test_not_opened(rest, client):
    assert client.put("/__admin/cities/330500", json={"mode": "not_opened"}).status_code == 200
    resp = rest.call("GET", "/cities/330500/services")
    assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "CITY_NOT_OPENED"
    assert rest.call("GET", "/health?cityCode=330500").get_json() == {"status": "UP"}


@pytest.mark.parametrize("change", ["unknown_id", "other_name"])
def test_unknown_citizen_is_record_not_found(rest, citizen, change):
    person = citizen(CITY)
    id_number = make_id_number("330100", dt.date(1980, 1, 1), 999) if change == "unknown_id" else person["id_number"]
    name = "某某某" if change == "other_name" else person["name"]
    resp = rest.call("POST", "/cards/query", {"cityCode": CITY, "idNumber": id_number, "name": name})
    assert resp.status_code == 404
    error = resp.get_json()["error"]
    assert error["code"] == "RECORD_NOT_FOUND" and error["retryAfterSeconds"] == 86400


def test_card_status_on_activate(rest, citizen):
    person = citizen(CITY, "sealed")
    ticket = verify(rest, person).get_json()["ticket"]
    resp = activate(rest, person, ticket)
    assert resp.status_code == 409
    assert resp.get_json()["error"]["code"] == "CARD_STATUS" and resp.get_json()["error"]["status"] == "SEALED"


@pytest.mark.parametrize("scenario, override", [
    ("normal", {"faceToken": "photo-abc"}),
    ("normal", {"code": "654321"}),
    ("normal", {"factor": "PASSWORD", "code": "123456"}),
    ("face_mismatch", {}),
])
def test_identity_mismatch(rest, citizen, scenario, override):
    resp = verify(rest, citizen(CITY, scenario), **override)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "IDENTITY_MISMATCH"


def test_ticket_invalid_unknown_other_citizen_expired(rest, citizen, client):
    person, other = citizen(CITY), citizen(CITY, "face_mismatch")
    assert activate(rest, person, "no-such-ticket").get_json()["error"]["code"] == "TICKET_INVALID"
    ticket = verify(rest, person).get_json()["ticket"]
    resp = activate(rest, other, ticket)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "TICKET_INVALID"
    client.post("/__admin/clock", json={"advance": 301})
    resp = activate(rest, person, ticket)
    assert resp.status_code == 403 and resp.get_json()["error"]["code"] == "TICKET_INVALID"


def test_ticket_still_valid_at_300_seconds(rest, citizen, client):
    person = citizen(CITY)
    ticket = verify(rest, person).get_json()["ticket"]
    client.post("/__admin/clock", json={"advance": 300})
    assert activate(rest, person, ticket).status_code == 201


def test_unknown_city(rest, citizen):
    person = citizen("350100")
    resp = rest.call("POST", "/cards/query", {"cityCode": "350100", "idNumber": person["id_number"],
                                              "name": person["name"]})
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "UNKNOWN_CITY"


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_unauthorized(rest, citizen, token):
    person = citizen(CITY)
    resp = rest.call("POST", "/cards/query", {"cityCode": CITY, "idNumber": person["id_number"],
                                              "name": person["name"]}, token=token)
    assert resp.status_code == 401 and resp.get_json()["error"]["code"] == "UNAUTHORIZED"
    assert rest.call("GET", f"/health?cityCode={CITY}", token=token).status_code == 401


@pytest.mark.parametrize("body, field", [
    ("{not json", "body"),
    ([1, 2], "body"),
    ({"idNumber": "11010119900307803X", "name": "张三"}, "cityCode"),
    ({"cityCode": CITY, "idNumber": "11010119900307803Y", "name": "张三"}, "idNumber"),
    ({"cityCode": CITY, "idNumber": "110101199003078031", "name": "张三"}, "idNumber"),
    ({"cityCode": CITY, "idNumber": "11010119900307803X"}, "name"),
])
def test_bad_request_names_the_field(rest, body, field):
    resp = rest.call("POST", "/cards/query", body)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "BAD_REQUEST" and field in error["message"]


@pytest.mark.parametrize("level", [None, 3, "1", True])
def test_activate_level_must_be_1_or_2(rest, citizen, level):
    person = citizen(CITY)
    ticket = verify(rest, person).get_json()["ticket"]
    resp = activate(rest, person, ticket, level=level)
    assert resp.status_code == 400 and "level" in resp.get_json()["error"]["message"]


def test_verify_factor_must_be_sms_or_password(rest, citizen):
    resp = verify(rest, citizen(CITY), factor="sms")
    assert resp.status_code == 400 and "factor" in resp.get_json()["error"]["message"]
