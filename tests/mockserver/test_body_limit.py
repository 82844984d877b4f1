"""The mock under abuse, part 1: request bodies above MAX_BODY_BYTES get the dialect's own
protocol error without being read (by Content-Length) or after at most one byte past the limit
(streamed, chunked); the journal is a bounded ring and never holds a body."""
from __future__ import annotations

import io
import json
import threading
from typing import Any

import pytest
import requests
from flask import Response
from werkzeug.serving import make_server
from werkzeug.test import EnvironBuilder, run_wsgi_app

from essc.mockserver import DEFAULTS, create_app

LIMIT = 4096
REST = {"Authorization": "Bearer mock-rest-token"}
#: One POST per hand-written dialect: (path, content type).
POSTS = {
    "rest-json": ("/rest/v1/cards/query", "application/json"),
    "pinyin-form": ("/pinyin/card/query", "application/x-www-form-urlencoded"),
    "xml-envelope": ("/xml/gateway", "application/xml"),
    "gm-json": ("/gm/api/card.query", "application/json"),
}
#: The operation each POST is journaled under (xml-envelope's is inside the unread envelope).
OPERATION = {"rest-json": "read_card", "pinyin-form": "read_card", "xml-envelope": None, "gm-json": "read_card"}
DIALECTS = list(POSTS)
#: Each dialect answers a body above the limit as it answers a malformed request
#: (docs/dialects.md): (HTTP status, code).
MALFORMED = {"rest-json": (400, "BAD_REQUEST"), "pinyin-form": (200, "9002"), "xml-envelope": (400, "99001"),
             "gm-json": (200, "40003")}


@pytest.fixture
def app():
    return create_app({"CLOCK_MODE": "frozen", "MAX_BODY_BYTES": LIMIT})


class Untouchable:
    """A request body that fails the test if anybody reads it."""

    def read(self, *args: Any) -> bytes:
        raise AssertionError("the body was read")

    readline = readinto = read


class Endless:
    """A streamed body that never ends; counts the bytes handed out."""

    def __init__(self) -> None:
        self.given = 0

    def read(self, size: int = -1) -> bytes:
        size = 65536 if size is None or size < 0 else size
        self.given += size
        return b"1" * size


def call(app, path: str, stream, *, content_type: str, length: int | None, headers: dict | None = None):
    """Run one request through the WSGI app with ``stream`` as wsgi.input: with a
    Content-Length, or (``length=None``) streamed as a server does for a chunked body."""
    environ = EnvironBuilder(path=path, method="POST", content_type=content_type, headers=headers).get_environ()
    environ["wsgi.input"] = stream
    if length is None:
        environ.pop("CONTENT_LENGTH", None)
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = str(length)
    body, status, response_headers = run_wsgi_app(app, environ, buffered=True)
    return app.response_class(b"".join(body), status, response_headers)


def journal(client) -> list[dict]:
    return client.get("/__admin/journal").get_json()


def assert_refused(dialect: str, resp, answer_of) -> None:
    status, code, message = answer_of(dialect, resp)
    assert (status, code) == MALFORMED[dialect]
    assert f"larger than {LIMIT} bytes" in message


@pytest.mark.parametrize("dialect", DIALECTS)
@pytest.mark.parametrize("authenticated", [True, False])
def test_too_long_by_content_length_refused_unread(app, client, answer_of, dialect, authenticated):
    path, content_type = POSTS[dialect]
    resp = call(app, path, Untouchable(), content_type=content_type, length=5 * 1024 * 1024,
                headers=REST if authenticated else None)
    assert_refused(dialect, resp, answer_of)
    [entry] = journal(client)
    assert entry["outcome"] == "too_large" and entry["dialect"] == dialect
    assert entry["operation"] == OPERATION[dialect] and entry["city"] is None and entry["citizen"] is None
    assert entry["attempt"] is None and entry["status"] == resp.status_code
    assert len(json.dumps(entry)) < 400  # an entry, never the body


@pytest.mark.parametrize("dialect", DIALECTS)
def test_streamed_body_is_read_one_byte_past_the_limit_at_most(app, client, answer_of, dialect):
    path, content_type = POSTS[dialect]
    body = Endless()
    resp = call(app, path, body, content_type=content_type, length=None)
    assert_refused(dialect, resp, answer_of)
    assert body.given == LIMIT + 1
    assert journal(client)[-1]["outcome"] == "too_large"


def test_streamed_body_within_the_limit_is_served(app, client, citizen, answer_of):
    person = citizen("330100")
    data = json.dumps({"cityCode": "330100", "idNumber": person["id_number"], "name": person["name"]}).encode()
    resp = call(app, "/rest/v1/cards/query", io.BytesIO(data), content_type="application/json", length=None,
                headers=REST)
    assert resp.status_code == 200 and resp.get_json()["card"]["idNumber"] == person["id_number"]
    assert journal(client)[-1]["outcome"] == "ok"


def test_a_body_of_exactly_the_limit_is_served_one_more_byte_is_not(app, client, citizen, rest, pinyin, xml, gm,
                                                                      answer_of):
    person = citizen("330100")
    data = json.dumps({"cityCode": "330100", "idNumber": person["id_number"], "name": person["name"]}).encode()
    padded = data + b" " * (LIMIT - len(data))
    assert rest.call("POST", "/cards/query", padded, content_type="application/json").status_code == 200
    resp = rest.call("POST", "/cards/query", padded + b" ", content_type="application/json")
    assert_refused("rest-json", resp, answer_of)

    # the other dialects: a request padded to the limit is answered normally
    form = pinyin.sign({"aab301": "350100"})
    encoded = "&".join(f"{k}={v}" for k, v in form.items())
    resp = pinyin.client.post("/pinyin/health", data=encoded + "&" + "p" * (LIMIT - len(encoded) - 1),
                              content_type="application/x-www-form-urlencoded")
    assert answer_of("pinyin-form", resp)[1] == "0000"
    envelope = xml.envelope("HEALTH", {"AAB301": "370200"})
    resp = xml.raw(envelope + b"\n" * (LIMIT - len(envelope)))
    assert answer_of("xml-envelope", resp)[1] == "90000"
    sealed = json.dumps(gm.envelope({"xzqh": "510100"})).encode()
    resp = gm.client.post("/gm/api/health", data=sealed + b" " * (LIMIT - len(sealed)),
                          content_type="application/json")
    assert answer_of("gm-json", resp)[1] == "0"


def test_soap_dialect_refuses_with_a_client_fault(app, client):
    """A spec dialect (SOAP 1.1: faults travel as HTTP 500 by that protocol) refuses with its
    own Client fault, journaled as too_large."""
    resp = call(app, "/ws/EsscService", Untouchable(), content_type="text/xml", length=LIMIT + 1)
    assert b"<faultcode>soapenv:Client</faultcode>" in resp.data and f"larger than {LIMIT}".encode() in resp.data
    assert journal(client)[-1]["outcome"] == "too_large"


@pytest.mark.parametrize("streamed", [False, True])
def test_admin_api_refuses_large_bodies_with_413(app, client, streamed):
    resp = call(app, "/__admin/faults", Endless() if streamed else Untouchable(), content_type="application/json",
                length=None if streamed else LIMIT + 1)
    assert resp.status_code == 413 and resp.get_json() == {"error": f"the request body is larger than {LIMIT} bytes"}
    assert client.get("/__admin/faults").get_json() == []


# -- over real HTTP ----------------------------------------------------------------------------
def _chunks(data: bytes, size: int = 1000):
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.fixture
def werkzeug_url(app):
    """The dev server: it hands chunked bodies to the app as a terminated stream."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.mark.parametrize("server", ["waitress", "werkzeug"])
@pytest.mark.parametrize("chunked", [False, True])
def test_over_http_every_dialect_refuses_in_its_own_form(request, answer_of, server, chunked):
    url = request.getfixturevalue("live").url if server == "waitress" else request.getfixturevalue("werkzeug_url")
    big = b"1" * (LIMIT * 10)
    with requests.Session() as session:
        session.trust_env = False
        for dialect, (path, content_type) in POSTS.items():
            resp = session.post(f"{url}{path}", data=_chunks(big) if chunked else big, timeout=30,
                                headers={"Content-Type": content_type, "Connection": "close"})
            assert_refused(dialect, Response(resp.content, resp.status_code,
                                             content_type=resp.headers["Content-Type"]), answer_of)
        # and the server still answers normally afterwards
        ok = session.get(f"{url}/rest/v1/health?cityCode=330100", headers=REST, timeout=30)
        assert ok.json() == {"status": "UP"}


# -- configuration -----------------------------------------------------------------------------
def test_default_limits():
    assert DEFAULTS["MAX_BODY_BYTES"] == 256 * 1024 and DEFAULTS["JOURNAL_MAX"] == 10_000
    app = create_app()
    assert app.config["MAX_BODY_BYTES"] == 256 * 1024 and app.config["JOURNAL_MAX"] == 10_000


def test_limits_from_the_environment(monkeypatch):
    monkeypatch.setenv("ESSC_MOCK_MAX_BODY_BYTES", "2048")
    monkeypatch.setenv("ESSC_MOCK_JOURNAL_MAX", "3")
    app = create_app()
    assert app.config["MAX_BODY_BYTES"] == 2048 and app.config["JOURNAL_MAX"] == 3
    explicit = create_app({"MAX_BODY_BYTES": 100, "JOURNAL_MAX": 7})  # an explicit config wins
    assert explicit.config["MAX_BODY_BYTES"] == 100 and explicit.config["JOURNAL_MAX"] == 7


@pytest.mark.parametrize("config", [{"MAX_BODY_BYTES": 0}, {"MAX_BODY_BYTES": "big"}, {"JOURNAL_MAX": -1},
                                    {"JOURNAL_MAX": True}, {"MAX_BODY_BYTES": 1.5}])
def test_bad_limits_are_refused(config):
    with pytest.raises(ValueError, match=next(iter(config))):
        create_app(config)


def test_bad_limit_in_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("ESSC_MOCK_JOURNAL_MAX", "lots")
    with pytest.raises(ValueError, match="ESSC_MOCK_JOURNAL_MAX"):
        create_app()


# -- the journal: a bounded ring ---------------------------------------------------------------
def test_journal_is_a_ring_of_the_newest_entries():
    client = create_app({"CLOCK_MODE": "frozen", "JOURNAL_MAX": 5}).test_client()
    for _ in range(12):
        assert client.get("/rest/v1/health?cityCode=330100", headers=REST).status_code == 200
    entries = journal(client)
    assert [e["seq"] for e in entries] == [8, 9, 10, 11, 12]  # seq keeps counting: the gap shows the drop
    assert [e["attempt"] for e in entries] == [8, 9, 10, 11, 12]
    assert client.delete("/__admin/journal").get_json() == {"deleted": 5}


def test_journal_keeps_no_more_than_an_id_number_of_a_citizen(client):
    resp = client.post("/rest/v1/cards/query", headers=REST,
                       json={"cityCode": "330100", "idNumber": "1" * 3000, "name": "张三"})
    assert resp.status_code == 400
    [entry] = journal(client)
    assert entry["citizen"] == "111" + "*" * 11 + "1111…" and len(json.dumps(entry)) < 400

