"""Payment (sign level 2, action 005) and the e-SSC password reset (action 002) through the
citizen's city (issue 11, sections 4 and 5), through the HTTP API against the mock."""
import logging
import re

import pytest
from sqlalchemy import select

from essc.service.models import AuditEvent, UsageEvent

from .api_helpers import BANK, DEMO_CH, activated, conforms, error
from .conftest import person
from .use_helpers import CITY, PASSWORD, make_app


@pytest.fixture
def app(runtime):
    return make_app(runtime)


def pay(client, act_id, body=PASSWORD, headers=DEMO_CH):
    return client.post(f"/v1/activations/{act_id}/payment", json=body, headers=headers)


def reset(client, act_id, new_password, headers=DEMO_CH, sms_code="123456"):
    return client.post(f"/v1/activations/{act_id}/password", headers=headers,
                       json={"face_token": "live-test", "sms_code": sms_code, "new_password": new_password})


def test_the_password_raises_the_e_ssc_to_sign_level_2_naming_the_masked_account(client, runtime, mock):
    who = person(mock, CITY)
    mine, theirs = activated(client, who), activated(client, who, headers=BANK)
    answer = pay(client, mine)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    conforms("PaymentEnabled", body)
    assert body["sign_level"] == 2 and body["bank"]
    assert re.fullmatch(r"[0-9]{0,6}\*{4,16}[0-9]{0,4}", body["account_hint"])
    for act_id, headers in ((mine, DEMO_CH), (theirs, BANK)):  # the city's one credential: every copy
        credential = client.get(f"/v1/activations/{act_id}", headers=headers).get_json()["credential"]
        assert credential["signLevel"] == 2 and credential["signNo"] == body["sign_no"]
    trail = client.get(f"/v1/activations/{mine}", headers=DEMO_CH).get_json()["audit"]
    assert trail[-1]["event"] == "payment_enabled" and body["account_hint"] in trail[-1]["detail"]
    assert pay(client, mine).status_code == 200  # again: the same binding


def test_a_wrong_password_counts_towards_the_citizens_lockout(client, runtime, mock):
    act_id = activated(client, person(mock, CITY))
    wrong = {"face_token": "live-test", "password": "000000"}
    assert error(pay(client, act_id, wrong), 403, "IDENTITY_MISMATCH")["details"]["attempts_left"] == 2
    assert error(pay(client, act_id, wrong), 403, "IDENTITY_MISMATCH")["details"]["attempts_left"] == 1
    locked = pay(client, act_id, wrong)
    error(locked, 423, "IDENTITY_LOCKED")
    assert int(locked.headers["Retry-After"]) > 0
    error(pay(client, act_id), 423, "IDENTITY_LOCKED")  # the right password too, without asking the city
    assert client.get(f"/v1/activations/{act_id}", headers=DEMO_CH).get_json()["credential"]["signLevel"] == 1


def test_an_sms_code_does_not_enable_payment_and_bad_input_is_named(client, mock):
    act_id = activated(client, person(mock, CITY))
    assert error(pay(client, act_id, {"face_token": "live-test", "sms_code": "123456"}), 400,
                 "INVALID_INPUT")["details"]["field"] == "$"
    assert error(pay(client, act_id, {"face_token": "live-test", "password": "12345"}), 400,
                 "INVALID_INPUT")["details"]["field"] == "$.password"


def test_only_the_holding_channel_and_only_an_activated_e_ssc(client, mock):
    act_id = activated(client, person(mock, CITY))
    error(pay(client, act_id, headers=BANK), 404, "NOT_FOUND")
    error(pay(client, "0" * 32), 404, "NOT_FOUND")
    pending = client.post("/v1/activations", json={"city": CITY, **person(mock, CITY, index=3), "consent": True},
                          headers=DEMO_CH).get_json()
    assert error(pay(client, pending["id"]), 409, "NOT_ACTIVATED")["details"]["activation_status"] == \
        "awaiting_verification"
    client.delete(f"/v1/activations/{act_id}", headers=DEMO_CH)
    error(pay(client, act_id), 409, "NOT_ACTIVATED")


def test_a_city_whose_plugin_lacks_the_operation_says_so(client, runtime, mock, monkeypatch):
    act_id = activated(client, person(mock, CITY))
    monkeypatch.setattr(runtime.registry, "offers", lambda city, operation: operation not in (
        "enable_payment", "reset_password"))
    refused = error(pay(client, act_id), 409, "NOT_OFFERED")
    assert refused["details"]["operation"] == "enable_payment"
    error(reset(client, act_id, "654321"), 409, "NOT_OFFERED")


def test_a_reset_password_replaces_the_old_one_and_is_never_kept(client, runtime, mock, caplog):
    caplog.set_level(logging.DEBUG)
    who = person(mock, CITY)
    act_id = activated(client, who)
    answer = reset(client, act_id, "864209")
    assert answer.status_code == 200, answer.get_json()
    conforms("PasswordReset", answer.get_json())
    assert re.fullmatch(r"20[0-9]{6}", answer.get_json()["reset_date"])
    error(pay(client, act_id), 403, "IDENTITY_MISMATCH")  # the old password no longer works
    assert pay(client, act_id, {"face_token": "live-test", "password": "864209"}).status_code == 200
    with runtime.store.engine.connect() as conn:
        rows = [dict(r) for t in (AuditEvent, UsageEvent) for r in conn.execute(select(t.__table__)).mappings()]
    dump = str(rows) + caplog.text
    assert "864209" not in dump and who["id_number"] not in dump and who["name"] not in dump
    assert any(r.get("event") == "password_reset" for r in rows)


def test_a_password_reset_needs_the_sms_code(client, mock):
    act_id = activated(client, person(mock, CITY))
    error(reset(client, act_id, "864209", sms_code="000000"), 403, "IDENTITY_MISMATCH")
    assert error(reset(client, act_id, "86420"), 400, "INVALID_INPUT")["details"]["field"] == "$.new_password"
