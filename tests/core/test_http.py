"""The shared HTTP helper: retry policy, failure mapping, time budget, no bodies in logs."""
import json
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


@pytest.mark.parametrize("env, backoff_s", [({}, 0.05), ({"ESSC_RETRY_BACKOFF_S": "0.2"}, 0.2),
                                             ({"ESSC_RETRY_BACKOFF_S": "0"}, 0.0)])
@responses.activate
def test_the_pause_before_a_retry_is_the_settings_backoff(monkeypatch, env, backoff_s):
    from essc.core.settings import PluginContext, Settings

    manifest = {"name": "t", "version": "1", "cities": [{"code": "330100"}],
                "timeouts": {"connect_s": 1, "read_s": 1, "total_s": 5, "retries": 2}}
    http = PluginContext.for_manifest(manifest, Settings.from_env(env=env, base_url=URL)).http_client()
    pauses: list[float] = []
    monkeypatch.setattr("essc.core.http.time.sleep", pauses.append)
    responses.post(URL + "/q", status=503)
    responses.post(URL + "/q", status=503)
    responses.post(URL + "/q", json={"ok": 1})
    assert http.request("POST", "/q", json={}).json() == {"ok": 1}
    assert len(pauses) == 2  # doubling per attempt, jitter x0.5-1.5
    assert backoff_s * 0.5 <= pauses[0] <= backoff_s * 1.5 and backoff_s <= pauses[1] <= backoff_s * 3


def test_a_bad_retry_backoff_is_refused_naming_it():
    from essc.core.settings import Settings

    with pytest.raises(ValueError, match="ESSC_RETRY_BACKOFF_S"):
        Settings.from_env(env={"ESSC_RETRY_BACKOFF_S": "-0.1"})


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


# -- the lean path (issue 10): the same bytes as Session.request, cookies, redirects, fallbacks --------
class _Wire:
    """A local HTTP/1.1 server that records every request's raw bytes (request line, headers,
    body) and answers by path: ``/cookie`` sets a cookie, ``/302``, ``/307`` redirect to
    ``/target``; anything else is 200 with a small JSON body. Keep-alive, as a city is."""

    def __init__(self):
        import socketserver
        import threading

        self.seen: list[bytes] = []
        wire = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                while True:
                    head = b""
                    while not head.endswith(b"\r\n\r\n"):
                        line = self.rfile.readline()
                        if not line:
                            return
                        head += line
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line.lower().startswith(b"content-length:"):
                            length = int(line.split(b":", 1)[1])
                    body = self.rfile.read(length) if length else b""
                    wire.seen.append(head + body)
                    path = head.split(b" ", 2)[1].split(b"?")[0]
                    extra, status, payload = b"", b"200 OK", b'{"ok": 1}'
                    if path == b"/cookie":
                        extra = b"Set-Cookie: sid=abc123; Path=/\r\n"
                    elif path in (b"/302", b"/307"):
                        status, extra, payload = path[1:] + b" Moved", b"Location: /target\r\n", b""
                    self.wfile.write(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n" + extra
                                     + b"Content-Length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def wire():
    server = _Wire()
    yield server
    server.close()


def _plain_session():
    """The session CityHttpClient built before the lean path: every call is Session.request."""
    from requests.adapters import HTTPAdapter

    session = requests.Session()
    session.trust_env = False
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _pair(url):
    """(lean client, Session.request client); the lean one counts the calls it sent lean."""
    lean = CityHttpClient(url, timeouts=Timeouts(1, 2, 4, 0), plugin="t")
    full = CityHttpClient(url, timeouts=Timeouts(1, 2, 4, 0), plugin="t", session=_plain_session())
    lean.lean_calls = 0
    send_prepared = lean._send_prepared

    def counted(*args, **kwargs):
        lean.lean_calls += 1
        return send_prepared(*args, **kwargs)

    lean._send_prepared = counted
    return lean, full


def _same_bytes(wire, calls):
    """Send ``calls`` ((method, path, kwargs)...) through both clients; the bytes the server
    got must be the same, call by call. Returns the lean client and its responses."""
    lean, full = _pair(wire.url)
    answers = []
    for method, path, kwargs in calls:
        answers.append(lean.request(method, path, **kwargs))
    got_lean, wire.seen[:] = list(wire.seen), []
    for method, path, kwargs in calls:
        full.request(method, path, **kwargs)
    assert got_lean == wire.seen
    return lean, answers


SIMPLE_CALLS = [
    ("POST", "/q", {"json": {"aac002": "11010119900307803X", "aac003": "张三", "n": 1.5, "l": [1, None]},
                    "headers": {"Authorization": "Bearer t0k"}}),
    ("POST", "/q", {"data": "<r><XM>张三</XM></r>".encode(), "params": None,
                    "headers": {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:x"'}}),
    ("POST", "/q", {"data": "a=1&b=两", "headers": {"content-type": "application/x-www-form-urlencoded"}}),
    ("POST", "/form", {"data": {"xm": "张三", "n": 2, "multi": ["a", "b"], "none": None, b"raw": b"v w"}}),
    ("GET", "/q", {"params": {"cityCode": "330100", "q": "a b&c=d/é", "many": ["1", "2"], "none": None, "n": 3}}),
    ("GET", "/p/a b/é", {}),
    ("DELETE", "/q", {"headers": {"Accept": "application/xml", "user-agent": "essc-test", "X-None": None}}),
    ("PUT", "/q", {"json": {"a": 1}, "data": b"", "headers": {"Content-Type": "application/json; charset=utf-8"}}),
    ("POST", "/q", {"json": {"a": 1}, "data": {"wins": "data"}}),
    ("get", "/q?fixed=1", {"params": {"more": "2"}}),
    ("patch", "/q", {"json": ["x"]}),
]


def test_lean_path_sends_the_same_bytes_as_session_request(wire):
    lean, answers = _same_bytes(wire, SIMPLE_CALLS)
    assert lean.lean_calls == len(SIMPLE_CALLS) - 1  # a path with a query string of its own goes the full way
    first = answers[0]
    assert isinstance(first, requests.Response) and first.status_code == 200 and first.json() == {"ok": 1}
    assert first.text == '{"ok": 1}' and first.content == b'{"ok": 1}' and first.encoding == "utf-8"
    assert first.url == wire.url + "/q" and first.headers["Content-Type"] == "application/json"
    assert first.request.body == json.dumps(SIMPLE_CALLS[0][2]["json"]).encode()
    assert first.elapsed.total_seconds() > 0 and first.history == [] and not first.cookies


def test_lean_path_keeps_the_session_headers_the_plugin_set(wire):
    lean, full = _pair(wire.url)
    for client in (lean, full):
        client.session.headers["X-App"] = "essc"
        client.session.headers["accept"] = "application/json"
        client.request("POST", "/q", json={"a": 1}, headers={"ACCEPT": "text/plain"})
    assert wire.seen[0] == wire.seen[1] and lean.lean_calls == 1
    assert b"X-App: essc\r\n" in wire.seen[0] and b"ACCEPT: text/plain\r\n" in wire.seen[0]


def test_cookies_a_city_sets_are_kept_and_sent_back(wire):
    calls = [("POST", "/cookie", {"json": {"a": 1}}), ("POST", "/q", {"json": {"a": 2}}), ("GET", "/q", {})]
    lean, answers = _same_bytes(wire, calls)
    assert lean.lean_calls == 3 and lean.session.cookies["sid"] == "abc123"
    assert answers[0].cookies["sid"] == "abc123"
    assert b"Cookie: sid=abc123\r\n" in wire.seen[1] and b"Cookie: sid=abc123\r\n" in wire.seen[2]
    assert b"Cookie" not in wire.seen[0]


@pytest.mark.parametrize("status, method_after, body_after", [(302, b"GET", False), (307, b"POST", True)])
def test_redirects_are_followed_as_session_request_follows_them(wire, status, method_after, body_after):
    lean, answers = _same_bytes(wire, [("POST", f"/{status}", {"json": {"aac002": "1"}, "headers": {"X-T": "1"}})])
    resp = answers[0]
    assert lean.lean_calls == 1 and resp.status_code == 200 and resp.url == wire.url + "/target"
    assert [r.status_code for r in resp.history] == [status] and resp.json() == {"ok": 1}
    first, second = wire.seen
    assert first.startswith(f"POST /{status} ".encode())  # the original request is sent once
    assert second.startswith(method_after + b" /target ") and second.endswith(b'{"aac002": "1"}') == body_after


def test_unusual_calls_go_through_session_request(wire):
    lean, full = _pair(wire.url)
    calls = [("POST", "/302", {"json": {"a": 1}, "allow_redirects": False}),
             ("GET", "/q", {"auth": ("user", "secret")}),
             ("POST", "/q", {"data": [("a", "1"), ("a", "2")]}),
             ("GET", "/q", {"params": [("a", "1")]}),
             ("GET", "/q", {"headers": requests.structures.CaseInsensitiveDict({"X-A": "1"})})]
    for method, path, kwargs in calls:
        lean.request(method, path, **kwargs)
    assert lean.lean_calls == 0
    got, wire.seen[:] = list(wire.seen), []
    for method, path, kwargs in calls:
        full.request(method, path, **kwargs)
    assert got == wire.seen and b"Authorization: Basic " in got[1] and b"a=1&a=2" in got[2]
    assert lean.request("POST", "/302", allow_redirects=False).status_code == 302


def test_a_session_given_or_changed_takes_the_full_path(wire):
    lean, _ = _pair(wire.url)
    lean.session.proxies = {"no": "proxy"}  # what the lean path does not reproduce
    lean.request("GET", "/q")
    lean.session.proxies = {}
    lean.session.hooks["response"].append(lambda r, *a, **k: r)
    lean.request("GET", "/q")
    assert lean.lean_calls == 0
    lean.session.hooks["response"].clear()
    lean.request("GET", "/q")
    assert lean.lean_calls == 1
    canned = requests.Response()
    canned.status_code = 200
    given = CityHttpClient(wire.url, session=_plain_session())  # a test's or tooling's session
    given.session.request = lambda *a, **k: canned
    assert given.request("GET", "/q") is canned and not wire.seen[3:]


def test_lean_path_raises_as_session_request_raises(wire):
    lean, full = _pair(wire.url)
    for client in (lean, full):
        with pytest.raises(requests.exceptions.InvalidJSONError):
            client.request("POST", "/q", json={"x": float("nan")})
        with pytest.raises(requests.exceptions.InvalidHeader):
            client.request("POST", "/q", headers={"X-A": "1\r\nX-Injected: 1"})
    assert wire.seen == []


@responses.activate
def test_responses_mocks_see_the_lean_path():
    responses.post(URL + "/q", json={"ok": 1}, headers={"Set-Cookie": "sid=r1; Path=/"})
    responses.get(URL + "/q", json={"ok": 2})
    c = client()
    sent = []
    original = c._send_prepared
    c._send_prepared = lambda *a: sent.append(1) or original(*a)
    assert c.request("POST", "/q", json={"aac003": "张三"}, headers={"X-A": "1"}).json() == {"ok": 1}
    assert c.request("GET", "/q", params={"cityCode": "330100"}).json() == {"ok": 2}
    assert len(sent) == 2 and len(responses.calls) == 2
    post, get = responses.calls[0].request, responses.calls[1].request
    assert post.body == b'{"aac003": "\\u5f20\\u4e09"}' and post.headers["Content-Type"] == "application/json"
    assert post.headers["X-A"] == "1" and post.headers["Content-Length"] == str(len(post.body))
    assert get.url == URL + "/q?cityCode=330100" and get.headers["Cookie"] == "sid=r1"


def test_cassette_recording_sees_the_lean_path(wire):
    from essc.conformance.cassettes import _capture

    lean, _ = _pair(wire.url)
    with _capture() as seen:
        lean.request("POST", "/q", json={"a": 1}, headers={"Authorization": "Bearer t"}, params={"v": "1"})
    assert lean.lean_calls == 1
    assert seen == [{"request": {"method": "POST", "path": "/q", "query": "v=1",
                                 "headers": {"Authorization": "Bearer t", "Content-Type": "application/json"},
                                 "body": '{"a": 1}'},
                     "answer": {"status": 200, "content_type": "application/json", "body": '{"ok": 1}'}}]


@pytest.mark.slow
def test_http_cost_bench_runs():
    """bench/http_cost.py with tiny numbers: both ways of every kind of call are measured (never a
    speed assertion: the figures belong to the bench)."""
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[2] / "bench" / "http_cost.py"
    proc = subprocess.run([sys.executable, str(bench), "--n", "4", "--rounds", "2"], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout)
    assert out["n"] == 4 and set(out["calls"]) == {"json", "data", "get"}
    for figures in out["calls"].values():
        assert figures["session"]["cpu_us"] > 0 and figures["lean"]["cpu_us"] > 0 and figures["ratio"] > 0
