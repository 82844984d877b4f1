"""Fault injection through the Flask test client: selectors, kinds, reproducibility, journal.
(drop and hang need a real connection: see test_serve.py.)"""
from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET

import pytest

from essc.mockserver import create_app
from essc.mockserver.faults import draw

REST = {"Authorization": "Bearer mock-rest-token"}


def health(client, city="330100"):
    return client.get(f"/rest/v1/health?cityCode={city}", headers=REST)


def add(client, **rule):
    resp = client.post("/__admin/faults", json=rule)
    assert resp.status_code == 201, resp.get_json()
    return resp.get_json()


def test_by_attempt_number(client):
    add(client, city="330100", operation="health", kind="http_503", attempts=[1, 3])
    responses = [health(client) for _ in range(4)]
    assert [r.status_code for r in responses] == [503, 200, 503, 200]
    assert "Retry-After" not in responses[0].headers
    assert health(client, "330500").status_code == 200  # another city counts its own attempts


def test_every_nth_attempt(client):
    add(client, city="*", operation="health", kind="http_500", every=2)
    assert [health(client).status_code for _ in range(4)] == [200, 500, 200, 500]


def test_no_selector_hits_every_attempt_of_its_operation_only(client):
    add(client, city="330100", operation="list_services", kind="http_500")
    assert client.get("/rest/v1/cities/330100/services", headers=REST).status_code == 500
    assert client.get("/rest/v1/cities/330100/services", headers=REST).status_code == 500
    assert health(client).status_code == 200


def test_429_carries_retry_after(client):
    add(client, kind="http_429", retry_after=7, attempts=[1])
    add(client, kind="http_429", attempts=[2])
    first, second = health(client), health(client)
    assert (first.status_code, first.headers["Retry-After"]) == (429, "7")
    assert (second.status_code, second.headers["Retry-After"]) == (429, "1")


def test_first_matching_rule_wins(client):
    add(client, kind="http_503", attempts=[1])
    add(client, kind="http_500")
    assert [health(client).status_code for _ in range(2)] == [503, 500]


def rate_pattern(seed: int, n: int = 30) -> list[int]:
    app = create_app({"SEED": seed, "CLOCK_MODE": "frozen"})
    client = app.test_client()
    rule = add(client, city="330100", operation="health", kind="http_503", rate=0.5)
    rate_pattern.rule_id = rule["id"]
    return [health(client).status_code for _ in range(n)]


def test_rate_is_reproducible_across_apps_with_the_same_seed():
    first, second = rate_pattern(20261125), rate_pattern(20261125)
    assert first == second
    assert {200, 503} == set(first)
    rid = rate_pattern.rule_id
    expected = [503 if draw(20261125, "330100", "health", a, rid) < 0.5 else 200 for a in range(1, 31)]
    assert first == expected
    assert rate_pattern(4242) != first


def test_several_rate_rules_each_fire(client):
    add(client, city="330100", operation="health", kind="http_503", rate=0.3)
    add(client, city="330100", operation="health", kind="http_500", rate=0.3)
    seen = {health(client).status_code for _ in range(60)}
    assert {200, 500, 503} <= seen, seen


def test_latency_then_normal_answer(client):
    add(client, kind="latency", latency_ms=150, attempts=[1])
    started = time.perf_counter()
    resp = health(client)
    assert time.perf_counter() - started >= 0.15
    assert resp.status_code == 200 and resp.get_json() == {"status": "UP"}
    entry = client.get("/__admin/journal").get_json()[0]
    assert entry["fault"] == "latency" and entry["outcome"] == "ok" and entry["elapsed_ms"] >= 150


def test_malformed_json_dialects(client, pinyin, gm):
    add(client, kind="malformed")
    for resp in (health(client), pinyin.raw("/health", pinyin.sign({"aab301": "350100"})),
                 gm.raw("health", gm.envelope({"xzqh": "510100"}))):
        assert resp.status_code == 200
        with pytest.raises(ValueError):
            json.loads(resp.data)


def test_malformed_xml(client, xml):
    add(client, kind="malformed", city="370200")
    resp = xml.raw(xml.envelope("HEALTH", {"AAB301": "370200"}))
    assert resp.status_code == 200 and resp.content_type.startswith("application/xml")
    with pytest.raises(ET.ParseError):
        ET.fromstring(resp.data)


def test_faults_come_before_authentication_and_are_journaled(client):
    add(client, kind="http_500", attempts=[1])
    assert client.get("/rest/v1/health?cityCode=330100").status_code == 500  # no token, still faulted
    assert client.get("/rest/v1/health?cityCode=330100").status_code == 401
    journal = client.get("/__admin/journal").get_json()
    assert [(e["attempt"], e["status"], e["outcome"], e["fault"]) for e in journal] == [
        (1, 500, "fault", "http_500"), (2, 401, "unauthorized", None)]


def test_requests_without_a_city_are_not_counted_nor_faulted(client, xml):
    add(client, kind="http_500")
    resp = xml.raw(b"<not-xml")
    assert resp.status_code == 400
    assert client.get("/__admin/journal").get_json()[0]["attempt"] is None


def test_attempts_counted_per_city_and_operation_for_every_dialect(client, state, pinyin, xml, gm):
    pinyin.raw("/health", pinyin.sign({"aab301": "350100"}, secret="bad"))
    xml.raw(xml.envelope("HEALTH", {"AAB301": "370200"}))
    xml.raw(xml.envelope("HEALTH", {"AAB301": "370200"}, key="bad"))
    gm.raw("health", gm.envelope({"xzqh": "510100"}))
    health(client)
    assert state.attempts("350100", "health") == 1
    assert state.attempts("370200", "health") == 2
    assert state.attempts("510100", "health") == 1
    assert state.attempts("330100", "health") == 1
    assert state.attempts("330100", "read_card") == 0
