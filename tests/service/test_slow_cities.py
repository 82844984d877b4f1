"""Slow cities: the API answers within its budget and the city step goes on in the flow pool;
the channel long-polls (``?wait=S``) for the next transition; a full pool refuses new work
with 503 + Retry-After before anything is recorded. Every wait here waits for an event."""
from __future__ import annotations

import threading

import pytest

from essc.service import states
from essc.service.api import create_app
from essc.service.runtime import Runtime

from .conftest import DEMO, person
from .workers import wait_until

AUTH = {"X-Channel": "demo", "X-Api-Key": "demo-key"}


@pytest.fixture
def slow(service_config, registry, mock):
    """A runtime with a flow pool and a short answer budget; the mock's 330100 answers slowly."""
    service_config.answer_budget_s = 0.2
    service_config.max_in_flight = 4
    rt = Runtime(service_config, registry=registry)
    yield rt, create_app(rt, {"TESTING": True}).test_client()
    rt.stop_workers()
    rt.close()
    rt.store.engine.dispose()


def submit(client, who, city="330100"):
    return client.post("/v1/activations", json={"city": city, **who, "consent": True}, headers=AUTH)


def test_a_slow_card_read_is_answered_202_and_followed_by_a_long_poll(slow, mock):
    rt, client = slow
    mock.fault(city="330100", operation="read_card", kind="latency", latency_ms=1500)
    first = submit(client, person(mock, "330100"))
    assert first.status_code == 202 and first.get_json()["status"] == states.RECEIVED  # within the budget
    location = first.headers["Location"]
    done = client.get(location + "?wait=20", headers=AUTH)  # returns at the transition, not after 20 s
    assert done.status_code == 200 and done.get_json()["status"] == states.AWAITING_VERIFICATION
    assert [e["event"] for e in done.get_json()["audit"]][-1] == "card_read"


def test_a_slow_check_answers_202_then_the_credential_is_read_by_the_channel(slow, mock):
    rt, client = slow
    location = submit(client, person(mock, "330100")).headers["Location"]
    assert client.get(location + "?wait=20", headers=AUTH).get_json()["status"] == states.AWAITING_VERIFICATION
    mock.fault(city="330100", operation="activate", kind="latency", latency_ms=1500)
    verified = client.post(location + "/verification", json=DEMO, headers=AUTH)
    assert verified.status_code == 202 and "credential" not in verified.get_json()
    view = verified.get_json()
    while view["status"] != states.ACTIVATED:  # each long-poll ends at a transition
        view = client.get(location + "?wait=20", headers=AUTH).get_json()
        assert view["status"] in (states.AWAITING_VERIFICATION, states.VERIFIED, states.ACTIVATED), view
    assert view["credential"]["signNo"]


def test_a_check_that_ends_right_after_the_budget_answers_201_with_the_credential(slow, mock, monkeypatch):
    """The budget ran out, but by the time the answer is made the check has activated the card:
    201 with the credential (this request's check issued it), never a 200 without it."""
    rt, client = slow
    location = submit(client, person(mock, "330100")).headers["Location"]
    assert client.get(location + "?wait=20", headers=AUTH).get_json()["status"] == states.AWAITING_VERIFICATION
    mock.fault(city="330100", operation="activate", kind="latency", latency_ms=400)  # slower than the budget
    activated = threading.Event()
    rt.store.changes.subscribe(lambda act_id, status, act, callback: status == states.ACTIVATED and activated.set())
    read = rt.store.get

    def read_once_activated(act_id):  # the answer's re-read comes after the step's transition
        activated.wait(20)
        return read(act_id)

    monkeypatch.setattr(rt.store, "get", read_once_activated)
    verified = client.post(location + "/verification", json=DEMO, headers=AUTH)
    assert verified.status_code == 201, verified.get_json()
    assert verified.get_json()["status"] == states.ACTIVATED and verified.get_json()["credential"]["signNo"]


def test_a_failed_check_slower_than_the_budget_is_recorded_for_the_channel(slow, mock):
    rt, client = slow
    location = submit(client, person(mock, "330100")).headers["Location"]
    client.get(location + "?wait=20", headers=AUTH)
    mock.fault(city="330100", operation="verify_identity", kind="latency", latency_ms=1500)
    refused = client.post(location + "/verification", json={**DEMO, "sms_code": "000000"}, headers=AUTH)
    assert refused.status_code == 202
    view = client.get(location + "?wait=20", headers=AUTH).get_json()
    assert view["status"] == states.AWAITING_VERIFICATION
    assert view["error"]["code"] == "IDENTITY_MISMATCH" and view["error"]["details"]["attempts_left"] == 2


def test_a_full_pool_refuses_new_work_before_recording_it(slow, mock):
    rt, client = slow
    mock.fault(city="330100", operation="read_card", kind="hang")
    people = mock.citizens("330100", "normal")[:5]
    for who in people[:4]:  # four card reads hang in the pool: it is full
        assert submit(client, {"id_number": who["id_number"], "name": who["name"]}).status_code == 202
    before = rt.store.counts()
    busy = submit(client, {"id_number": people[4]["id_number"], "name": people[4]["name"]})
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert busy.get_json()["error"]["code"] == "SERVICE_BUSY"
    assert rt.store.counts() == before  # nothing recorded: the channel retries after Retry-After
    mock.reset()  # the hung reads are released (a reset frees hanging requests)
    assert rt.pool.wait_idle(30)
    assert submit(client, {"id_number": people[4]["id_number"], "name": people[4]["name"]}).status_code in (201, 202)


def test_the_queue_workers_hand_work_to_the_pool(slow, mock):
    """A pending activation retried by the queue runs in the pool: the worker thread is free."""
    rt, client = slow
    mock.set_city("110000", mode="delayed", sync_delay_s=30)
    rt.start_workers()
    first = submit(client, person(mock, "110000"), city="110000")
    assert first.get_json()["status"] == states.PENDING_SYNC
    mock.advance(30)
    view = first.get_json()
    while view["status"] in states.RUNNABLE:
        view = client.get(first.headers["Location"] + "?wait=20", headers=AUTH).get_json()
    assert view["status"] == states.AWAITING_VERIFICATION


@pytest.mark.parametrize("wait", ["-1", "31", "soon", "nan"])
def test_a_bad_wait_is_refused_naming_it(slow, mock, wait):
    rt, client = slow
    location = submit(client, person(mock, "330100")).headers["Location"]
    response = client.get(f"{location}?wait={wait}", headers=AUTH)
    assert response.status_code == 400 and response.get_json()["error"]["details"]["field"] == "wait"


def test_a_long_poll_on_an_activation_at_rest_answers_at_once(slow, mock):
    rt, client = slow
    location = submit(client, person(mock, "460300"), city="460300").headers["Location"]  # not opened: final
    answered = threading.Event()

    def poll():
        client.get(location + "?wait=30", headers=AUTH)
        answered.set()

    threading.Thread(target=poll, daemon=True).start()
    assert answered.wait(10)  # far less than the 30 s asked for: nothing can change


# -- signed callbacks -------------------------------------------------------------------------------
class Receiver:
    """The channel's callback endpoint: answers the statuses it is told to, records every call."""

    def __init__(self, answers):
        import queue
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        from flask import Flask, request

        self.calls = queue.Queue()
        self.answers = list(answers)
        app = Flask("receiver")

        @app.post("/hooks/essc")
        def hook():
            self.calls.put({"headers": dict(request.headers), "body": request.get_data()})
            return ("", self.answers.pop(0) if self.answers else 204)

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        self.server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/essc?tenant=7"

    def next(self, timeout=30):
        return self.calls.get(timeout=timeout)  # waits for the event: the service's POST

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def test_a_signed_callback_is_delivered_and_retried(slow, mock):
    import json as _json

    from essc.service.callbacks import target_of
    from essc.service.channels import Channel, Channels, sign

    rt, _client = slow
    channels = Channels({"bank": Channel("bank", hmac_secret="bank-secret")})
    client = create_app(rt, {"TESTING": True, "CHANNELS": channels}).test_client()
    receiver = Receiver([503])  # the first delivery fails: the service retries it
    rt.start_workers()
    try:
        who = person(mock, "330100")
        body = _json.dumps({"city": "330100", **who, "consent": True, "callback_url": receiver.url},
                           ensure_ascii=False).encode()
        stamp, nonce = str(int(__import__("time").time())), "n" * 20
        created = client.post("/v1/activations", data=body, content_type="application/json", headers={
            "X-Channel": "bank", "X-Timestamp": stamp, "X-Nonce": nonce,
            "X-Signature": sign("bank-secret", "POST", "/v1/activations", stamp, nonce, body)})
        assert created.status_code == 201, created.get_json()
        first, second = receiver.next(), receiver.next()  # refused with 503, then delivered
        for call in (first, second):
            h = call["headers"]
            expected = sign("bank-secret", "POST", target_of(receiver.url), h["X-Timestamp"], h["X-Nonce"],
                            call["body"])
            assert h["X-Channel"] == "bank" and h["X-Signature"] == expected  # verifiable by the channel
        event = _json.loads(second["body"])
        assert event["event"] == "activation.updated"
        assert event["activation"]["status"] == states.AWAITING_VERIFICATION
        assert "credential" not in event["activation"] and who["id_number"] not in second["body"].decode()
        assert first["headers"]["X-Nonce"] != second["headers"]["X-Nonce"]
        act_id = created.get_json()["id"]
        # recorded once the channel's 2xx came back (after the POST above reached the receiver)
        assert wait_until(lambda: "callback_delivered" in [e["event"] for e in rt.store.audit(act_id)], timeout=30)
    finally:
        rt.stop_workers()
        receiver.stop()


def test_a_callback_needs_the_channels_hmac_secret(slow, mock):
    from essc.service.channels import Channel, Channels

    rt, _client = slow
    client = create_app(rt, {"TESTING": True, "CHANNELS": Channels({"keyonly": Channel("keyonly", api_key="k")})}
                        ).test_client()
    response = client.post("/v1/activations", headers={"X-Channel": "keyonly", "X-Api-Key": "k"}, json={
        "city": "330100", **person(mock, "330100"), "consent": True, "callback_url": "https://channel.example/h"})
    assert response.status_code == 400 and response.get_json()["error"]["details"]["field"] == "$.callback_url"
    assert rt.store.counts() == {}


def test_a_city_with_a_full_bulkhead_gets_429_and_nothing_is_recorded(slow, mock):
    rt, client = slow
    guard = rt.registry.resilience.guard("330100")
    # every slot of 杭州 taken (as by calls that hang) and as many calls waiting for one
    guard.in_flight = guard.waiting = guard.limit
    try:
        response = submit(client, person(mock, "330100"))
        assert response.status_code == 429 and response.get_json()["error"]["code"] == "CITY_BUSY"
        assert int(response.headers["Retry-After"]) >= 1 and rt.store.counts() == {}
        assert submit(client, person(mock, "350100"), city="350100").status_code == 201  # other cities go on
    finally:
        guard.in_flight = guard.waiting = 0
