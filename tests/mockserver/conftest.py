"""Fixtures for the mock city systems: the app (frozen clock), its test client, a live server,
and one small wire client per dialect that signs requests exactly as docs/dialects.md says."""
from __future__ import annotations

import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from essc.core.signing import canonical_string, hmac_sha256, sm3_hex, sm4_decrypt, sm4_encrypt
from essc.mockserver import create_app
from essc.mockserver.serve import start_in_thread


def wait_for(predicate: Callable[[], Any], timeout: float = 10, interval: float = 0.01, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds
    pass (AssertionError naming ``what``). For an observable event - the mock's attempt
    counter, the journal - instead of a fixed sleep that hopes the event happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what or predicate}")
        time.sleep(interval)


@pytest.fixture(name="wait_for")
def wait_for_fixture():
    """:func:`wait_for` for tests (the suite imports test modules by path, not conftest)."""
    return wait_for


@pytest.fixture
def app():
    return create_app({"CLOCK_MODE": "frozen"})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def state(app):
    return app.extensions["essc_mock"]


@pytest.fixture
def live(app):
    server = start_in_thread(app)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def citizen(client):
    """``citizen(city, scenario="normal")``: the first synthetic citizen of that scenario (admin view)."""

    def find(city: str, scenario: str = "normal") -> dict[str, Any]:
        resp = client.get(f"/__admin/citizens?city={city}&scenario={scenario}")
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()[0]

    return find


class Rest:
    def __init__(self, client):
        self.client = client

    def call(self, method: str, path: str, body: Any = None, token: str | None = "mock-rest-token", **kw):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if body is not None and not isinstance(body, (str, bytes)):
            kw["json"] = body
        elif body is not None:
            kw["data"] = body
        return self.client.open(f"/rest/v1{path}", method=method, headers=headers, **kw)


class Pinyin:
    def __init__(self, client):
        self.client = client

    @staticmethod
    def sign(fields: dict[str, str], secret: str = "mock-hmac-secret", timestamp: int | None = None,
             appid: str = "essc-mock") -> dict[str, str]:
        form = {"appid": appid, "timestamp": str(int(time.time()) if timestamp is None else timestamp),
                "nonce": uuid.uuid4().hex[:12], **fields}
        form["sign"] = hmac_sha256(form, secret)
        return form

    def call(self, path: str, fields: dict[str, str], **sign_kw) -> dict[str, Any]:
        resp = self.client.post(f"/pinyin{path}", data=self.sign(fields, **sign_kw))
        assert resp.status_code == 200
        return resp.get_json()

    def raw(self, path: str, form: dict[str, str]):
        return self.client.post(f"/pinyin{path}", data=form)


class Xml:
    def __init__(self, client):
        self.client = client

    @staticmethod
    def envelope(msg_type: str, body: dict[str, str], key: str = "mock-xml-key", sender: str = "essc-mock",
                 msg_id: str | None = None) -> bytes:
        msg_id = msg_id or uuid.uuid4().hex
        dsign = sm3_hex(msg_type + msg_id + canonical_string(body) + "&key=" + key)
        root = ET.Element("ROOT")
        header = ET.SubElement(root, "HEADER")
        for tag, value in (("MsgType", msg_type), ("SenderID", sender), ("MsgID", msg_id),
                           ("SendTime", "20261125103000"), ("DSIGN", dsign)):
            ET.SubElement(header, tag).text = value
        body_el = ET.SubElement(root, "BODY")
        for tag, value in body.items():
            ET.SubElement(body_el, tag).text = value
        return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8")

    def raw(self, data: bytes):
        return self.client.post("/xml/gateway", data=data, content_type="application/xml; charset=utf-8")

    def call(self, msg_type: str, body: dict[str, str], **kw) -> tuple[dict[str, str], ET.Element]:
        resp = self.raw(self.envelope(msg_type, body, **kw))
        assert resp.status_code == 200
        assert resp.content_type.startswith("application/xml")
        return self.parse(resp.data)

    @staticmethod
    def parse(data: bytes) -> tuple[dict[str, str], ET.Element]:
        root = ET.fromstring(data)
        return {c.tag: c.text or "" for c in root.find("HEADER")}, root.find("BODY")


class Gm:
    KEY = b"essc-mock-sm4key"
    SECRET = "mock-gm-secret"

    def __init__(self, client):
        self.client = client

    def envelope(self, payload: Any, secret: str | None = None, app_id: str = "essc-mock") -> dict[str, str]:
        timestamp = str(int(time.time() * 1000))
        encrypted = sm4_encrypt(self.KEY, json.dumps(payload).encode())
        sign = sm3_hex(app_id + timestamp + encrypted + (secret or self.SECRET))
        return {"appId": app_id, "timestamp": timestamp, "encryptData": encrypted, "signData": sign}

    def open(self, resp) -> tuple[int, dict[str, Any]]:
        """Check the answer's signData, decrypt its payload."""
        assert resp.status_code == 200
        body = resp.get_json()
        assert body["signData"] == sm3_hex(str(body["code"]) + body["encryptData"] + self.SECRET)
        return body["code"], json.loads(sm4_decrypt(self.KEY, body["encryptData"]))

    def call(self, method: str, payload: Any, **kw) -> tuple[int, dict[str, Any]]:
        return self.open(self.client.post(f"/gm/api/{method}", json=self.envelope(payload, **kw)))

    def raw(self, method: str, body: Any):
        return self.client.post(f"/gm/api/{method}", json=body)


@pytest.fixture
def rest(client):
    return Rest(client)


@pytest.fixture
def pinyin(client):
    return Pinyin(client)


@pytest.fixture
def xml(client):
    return Xml(client)


@pytest.fixture
def gm(client):
    return Gm(client)


def answer_of(dialect: str, resp) -> tuple[int, str, str]:
    """``(HTTP status, code, message)`` of an answer that is well-formed in ``dialect``
    (AssertionError otherwise): the dialect's own JSON or XML, gm-json's signData checked.
    Success answers give the dialect's success code (rest-json: ``"OK"``)."""
    assert resp.status_code != 500, resp.data[:500]
    if dialect == "rest-json":
        assert resp.content_type.startswith("application/json"), resp.data[:500]
        body = resp.get_json()
        if resp.status_code < 300:
            assert isinstance(body, dict) and "error" not in body
            return resp.status_code, "OK", ""
        return resp.status_code, body["error"]["code"], body["error"]["message"]
    if dialect == "pinyin-form":
        assert resp.status_code == 200 and resp.content_type.startswith("application/json"), resp.data[:500]
        body = resp.get_json()
        assert isinstance(body["data"], dict)
        return 200, body["code"], body["msg"]
    if dialect == "xml-envelope":
        assert resp.content_type.startswith("application/xml"), resp.data[:500]
        header, _ = Xml.parse(resp.data)
        return resp.status_code, header["ResultCode"], header["ResultMsg"]
    assert dialect == "gm-json"
    code, _ = Gm(None).open(resp)
    return 200, str(code), resp.get_json()["message"]


@pytest.fixture(name="answer_of")
def answer_of_fixture():
    return answer_of
