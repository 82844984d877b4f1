"""The admin API /__admin/ (docs/mock.md): cities, citizens, clock, faults, journal, reset."""
from __future__ import annotations

import json
import time

import pytest

from essc.core.masking import mask_id
from essc.mockserver import create_app

REST = {"Authorization": "Bearer mock-rest-token"}


def test_list_cities(client):
    cities = client.get("/__admin/cities").get_json()
    assert len(cities) == 14  # 13 of the hand-written dialects + 常州 (soap-1.1, a spec dialect)
    beijing = next(c for c in cities if c["code"] == "110000")
    assert beijing == {"code": "110000", "name": "北京", "province": "北京", "dialect": "xml-envelope",
                       "mode": "delayed", "sync_delay_s": 3600, "sync_after_attempts": None}
    assert {c["mode"] for c in cities} == {"supported", "delayed", "not_opened"}


def test_change_city(client):
    resp = client.put("/__admin/cities/330100", json={"mode": "delayed", "sync_delay_s": 5.5})
    assert resp.status_code == 200 and resp.get_json()["mode"] == "delayed"
    assert client.put("/__admin/cities/330100", json={"sync_after_attempts": None}).get_json()[
        "sync_after_attempts"] is None


@pytest.mark.parametrize("body", [{"mode": "closed"}, {"sync_delay_s": -1}, {"sync_after_attempts": 0},
                                  {"sync_after_attempts": True}, {"colour": "red"}, [1], "not json"])
def test_change_city_bad_input(client, body):
    kw = {"data": body} if isinstance(body, str) else {"json": body}
    resp = client.put("/__admin/cities/330100", **kw)
    assert resp.status_code == 400 and isinstance(resp.get_json()["error"], str)


def test_change_unknown_city_is_404(client):
    assert client.put("/__admin/cities/999999", json={"mode": "supported"}).status_code == 404


def test_add_city_serves_it_and_reset_removes_it(client):
    new = {"code": "320100", "name": "南京", "province": "江苏", "dialect": "rest-json", "mode": "supported"}
    resp = client.post("/__admin/cities", json=new)
    assert resp.status_code == 201 and resp.get_json()["sync_delay_s"] == 0
    assert client.post("/__admin/cities", json=new).status_code == 409
    person = client.get("/__admin/citizens?city=320100").get_json()[0]
    resp = client.post("/rest/v1/cards/query", headers=REST,
                       json={"cityCode": "320100", "idNumber": person["id_number"], "name": person["name"]})
    assert resp.status_code == 200
    client.post("/__admin/reset")
    assert client.get("/__admin/citizens?city=320100").status_code == 404


def test_a_reset_that_keeps_cities_keeps_the_added_ones_as_they_were_added(client):
    new = {"code": "320100", "name": "南京", "province": "江苏", "dialect": "rest-json", "mode": "supported"}
    assert client.post("/__admin/cities", json=new).status_code == 201
    client.put("/__admin/cities/320100", json={"mode": "not_opened"})
    client.put("/__admin/cities/330100", json={"mode": "not_opened"})
    client.post("/__admin/faults", json={"city": "320100", "kind": "http_500"})
    answer = client.post("/__admin/reset", json={"keep_cities": True}).get_json()
    assert answer["reset"] is True and answer["clock"]["mode"] == "frozen"
    modes = {c["code"]: c["mode"] for c in client.get("/__admin/cities").get_json()}
    assert (modes["320100"], modes["330100"]) == ("supported", "supported")  # as added, as initially
    assert client.get("/__admin/faults").get_json() == []
    assert client.post("/__admin/cities", json=new).status_code == 409  # still there
    client.post("/__admin/reset", json={"keep_cities": False})
    assert client.get("/__admin/citizens?city=320100").status_code == 404


@pytest.mark.parametrize("change", [{"dialect": "soap"}, {"code": "32010"}, {"mode": None}, {"name": ""},
                                    {"extra": 1}])
def test_add_city_bad_input(client, change):
    new = {"code": "320100", "name": "南京", "province": "江苏", "dialect": "rest-json", "mode": "supported", **change}
    resp = client.post("/__admin/cities", json=new)
    assert resp.status_code == 400, resp.get_json()


@pytest.mark.parametrize("query, status", [("", 400), ("?city=999999", 404), ("?city=330100&scenario=happy", 400)])
def test_citizens_bad_query(client, query, status):
    assert client.get(f"/__admin/citizens{query}").status_code == status


def test_clock(client, wait_for):
    assert client.get("/__admin/clock").get_json()["mode"] == "frozen"
    assert client.get("/__admin/clock").get_json()["now"] == 0
    assert client.post("/__admin/clock", json={"advance": 90.5}).get_json()["now"] == 90.5
    running = client.post("/__admin/clock", json={"mode": "realtime"}).get_json()
    assert running["mode"] == "realtime" and running["now"] >= 90.5
    wait_for(lambda: client.get("/__admin/clock").get_json()["now"] > running["now"], what="the clock runs")
    frozen = client.post("/__admin/clock", json={"mode": "frozen"}).get_json()["now"]
    real_start = time.monotonic()
    while time.monotonic() - real_start < 0.02:  # real time passes; the frozen clock stays
        assert client.get("/__admin/clock").get_json()["now"] == frozen


@pytest.mark.parametrize("body", [{}, {"advance": -5}, {"advance": "1h"}, {"mode": "paused"}, {"speed": 2}])
def test_clock_bad_input(client, body):
    assert client.post("/__admin/clock", json=body).status_code == 400


def test_realtime_is_the_default_clock():
    clock = create_app().test_client().get("/__admin/clock").get_json()
    assert clock["mode"] == "realtime"


def test_faults_crud(client):
    resp = client.post("/__admin/faults", json={"city": "330100", "operation": "health", "kind": "http_500",
                                                "attempts": [2, 1]})
    assert resp.status_code == 201
    rule = resp.get_json()
    assert rule["id"] == 1 and rule["attempts"] == [1, 2] and rule["kind"] == "http_500"
    client.post("/__admin/faults", json={"kind": "latency", "latency_ms": 5})
    listed = client.get("/__admin/faults").get_json()
    assert [r["id"] for r in listed] == [1, 2] and listed[1]["city"] == "*" and listed[1]["operation"] == "*"
    assert client.delete("/__admin/faults").get_json() == {"deleted": 2}
    assert client.get("/__admin/faults").get_json() == []


@pytest.mark.parametrize("body", [
    {}, {"kind": "explode"}, {"kind": "http_500", "city": "999999"}, {"kind": "http_500", "operation": "delete"},
    {"kind": "http_500", "attempts": [1], "every": 2}, {"kind": "http_500", "attempts": []},
    {"kind": "http_500", "attempts": [0]}, {"kind": "http_500", "attempts": "1"}, {"kind": "http_500", "every": 0},
    {"kind": "http_500", "rate": 1.5}, {"kind": "http_500", "rate": True}, {"kind": "latency", "latency_ms": -1},
    {"kind": "hang", "hang_s": "long"}, {"kind": "http_429", "retry_after": 1.5}, {"kind": "drop", "when": "now"},
])
def test_faults_bad_input(client, body):
    resp = client.post("/__admin/faults", json=body)
    assert resp.status_code == 400 and resp.get_json()["error"]
    assert client.get("/__admin/faults").get_json() == []


def test_journal_records_requests_with_masked_citizens(client, citizen):
    person = citizen("330100")
    client.post("/rest/v1/cards/query", headers=REST,
                json={"cityCode": "330100", "idNumber": person["id_number"], "name": person["name"]})
    client.get("/rest/v1/health?cityCode=330100")  # no token
    client.post("/xml/gateway", data=b"<broken")
    journal = client.get("/__admin/journal").get_json()
    assert [e["seq"] for e in journal] == [1, 2, 3]
    first = journal[0]
    assert set(first) == {"seq", "at", "city", "operation", "dialect", "attempt", "status", "outcome", "fault",
                          "elapsed_ms", "citizen"}
    assert (first["city"], first["operation"], first["dialect"], first["attempt"], first["status"],
            first["outcome"], first["fault"]) == ("330100", "read_card", "rest-json", 1, 200, "ok", None)
    assert first["citizen"] == mask_id(person["id_number"]) and first["elapsed_ms"] >= 0
    assert (journal[1]["status"], journal[1]["outcome"]) == (401, "unauthorized")
    assert (journal[2]["city"], journal[2]["operation"], journal[2]["attempt"], journal[2]["outcome"]) == (
        None, None, None, "unparseable")
    text = json.dumps(journal, ensure_ascii=False)
    assert person["id_number"] not in text and person["name"] not in text and person["card_no"] not in text


def test_journal_filters_and_clear(client):
    client.get("/rest/v1/health?cityCode=330100", headers=REST)
    client.get("/rest/v1/cities/330500/services", headers=REST)
    assert len(client.get("/__admin/journal?city=330500").get_json()) == 1
    assert len(client.get("/__admin/journal?operation=health").get_json()) == 1
    assert client.get("/__admin/journal?operation=nope").status_code == 400
    assert client.delete("/__admin/journal").get_json() == {"deleted": 2}
    assert client.get("/__admin/journal").get_json() == []


def test_reset_restores_everything(client):
    original = client.get("/__admin/citizens?city=330100").get_json()
    client.put("/__admin/cities/330100", json={"mode": "not_opened"})
    client.post("/__admin/clock", json={"advance": 100})
    client.post("/__admin/faults", json={"kind": "http_500"})
    client.get("/rest/v1/health?cityCode=330100", headers=REST)
    resp = client.post("/__admin/reset", json={"seed": 99})
    assert resp.status_code == 200 and resp.get_json()["seed"] == 99
    assert client.get("/__admin/citizens?city=330100").get_json() != original
    assert client.get("/__admin/faults").get_json() == [] and client.get("/__admin/journal").get_json() == []
    assert client.get("/__admin/clock").get_json()["now"] == 0
    assert next(c for c in client.get("/__admin/cities").get_json() if c["code"] == "330100")["mode"] == "supported"
    resp = client.get("/rest/v1/health?cityCode=330100", headers=REST)
    assert resp.status_code == 200
    assert client.get("/__admin/journal").get_json()[0]["attempt"] == 1  # attempts counted afresh
    assert client.post("/__admin/reset").get_json()["seed"] == 20261125  # back to the configured seed
    assert client.get("/__admin/citizens?city=330100").get_json() == original


@pytest.mark.parametrize("body", [{"seed": "abc"}, {"seed": True}, {"sed": 1}, {"keep_cities": "yes"}])
def test_reset_bad_input(client, body):
    assert client.post("/__admin/reset", json=body).status_code == 400
