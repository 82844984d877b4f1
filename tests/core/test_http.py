"""The shared HTTP helper: retry policy, failure mapping, time budget, no bodies in logs."""
import logging

import pytest
import requests
import responses

from essc.core.errors import UpstreamUnavailable
from essc.core.http import CityHttpClient, Timeouts, parse_json, parse_retry_after, parse_xml

URL = "http://city.test"


def client(retries=1, total_s=2.0):
    return CityHttpClient(URL, timeouts=Timeouts(0.5, 0.5, total_s, retries), plugin="t", backoff_s=0.001)


@responses.activate
def test_retries_idempotent_call_on_503_then_succeeds():
    responses.post(URL + "/q", status=503)
    responses.post(URL + "/q", json={"ok": 1})
    resp = client().request("POST", "/q", json={}, city="330100", operation="read_card")
    assert resp.json() == {"ok": 1} and len(responses.calls) == 2


@responses.activate
def test_gives_up_after_retries_with_typed_error():
    responses.post(URL + "/q", status=502)
    with pytest.raises(UpstreamUnavailable) as err:
        client(retries=2).request("POST", "/q", city="330100", operation="read_card")
    assert err.value.reason == "http_5xx" and err.value.details["http_status"] == 502
    assert err.value.details["city"] == "330100" and len(responses.calls) == 3


@responses.activate
def test_non_idempotent_call_is_never_retried():
    responses.post(URL + "/sign", status=503)
    with pytest.raises(UpstreamUnavailable):
        client(retries=3).request("POST", "/sign", idempotent=False)
    assert len(responses.calls) == 1


@responses.activate
def test_500_is_not_retried():
    responses.post(URL + "/q", status=500)
    with pytest.raises(UpstreamUnavailable, match="HTTP 500"):
        client(retries=3).request("POST", "/q")
    assert len(responses.calls) == 1


@responses.activate
def test_429_carries_retry_after():
    responses.post(URL + "/q", status=429, headers={"Retry-After": "12"})
    with pytest.raises(UpstreamUnavailable) as err:
        client().request("POST", "/q")
    assert err.value.reason == "rate_limited" and err.value.retry_after == 12.0 and err.value.retryable


@pytest.mark.parametrize("exc, reason", [
    (requests.ConnectTimeout("x"), "timeout"),
    (requests.ReadTimeout("x"), "timeout"),
    (requests.ConnectionError("refused"), "connection"),
    (requests.exceptions.ChunkedEncodingError("broken"), "connection"),
])
@responses.activate
def test_transport_failures_map_to_reasons(exc, reason):
    responses.post(URL + "/q", body=exc)
    with pytest.raises(UpstreamUnavailable) as err:
        client(retries=0).request("POST", "/q")
    assert err.value.reason == reason


@responses.activate
def test_business_errors_below_500_are_returned():
    responses.post(URL + "/q", status=404, json={"error": {"code": "CITY_NOT_OPENED"}})
    assert client().request("POST", "/q").status_code == 404


def test_budget_is_enforced_against_a_real_silent_server():
    import socket
    import time

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)  # accepts connections, never answers
    try:
        c = CityHttpClient(f"http://127.0.0.1:{srv.getsockname()[1]}", timeouts=Timeouts(0.3, 0.4, 0.6, 3))
        t0 = time.monotonic()
        with pytest.raises(UpstreamUnavailable) as err:
            c.request("GET", "/")
        assert err.value.reason == "timeout" and time.monotonic() - t0 < 1.0
    finally:
        srv.close()


@responses.activate
def test_malformed_bodies():
    responses.post(URL + "/j", body="{oops", status=200)
    responses.post(URL + "/x", body="<ROOT><HEADER>", status=200)
    with pytest.raises(UpstreamUnavailable) as err:
        parse_json(client().request("POST", "/j"), city="350100", operation="read_card")
    assert err.value.reason == "malformed_response" and err.value.details["city"] == "350100"
    with pytest.raises(UpstreamUnavailable, match="not well-formed XML"):
        parse_xml(client().request("POST", "/x"))


@responses.activate
def test_xml_entity_expansion_is_refused():
    bomb = '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><r>&b;</r>'
    responses.post(URL + "/x", body=bomb)
    with pytest.raises(UpstreamUnavailable):
        parse_xml(client().request("POST", "/x"))


@responses.activate
def test_logs_carry_no_body(caplog):
    responses.post(URL + "/q", json={"aac002": "11010119900307803X"})
    with caplog.at_level(logging.DEBUG, logger="essc"):
        client().request("POST", "/q", json={"aac002": "11010119900307803X", "aac003": "张三"}, city="330100")
    assert "/q" in caplog.text and "11010119900307803X" not in caplog.text and "张三" not in caplog.text


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(None) is None and parse_retry_after("soon") is None
