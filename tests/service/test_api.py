"""The HTTP API of the activation service, against the in-process mock of the city systems."""
import json
import logging
import re

import pytest
from sqlalchemy import create_engine

from essc.service.api import create_app
from essc.service.api.validation import component_validator, openapi_document
from essc.service.pages import page_routes

from .api_helpers import BANK, DEMO_CH, NOBODY, conforms
from .conftest import DEMO, person


def body(city, who):
    return {"city": city, **who, "consent": True}


def post(client, payload, headers=DEMO_CH, **kwargs):
    return client.post("/v1/activations", json=payload, headers=headers, **kwargs)


def verify(client, view_or_location, headers=DEMO_CH, **check):
    location = view_or_location if isinstance(view_or_location, str) else f"/v1/activations/{view_or_location['id']}"
    return client.post(location + "/verification", json={**DEMO, **check}, headers=headers)


# -- activations ---------------------------------------------------------------------------
def test_submit_reads_the_card_then_verification_issues_the_credential(client, mock):
    who = person(mock, "330100")
    first = post(client, body("330100", who))
    assert first.status_code == 201, first.get_json()
    view = first.get_json()
    conforms("ActivationView", view)
    assert view["status"] == "awaiting_verification" and not view["final"] and "credential" not in view
    assert first.headers["Location"] == f"/v1/activations/{view['id']}"

    verified = verify(client, first.headers["Location"])
    assert verified.status_code == 201, verified.get_json()
    done = verified.get_json()
    conforms("ActivationView", done)
    assert done["status"] == "activated" and done["final"]
    assert done["credential"]["aab301"] == "330100" and done["credential"]["signNo"]

    again = post(client, body("330100", who))  # the same channel submits again: no credential, ever
    assert again.status_code == 200 and again.get_json()["id"] == view["id"]
    assert again.get_json()["status"] == "activated" and "credential" not in again.get_json()
    assert verify(client, view).status_code == 409  # nothing to verify any more


def test_resubmission_with_wrong_data_and_forged_check_gets_no_credential(client, mock):
    """The attack of issue 7: an ID number is all the attacker knows."""
    who = person(mock, "330100")
    location = post(client, body("330100", who)).headers["Location"]
    assert verify(client, location).status_code == 201
    forged = post(client, body("330100", {**who, "name": "王五"}))
    assert "credential" not in forged.get_json() and "signNo" not in forged.get_data(as_text=True)
    attacker = post(client, body("330100", {**who, "name": "王五"}), headers=BANK)  # another channel
    assert attacker.status_code in (201, 202) and "signNo" not in attacker.get_data(as_text=True)
    refused = verify(client, attacker.get_json(), headers=BANK, face_token="made-up", sms_code="000000")
    assert refused.status_code in (403, 409), refused.get_json()
    assert "signNo" not in refused.get_data(as_text=True)


def test_a_channel_never_sees_another_channels_activation(client, mock):
    who = person(mock, "330100")
    created = post(client, body("330100", who), headers=BANK)
    location = created.headers["Location"]
    assert verify(client, location, headers=BANK).status_code == 201
    assert client.get(location, headers=BANK).get_json()["credential"]["signNo"]
    for response in (client.get(location, headers=DEMO_CH), verify(client, location)):
        assert response.status_code == 404  # as for an id that does not exist
        assert response.get_json()["error"]["code"] == "NOT_FOUND"
        assert "signNo" not in response.get_data(as_text=True)


def test_failed_checks_give_attempts_left_then_a_lockout_for_every_channel(client, mock, runtime):
    runtime.config.max_identity_attempts = 2
    who = person(mock, "330100")
    view = post(client, body("330100", who)).get_json()
    first = verify(client, view, sms_code="000000")
    assert first.status_code == 403
    error = first.get_json()["error"]
    assert error["code"] == "IDENTITY_MISMATCH" and error["details"]["attempts_left"] == 1
    locked = verify(client, view, sms_code="000000")
    assert locked.status_code == 423 and locked.get_json()["error"]["code"] == "IDENTITY_LOCKED"
    assert locked.get_json()["error"]["details"]["retry_after"] > 0 and int(locked.headers["Retry-After"]) > 1700
    conforms("ErrorResponse", locked.get_json())
    other = post(client, body("330100", who), headers=BANK).get_json()
    assert verify(client, other, headers=BANK).status_code == 423  # the right code: still locked


def test_password_factor_in_another_dialect(client, mock):
    view = post(client, body("350100", person(mock, "350100"))).get_json()
    response = verify(client, view, face_token="live-x", password="147258", sms_code=None)
    assert response.status_code == 400  # sms_code: null is not a string
    response = client.post(f"/v1/activations/{view['id']}/verification", headers=DEMO_CH,
                           json={"face_token": "live-x", "password": "147258"})
    assert response.status_code == 201, response.get_json()


def test_city_not_opened_is_a_final_result(client):
    response = post(client, body("460300", NOBODY))
    assert response.status_code == 200
    view = response.get_json()
    conforms("ActivationView", view)
    assert view["status"] == "city_not_opened" and view["final"]
    assert view["error"]["code"] == "CITY_NOT_OPENED"


def test_lost_card_names_the_status(client, mock):
    response = post(client, body("330100", person(mock, "330100", "reported_lost")))
    view = response.get_json()
    assert response.status_code == 200 and view["status"] == "card_status_abnormal"
    assert view["card_status"] == "reported_lost"
    assert view["error"]["code"] == "CARD_STATUS_ABNORMAL"
    assert view["error"]["details"]["status"] == "reported_lost"


def test_delayed_city_is_accepted_and_pending(client, mock):
    response = post(client, body("110000", person(mock, "110000")))
    assert response.status_code == 202, response.get_json()
    view = response.get_json()
    conforms("ActivationView", view)
    assert view["status"] == "pending_sync" and not view["final"] and view["next_attempt_at"]
    assert view["error"]["code"] == "RECORD_NOT_SYNCED"
    assert verify(client, view).status_code == 409  # no card record to verify against yet


def test_get_by_id_with_audit_trail(client, mock):
    created = post(client, body("330100", person(mock, "330100"))).get_json()
    verify(client, created)
    response = client.get(f"/v1/activations/{created['id']}", headers=DEMO_CH)
    assert response.status_code == 200
    detail = response.get_json()
    conforms("ActivationDetail", detail)
    events = [e["event"] for e in detail["audit"]]
    assert events[:2] == ["consent_given", "city_chosen"] and events[-1] == "activated"
    assert all(set(e) == {"at", "event", "status", "detail"} for e in detail["audit"])


@pytest.mark.parametrize("act_id", ["0" * 32, "not-an-id", "11010119900307803X"])
def test_unknown_activation_is_404(client, act_id):
    location = f"/v1/activations/{act_id}"
    for response in (client.get(location, headers=DEMO_CH), verify(client, location)):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "NOT_FOUND"
        assert act_id not in response.get_data(as_text=True)


# -- public and operational endpoints -------------------------------------------------------
def test_city_list_is_public(client):
    found = client.get("/v1/cities?q=hz").get_json()
    conforms("CitySearchResult", found)
    assert [c["code"] for c in found["cities"]][:2] == ["330100", "330500"]  # 杭州, 湖州 before 菏泽 ...
    assert client.get("/v1/cities?q=白杨").get_json()["cities"] == [
        {"code": "659012", "name": "白杨市", "short": "白杨", "pinyin": "baiyang", "initials": "by", "status": "opened",
         "plugin": "mohrss", "province": {"code": "650000", "name": "新疆维吾尔自治区", "short": "新疆"}}]
    everything = client.get("/v1/cities").get_json()
    conforms("CityList", everything)
    assert sum(len(p["cities"]) for p in everything["provinces"]) >= 340


def test_adapters_list_needs_a_channel(client):
    assert client.get("/v1/adapters").status_code == 401
    rows = client.get("/v1/adapters", headers=DEMO_CH).get_json()
    by_name = {r["name"]: r for r in rows}
    assert {"zhejiang", "fujian", "sichuan", "mohrss"} <= set(by_name)
    assert by_name["zhejiang"]["status"] == "loaded" and "330100" in by_name["zhejiang"]["cities"]
    for row in rows:
        conforms("Plugin", row)


def test_healthz(client, runtime, monkeypatch):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok", "queue": "ok", "queue_depth": 0}
    monkeypatch.setattr(runtime.store, "engine", create_engine("sqlite:////nonexistent-dir/x.sqlite3"))
    broken = client.get("/healthz")
    assert broken.status_code == 503
    assert broken.get_json()["database"] == "error"
    assert client.get("/metrics").status_code == 200  # a scrape survives a database outage


def test_metrics_after_a_call(client, mock):
    verify(client, post(client, body("330100", person(mock, "330100"))).get_json())
    post(client, {"city": "330100"})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert 'essc_activations{status="activated"} 1.0' in text
    assert 'essc_api_activations_submitted_total{outcome="awaiting_verification"} 1.0' in text
    assert 'essc_api_verifications_total{outcome="activated"} 1.0' in text
    assert 'essc_api_activations_submitted_total{outcome="invalid_input"} 1.0' in text
    assert 'essc_adapter_call_seconds_count{city="330100",operation="read_card",outcome="ok"} 1.0' in text
    assert "essc_queue_depth 0.0" in text


def test_metrics_observer_registered_once_per_plugin_manager(runtime, mock):
    apps = [create_app(runtime), create_app(runtime)]
    pm = runtime.registry.pm
    observers = [p for p in pm.get_plugins() if type(p).__name__ == "AdapterCallObserver"]
    assert len(observers) == 1
    client = apps[0].test_client()
    verify(client, post(client, body("330100", person(mock, "330100"))).get_json())
    for app in apps:  # every app counts the calls in its own registry
        text = app.test_client().get("/metrics").get_data(as_text=True)
        assert 'essc_adapter_call_seconds_count{city="330100",operation="activate",outcome="ok"} 1.0' in text


def test_openapi_document_covers_every_route(app, client):
    doc = client.get("/v1/openapi.json").get_json()
    assert doc["paths"] == openapi_document()["paths"] and doc["openapi"].startswith("3.1")
    # Flask's <act_id>, <session_id> are the document's {id}; any other <name> is {name}
    pages = page_routes(app)  # HTML pages (docs/launch.md); their JSON routes are documented
    assert "/h5/launch" in pages and "/h5/activation/state" not in pages
    routes = {re.sub(r"<(\w+)>", lambda m: "{id}" if m[1].endswith("id") else f"{{{m[1]}}}", r.rule)
              for r in app.url_map.iter_rules() if r.endpoint != "static" and r.rule not in pages}
    assert routes == set(doc["paths"])
    assert {"ApiKey", "Timestamp", "Nonce", "Signature", "Channel"} <= set(doc["components"]["securitySchemes"])
    for name in openapi_document()["components"]["schemas"]:
        component_validator(name).check_schema(openapi_document()["components"]["schemas"][name])


# -- bad requests: always a 4xx JSON error, never a 5xx ------------------------------------
GOOD = body("330100", NOBODY)
BAD = [
    ("invalid json", dict(data="{", content_type="application/json"), 400, "$"),
    ("not utf-8", dict(data=b'{"city": "\xff"}', content_type="application/json"), 400, "$"),
    ("text/plain", dict(data=json.dumps(GOOD), content_type="text/plain"), 415, "Content-Type"),
    ("form", dict(data={"city": "330100"}), 415, "Content-Type"),
    ("no body", dict(content_type="application/json"), 400, "$"),
    ("array", dict(json=[GOOD]), 400, "$"),
    ("null", dict(data="null", content_type="application/json"), 400, "$"),
    ("wrong type", dict(json={**GOOD, "city": 330100}), 400, "$.city"),
    ("consent false", dict(json={**GOOD, "consent": False}), 400, "$.consent"),
    ("consent missing", dict(json={k: v for k, v in GOOD.items() if k != "consent"}), 400, "$"),
    ("unknown field", dict(json={**GOOD, "mobile": "13812345678"}), 400, "$"),
    ("a verification with the submission", dict(json={**GOOD, "verification": DEMO}), 400, "$"),
    ("id format", dict(json={**GOOD, "id_number": "1101011990030780"}), 400, "$.id_number"),
    ("id checksum", dict(json={**GOOD, "id_number": "110101199003078031"}), 400, "id_number"),
    ("latin name", dict(json={**GOOD, "name": "Zhang San"}), 400, "$.name"),
    ("unknown city", dict(json={**GOOD, "city": "999999"}), 400, "city"),
    ("abolished city", dict(json={**GOOD, "city": "371200"}), 400, "city"),
    ("huge body", dict(data="[" + " " * 70_000 + "]", content_type="application/json"), 413, "$"),
    ("deep nesting", dict(data="[" * 30_000 + "]" * 30_000, content_type="application/json"), 400, "$"),
]


@pytest.mark.parametrize("case, kwargs, status, field", BAD, ids=[b[0] for b in BAD])
def test_bad_activation_requests(client, case, kwargs, status, field):
    response = client.post("/v1/activations", headers=DEMO_CH, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()
    conforms("ErrorResponse", error)
    assert error["error"]["code"] == "INVALID_INPUT"
    assert error["error"]["details"]["field"] == field
    text = response.get_data(as_text=True)
    for secret in (NOBODY["id_number"], NOBODY["name"], "110101199003078031", "live-test", "123456", "13812345678"):
        assert secret not in text


VERIFY_BAD = [
    ("unknown field", {**DEMO, "pin": "1"}, "$"),
    ("both factors", {**DEMO, "password": "147258"}, "$"),
    ("no factor", {"face_token": "live-x"}, "$"),
    ("short sms code", {**DEMO, "sms_code": "1234"}, "$.sms_code"),
    ("long sms code", {**DEMO, "sms_code": "12345678"}, "$.sms_code"),
    ("letters in the code", {**DEMO, "sms_code": "12ab56"}, "$.sms_code"),
    ("one-character face token", {**DEMO, "face_token": "x"}, "$.face_token"),
]


@pytest.mark.parametrize("case, payload, field", VERIFY_BAD, ids=[b[0] for b in VERIFY_BAD])
def test_bad_verifications_are_refused_before_the_city(client, mock, case, payload, field):
    view = post(client, body("330100", person(mock, "330100"))).get_json()
    response = client.post(f"/v1/activations/{view['id']}/verification", json=payload, headers=DEMO_CH)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["details"]["field"] == field
    assert mock.journal(city="330100", operation="verify_identity") == []


@pytest.mark.parametrize("method, path, status", [
    ("get", "/v1/nope", 404), ("get", "/", 404), ("put", "/v1/activations", 405), ("delete", "/v1/cities", 405),
    ("post", "/healthz", 405), ("get", "/v1/cities?q=" + "杭" * 65, 400),
])
def test_bad_routes_and_methods(client, method, path, status):
    response = getattr(client, method)(path, headers=DEMO_CH)
    assert response.status_code == status
    conforms("ErrorResponse", response.get_json())


def test_unexpected_errors_are_a_json_500_without_internals(client, runtime, monkeypatch, caplog):
    def boom(**_kwargs):
        raise RuntimeError(" ".join(("secret", "internals", *NOBODY.values())))

    monkeypatch.setattr(runtime.service, "submit", boom)
    response = post(client, GOOD)
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "ESSC_ERROR"
    assert "internals" not in response.get_data(as_text=True)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "essc.service.api")
    assert "unhandled RuntimeError on POST /v1/activations" in logged and "boom" in logged  # the frames
    assert NOBODY["id_number"] not in logged and NOBODY["name"] not in logged


# -- personal data never leaves ----------------------------------------------------------------
def test_no_personal_data_in_responses_or_logs(client, mock, caplog):
    caplog.set_level(logging.DEBUG)
    people = [person(mock, "330100"), person(mock, "330100", "reported_lost"), person(mock, "110000")]
    texts = []
    for city, who in zip(("330100", "330100", "110000"), people, strict=True):
        response = post(client, body(city, who))
        texts.append(response.get_data(as_text=True))
        texts.append(verify(client, response.headers["Location"]).get_data(as_text=True))
        texts.append(client.get(response.headers["Location"], headers=DEMO_CH).get_data(as_text=True))
    texts.append(post(client, {**body("330100", people[0]), "extra": people[0]["id_number"]}).get_data(as_text=True))
    texts.append(client.post("/v1/activations", json=body("330100", people[0]),
                             headers={"X-Channel": "demo"}).get_data(as_text=True))
    logs = [r.getMessage() for r in caplog.records if not r.name.startswith("essc.mockserver")]
    assert any("activation" in m for m in logs)  # the service did log
    for who in people:
        for text in texts + logs:
            assert who["id_number"] not in text and who["name"] not in text
