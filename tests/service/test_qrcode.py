"""The e-SSC in use: the citizen's dynamic code, its verification by relying parties, unlinking
and card status changes (issue 11, sections 2 and 5), through the HTTP API against the mock."""
import hashlib
import json
import threading
import time

import pytest
from sqlalchemy import select, text

from essc.service.api import create_app
from essc.service.channels import sign
from essc.service.models import QrCode, UsageEvent
from essc.service.relying import RelyingParties, RelyingParty

from .api_helpers import BANK, CHANNELS, DEMO_CH, activated, conforms, error
from .conftest import DEMO, person

PARTIES = RelyingParties({
    "pharmacy": RelyingParty("pharmacy", api_key="pharmacy-key", hmac_secret="pharmacy-secret", kind="pharmacy",
                             busi_types=frozenset({"01", "02"})),
    "hospital": RelyingParty("hospital", api_key="hospital-key", kind="hospital",
                             busi_types=frozenset({"01", "02", "04"}), scope=frozenset({"name", "id_number"})),
})
PHARMACY = {"X-Relying-Party": "pharmacy", "X-Api-Key": "pharmacy-key"}
HOSPITAL = {"X-Relying-Party": "hospital", "X-Api-Key": "hospital-key"}


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(runtime):
    return create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES})


def show(client, act_id, headers=DEMO_CH):
    return client.post(f"/v1/activations/{act_id}/qrcode", headers=headers)


def scan(client, code, busi_type="01", headers=PHARMACY):
    return client.post("/v1/qrcode/verify", json={"qrcode": code, "busi_type": busi_type}, headers=headers)


def code_of(client, act_id, headers=DEMO_CH) -> str:
    answer = show(client, act_id, headers)
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()["qrcode"]


# -- the code ---------------------------------------------------------------------------------
def test_the_holding_channel_gets_a_fresh_single_use_code_without_personal_data(client, mock):
    who = person(mock, "330100")
    act_id = activated(client, who)
    before = time.time()
    answer = show(client, act_id)
    after = time.time()
    assert answer.status_code == 201 and answer.headers["Cache-Control"] == "no-store"
    body = answer.get_json()
    conforms("QrCodeIssued", body)
    assert body["ttl_s"] == 60 and before + 60 <= body["expires_at"] <= after + 60
    assert body["card_status"] == "normal"
    code = body["qrcode"]
    assert who["id_number"] not in code and who["name"] not in code
    assert code != code_of(client, act_id)  # unguessable: every code is new


def test_another_channel_gets_404_and_an_unactivated_e_ssc_no_code(client, mock):
    who = person(mock, "330100")
    act_id = activated(client, who)
    error(show(client, act_id, BANK), 404, "NOT_FOUND")
    error(show(client, "0" * 32), 404, "NOT_FOUND")
    pending = client.post("/v1/activations", json={"city": "330100", **person(mock, "330100", index=3),
                                                   "consent": True}, headers=DEMO_CH).get_json()
    refused = error(show(client, pending["id"]), 409, "NOT_ACTIVATED")
    assert refused["details"]["activation_status"] == "awaiting_verification"


def test_the_database_keeps_only_a_hash_of_the_code(client, runtime, mock):
    act_id = activated(client, person(mock, "330100"))
    code = code_of(client, act_id)
    with runtime.store.engine.connect() as conn:
        rows = conn.execute(select(QrCode.__table__)).mappings().all()
    assert [r["code_hash"] for r in rows] == [hashlib.sha256(code.encode()).hexdigest()]
    assert code not in str([dict(r) for r in rows])


# -- verification -----------------------------------------------------------------------------
def test_a_pharmacy_sees_the_person_masked_and_a_hospital_as_granted(client, mock):
    who = person(mock, "330100")
    act_id = activated(client, who)
    seen = scan(client, code_of(client, act_id))
    assert seen.status_code == 200, seen.get_json()
    view = seen.get_json()
    conforms("VerifiedPerson", view)
    assert view["city"] == "330100" and view["sign_level"] == 1 and view["sign_no"] and view["busi_type"] == "01"
    assert view["id_hint"] == who["id_number"][:3] + "*" * 11 + who["id_number"][-4:]
    assert view["name_hint"] == who["name"][0] + "*" * (len(who["name"]) - 1)
    assert "id_number" not in view and "name" not in view
    assert who["id_number"] not in seen.get_data(as_text=True) and who["name"] not in seen.get_data(as_text=True)

    full = scan(client, code_of(client, act_id), "04", HOSPITAL).get_json()
    assert full["id_number"] == who["id_number"] and full["name"] == who["name"]
    # pairwise person numbers: stable at one party, unrelated between parties
    assert full["essc_no"] != view["essc_no"]
    assert scan(client, code_of(client, act_id)).get_json()["essc_no"] == view["essc_no"]


def test_a_code_is_verified_once(client, mock):
    code = code_of(client, activated(client, person(mock, "330100")))
    assert scan(client, code).status_code == 200
    error(scan(client, code), 409, "QRCODE_USED")
    error(scan(client, code, headers=HOSPITAL), 409, "QRCODE_USED")


def test_an_expired_code_is_refused(app, client, mock):
    clock = app.extensions["essc"].qrcodes.clock = Clock()
    code = code_of(client, activated(client, person(mock, "330100")))
    clock.now += 59.9
    fresh = code_of(client, activated(client, person(mock, "330100", index=3)))
    clock.now += 0.2  # the first code is 60.1 s old, the second 0.2 s
    error(scan(client, code), 410, "QRCODE_EXPIRED")
    assert scan(client, fresh).status_code == 200


def test_the_validity_is_configurable(runtime, mock):
    runtime.config.qrcode_ttl_s = 15
    client = create_app(runtime, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES}).test_client()
    act_id = activated(client, person(mock, "330100"))
    before = time.time()
    body = show(client, act_id).get_json()
    assert body["ttl_s"] == 15 and before + 15 <= body["expires_at"] <= time.time() + 15


def test_a_new_code_replaces_the_unused_one(client, mock):
    act_id = activated(client, person(mock, "330100"))
    old = code_of(client, act_id)
    new = code_of(client, act_id)
    error(scan(client, old), 410, "QRCODE_EXPIRED")
    assert scan(client, new).status_code == 200


def test_a_business_type_the_party_may_not_use_is_refused_and_the_code_stays_valid(client, mock):
    code = code_of(client, activated(client, person(mock, "330100")))
    refused = error(scan(client, code, "04"), 403, "BUSI_TYPE_NOT_ALLOWED")
    assert refused["details"]["allowed"] == ["01", "02"]
    assert scan(client, code, "02").status_code == 200


def test_unknown_and_malformed_codes(client):
    error(scan(client, "essc1." + "A" * 43), 404, "QRCODE_NOT_FOUND")
    bad = error(scan(client, "11010119900307803X"), 400, "INVALID_INPUT")
    assert bad["details"]["field"] == "$.qrcode" and "11010119900307803X" not in str(bad)
    assert error(scan(client, "essc1." + "A" * 43, "05"), 400, "INVALID_INPUT")["details"]["field"] == "$.busi_type"


def test_only_relying_parties_verify_and_they_sign_like_channels(client, mock):
    code = code_of(client, activated(client, person(mock, "330100")))
    error(scan(client, code, headers=DEMO_CH), 401, "UNAUTHORIZED")  # a channel is no relying party
    error(scan(client, code, headers={"X-Relying-Party": "pharmacy", "X-Api-Key": "nope"}), 401, "UNAUTHORIZED")
    body = json.dumps({"qrcode": code, "busi_type": "01"}).encode()
    stamp, nonce = str(int(time.time())), "pharmacy-nonce-0001"
    headers = {"X-Relying-Party": "pharmacy", "X-Timestamp": stamp, "X-Nonce": nonce,
               "Content-Type": "application/json",
               "X-Signature": sign("pharmacy-secret", "POST", "/v1/qrcode/verify", stamp, nonce, body)}
    assert client.post("/v1/qrcode/verify", data=body, headers=headers).status_code == 200
    replay = client.post("/v1/qrcode/verify", data=body, headers=headers)
    assert error(replay, 401, "UNAUTHORIZED")["details"]["rule"] == "replay"


@pytest.fixture(params=["sqlite", "postgresql"])
def racing_app(request, service_config, registry, mock):
    """The API on the default SQLite database, and on PostgreSQL (skipped where none answers)."""
    from essc.service.runtime import Runtime

    if request.param == "postgresql":
        service_config.database_url = request.getfixturevalue("pg_url")
    rt = Runtime(service_config, registry=registry)
    try:
        yield create_app(rt, {"TESTING": True, "CHANNELS": CHANNELS, "RELYING_PARTIES": PARTIES})
    finally:
        rt.stop_workers()
        rt.store.engine.dispose()


def test_two_parties_verifying_one_code_at_once_exactly_one_wins(racing_app, mock):
    app = racing_app
    client = app.test_client()
    code = code_of(client, activated(client, person(mock, "330100")))
    codes = app.extensions["essc"].qrcodes
    barrier = threading.Barrier(2, timeout=10)
    spend = codes._spend

    def gated(*args):  # both verifications passed every check: they meet here, then race for the UPDATE
        barrier.wait()
        return spend(*args)

    codes._spend = gated
    results = []

    def verify(headers):
        results.append(scan(app.test_client(), code, "01", headers))

    threads = [threading.Thread(target=verify, args=(h,)) for h in (PHARMACY, HOSPITAL)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(r.status_code for r in results) == [200, 409]
    assert [r.get_json()["error"]["code"] for r in results if r.status_code == 409] == ["QRCODE_USED"]


def test_every_verification_is_audited_without_personal_data(client, runtime, mock):
    who = person(mock, "330100")
    act_id = activated(client, who)
    code = code_of(client, act_id)
    scan(client, code)
    scan(client, code)
    scan(client, code, "04")
    with runtime.store.engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(UsageEvent.__table__).order_by(text("id"))).mappings()]
    assert [(r["event"], r["party"], r["busi_type"], r["outcome"]) for r in rows] == [
        ("qrcode_issued", "demo", None, "ok"), ("qrcode_verified", "pharmacy", "01", "ok"),
        ("qrcode_refused", "pharmacy", "01", "QRCODE_USED"), ("qrcode_refused", "pharmacy", None,
                                                              "BUSI_TYPE_NOT_ALLOWED")]
    assert all(r["activation_id"] == act_id for r in rows[:3])
    dump = str(rows) + str(runtime.store.audit(act_id))
    for secret in (who["id_number"], who["name"], code, code.split(".", 1)[1]):
        assert secret not in dump
    trail = client.get(f"/v1/activations/{act_id}", headers=DEMO_CH).get_json()["audit"]
    assert trail[-1]["event"] == "qrcode_verified" and "pharmacy" in trail[-1]["detail"]


# -- lifecycle --------------------------------------------------------------------------------
def test_unlinking_ends_this_channels_binding_only(client, runtime, mock):
    who = person(mock, "330100")
    mine, theirs = activated(client, who), activated(client, who, headers=BANK)
    my_code, their_code = code_of(client, mine), code_of(client, theirs, BANK)

    error(client.delete(f"/v1/activations/{mine}", headers=BANK), 404, "NOT_FOUND")
    gone = client.delete(f"/v1/activations/{mine}", headers=DEMO_CH)
    assert gone.status_code == 200, gone.get_json()
    conforms("ActivationView", gone.get_json())
    assert gone.get_json()["status"] == "unlinked" and "credential" not in gone.get_json()
    assert client.delete(f"/v1/activations/{mine}", headers=DEMO_CH).get_json()["status"] == "unlinked"

    error(scan(client, my_code), 410, "QRCODE_REVOKED")
    error(show(client, mine), 409, "NOT_ACTIVATED")
    assert scan(client, their_code).status_code == 200  # the other channel's binding stays
    detail = client.get(f"/v1/activations/{mine}", headers=DEMO_CH).get_json()
    assert "credential" not in detail and detail["audit"][-1]["event"] == "unlinked"

    # the channel may bind again: a new submission starts from the card read
    again = client.post("/v1/activations", json={"city": "330100", **who, "consent": True}, headers=DEMO_CH)
    assert again.status_code == 201 and again.get_json()["id"] == mine
    assert client.post(f"/v1/activations/{mine}/verification", json=DEMO, headers=DEMO_CH).status_code == 201
    assert scan(client, code_of(client, mine)).status_code == 200


def test_only_an_activated_e_ssc_is_unlinked(client, mock):
    pending = client.post("/v1/activations", json={"city": "330100", **person(mock, "330100"), "consent": True},
                          headers=DEMO_CH).get_json()
    refused = error(client.delete(f"/v1/activations/{pending['id']}", headers=DEMO_CH), 409, "CONFLICT")
    assert refused["details"]["activation_status"] == "awaiting_verification"


def test_without_the_citys_card_status_the_stored_status_decides_and_says_so(client, runtime, mock, monkeypatch):
    """A plugin without card_status (contract 1.0): the status recorded last blocks or frees the code."""
    from essc.service import cardstatus

    monkeypatch.setattr(cardstatus, "offers_card_status", lambda registry, city: False)
    act_id = activated(client, person(mock, "330100"))
    code = code_of(client, act_id)

    def set_status(status):
        with runtime.store.engine.begin() as conn:
            conn.execute(text("UPDATE activations SET card_status = :s WHERE id = :i"), {"s": status, "i": act_id})

    set_status("reported_lost")
    refused = error(show(client, act_id), 409, "CARD_STATUS_ABNORMAL")
    assert refused["details"]["status"] == "reported_lost" and refused["details"]["card_status_source"] == "stored"
    assert error(scan(client, code), 409, "CARD_STATUS_ABNORMAL")["details"]["status"] == "reported_lost"
    set_status("normal")
    answer = show(client, act_id).get_json()
    assert answer["card_status_source"] == "stored" and "card_status" in answer["card_status_note"]
    assert scan(client, answer["qrcode"]).status_code == 200


def test_codes_are_purged_a_day_after_their_expiry_and_the_audit_stays(app, client, runtime, mock):
    clock = app.extensions["essc"].qrcodes.clock = Clock()
    act_id = activated(client, person(mock, "330100"))
    old = code_of(client, act_id)
    clock.now += 86400 + 61  # a day after the old code expired
    code_of(client, act_id)
    with runtime.store.engine.connect() as conn:
        hashes = [r.code_hash for r in conn.execute(select(QrCode.__table__))]
        issued = conn.execute(text("SELECT count(*) FROM usage_events WHERE event = 'qrcode_issued'")).scalar()
    assert hashlib.sha256(old.encode()).hexdigest() not in hashes and len(hashes) == 1 and issued == 2
    error(scan(client, old), 404, "QRCODE_NOT_FOUND")
