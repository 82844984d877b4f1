"""Scan login for portals (issue 11, section 3): a portal opens a session, the citizen's channel
confirms the login code after a fresh identity check, the portal reads the result once."""
import pytest

from essc.service.api import create_app
from essc.service.relying import RelyingParties, RelyingParty

from .api_helpers import BANK, CHANNELS, DEMO_CH, activated, conforms, error
from .conftest import DEMO, person
from .test_qrcode import Clock

PARTIES = RelyingParties({
    "portal": RelyingParty("portal", api_key="portal-key", kind="portal", busi_types=frozenset({"03"}),
                           scope=frozenset({"name", "id_number"})),
    "portal-b": RelyingParty("portal-b", api_key="portal-b-key", kind="portal", description="another portal"),
    "pharmacy": RelyingParty("pharmacy", api_key="pharmacy-key", kind="pharmacy", busi_types=frozenset({"01"})),
})
PORTAL = {"X-Relying-Party": "portal", "X-Api-Key": "portal-key"}
PORTAL_B = {"X-Relying-Party": "portal-b", "X-Api-Key": "portal-b-key"}
PHARMACY = {"X-Relying-Party": "pharmacy", "X-Api-Key": "pharmacy-key"}


@pytest.fixture
def app(runtime):
    return create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES})


def open_session(client, headers=PORTAL):
    opened = client.post("/v1/login-sessions", headers=headers)
    assert opened.status_code == 201, opened.get_json()
    conforms("LoginSessionOpened", opened.get_json())
    return opened.get_json()


def confirm(client, code, act_id, headers=DEMO_CH, **check):
    return client.post(f"/v1/login-sessions/{code}/confirm", json={"activation_id": act_id, **(check or DEMO)},
                       headers=headers)


def poll(client, session_id, headers=PORTAL):
    answer = client.get(f"/v1/login-sessions/{session_id}", headers=headers)
    if answer.status_code == 200:
        conforms("LoginSessionView", answer.get_json())
    return answer


def test_scan_login_gives_the_portal_a_pairwise_person_number_once(client, mock):
    who = person(mock, "330100")
    act_id = activated(client, who)
    session = open_session(client)
    assert poll(client, session["session_id"]).get_json()["status"] == "pending"

    done = confirm(client, session["login_code"], act_id)
    assert done.status_code == 200, done.get_json()
    conforms("LoginConfirmed", done.get_json())
    assert done.get_json()["portal"]["name"] == "portal"

    result = poll(client, session["session_id"]).get_json()
    assert result["status"] == "confirmed"
    person_seen = result["person"]
    assert person_seen["essc_no"].startswith("E") and person_seen["city"] == "330100"
    assert person_seen["name"] == who["name"]  # granted by its scope
    assert "id_number" not in person_seen and who["id_number"] not in str(result)  # never the ID number
    again = poll(client, session["session_id"]).get_json()
    assert again["status"] == "delivered" and "person" not in again  # the result comes once

    # pairwise: the same citizen is the same number at this portal, another number at another portal
    second = open_session(client)
    confirm(client, second["login_code"], act_id)
    assert poll(client, second["session_id"]).get_json()["person"]["essc_no"] == person_seen["essc_no"]
    other = open_session(client, PORTAL_B)
    confirm(client, other["login_code"], act_id)
    seen_b = poll(client, other["session_id"], PORTAL_B).get_json()["person"]
    assert seen_b["essc_no"] != person_seen["essc_no"] and "name" not in seen_b  # portal-b has no grant


def test_only_portals_open_sessions_and_only_the_opener_polls(client, mock):
    error(client.post("/v1/login-sessions", headers=PHARMACY), 403, "LOGIN_NOT_ALLOWED")
    error(client.post("/v1/login-sessions", headers=DEMO_CH), 401, "UNAUTHORIZED")
    session = open_session(client)
    error(poll(client, session["session_id"], PORTAL_B), 404, "LOGIN_SESSION_NOT_FOUND")
    error(poll(client, "x" * 5), 404, "LOGIN_SESSION_NOT_FOUND")


def test_a_login_code_is_confirmed_once_by_the_activations_channel(client, mock):
    who = person(mock, "330100")
    mine, theirs = activated(client, who), activated(client, who, headers=BANK)
    session = open_session(client)
    error(confirm(client, session["login_code"], mine, headers=BANK), 404, "NOT_FOUND")  # not bank's activation
    assert confirm(client, session["login_code"], theirs, headers=BANK).status_code == 200
    error(confirm(client, session["login_code"], mine), 409, "LOGIN_SESSION_USED")
    error(confirm(client, "essl1." + "A" * 43, mine), 404, "LOGIN_SESSION_NOT_FOUND")
    error(confirm(client, "nonsense", mine), 404, "LOGIN_SESSION_NOT_FOUND")


def test_a_failed_identity_check_does_not_confirm_and_counts_towards_the_lockout(client, mock):
    act_id = activated(client, person(mock, "330100"))
    session = open_session(client)
    wrong = error(confirm(client, session["login_code"], act_id, face_token="live-x", sms_code="000000"),
                  403, "IDENTITY_MISMATCH")
    assert wrong["details"]["attempts_left"] == 2
    assert poll(client, session["session_id"]).get_json()["status"] == "pending"
    error(confirm(client, session["login_code"], act_id, face_token="live-x", sms_code="000000"),
          403, "IDENTITY_MISMATCH")
    locked = confirm(client, session["login_code"], act_id, face_token="live-x", sms_code="000000")
    error(locked, 423, "IDENTITY_LOCKED")
    error(confirm(client, session["login_code"], act_id), 423, "IDENTITY_LOCKED")  # even the right one, now
    bad = error(confirm(client, session["login_code"], act_id, face_token="live-x", sms_code="12"), 400,
                "INVALID_INPUT")
    assert bad["details"]["field"].startswith("$")


def test_an_expired_login_code_and_an_unactivated_e_ssc_are_refused(app, client, mock):
    clock = app.extensions["essc"].logins.clock = Clock()
    act_id = activated(client, person(mock, "330100"))
    session = open_session(client)
    clock.now += 120.5
    error(confirm(client, session["login_code"], act_id), 410, "LOGIN_SESSION_EXPIRED")
    assert poll(client, session["session_id"]).get_json()["status"] == "expired"

    fresh = open_session(client)
    pending = client.post("/v1/activations", json={"city": "330100", **person(mock, "330100", index=3),
                                                   "consent": True}, headers=DEMO_CH).get_json()
    error(confirm(client, fresh["login_code"], pending["id"]), 409, "NOT_ACTIVATED")
