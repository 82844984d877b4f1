"""The unit tests of every plugin whose adapter is derived from a dialect spec (a manifest with
``"adapter": {"spec": "<dialect>"}``): ONE harness, one table per plugin.

A plugin's table is ``tests/plugins/<plugin>/cases.yaml``; its wire fixtures (raw upstream answers
as docs/dialects.md describes them, synthetic citizen data) are in ``tests/plugins/<plugin>/fixtures/``.
The harness loads the plugin through the registry's default registration (``Registry`` pointed at
the ``responses`` base URL), answers each request with a fixture and checks:

* the happy path of every operation: the answer fits the contract, and the request on the wire
  carries the expected fields and authentication (bearer header, HMAC ``sign``, SM3 ``DSIGN``,
  MD5 ``Sign``, each recomputed here with :mod:`essc.core.signing`, then with
  :func:`essc.core.dialects.auth.check`);
* every business error as its typed error, malformed answers and unknown result codes as
  UPSTREAM_UNAVAILABLE ``malformed_response``, HTTP failures as ``http_5xx``/``rate_limited``;
* configured credentials over the mock defaults, every manifest city, retries of reads only;
* no personal data in any error object or log record.

A table entry:

``operations.<op>``
    ``route`` (method, path; or the table's ``route``), ``code`` (the operation code on the wire),
    ``answer``, ``sent`` (business fields of the request), ``result`` (the contract answer).
``variants``
    more happy cases: ``id``, ``op``, ``request``/``sent``/``result`` merged over the operation's
    (``null`` drops a key), ``answer``.
``errors``
    ``id``, ``op``, ``answer``, ``error`` (the contract error code), ``details`` (a subset of the
    error's details), ``names`` (a text the error must carry), ``xfail`` (a known engine gap).
``card_status``
    ``pattern`` (where the status stands in the answers' text), ``wire`` (contract status -> wire
    value), ``unknown``, ``error`` (an answer refusing for a reported-lost card): the harness
    derives the read_card and activate cases of every status.

An ``answer`` is a fixture file name, ``file.json#key`` (one entry of a JSON file: a body, or
``{status, body}``), or a mapping with ``file``/``body``, ``status``, ``headers``, ``replace``
(text edits) and ``echo`` (values for the placeholders of the table's ``echo``, which otherwise
take the text of the request's element of that name).
"""
from __future__ import annotations

import copy
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import responses
import yaml
from defusedxml import ElementTree

import essc.plugins
from essc.conformance.testing import assert_no_personal_data, assert_valid
from essc.core.dialects import SpecAdapter, auth, dialect
from essc.core.dialects.wire import get_path
from essc.core.errors import EsscError
from essc.core.registry import Registry
from essc.core.schemas import validator
from essc.core.settings import Settings
from essc.core.signing import canonical_string, hmac_sha256, sm3_hex

HERE = Path(__file__).parent
PLUGINS_DIR = Path(essc.plugins.__file__).parent
BASE = "http://city.test"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"

# The synthetic citizen (never a real person): none of these may reach an error or a log.
ID, NAME, CARD_NO, PHONE = "11010119900307803X", "张三", "K13822465", "13812345678"
FACE, CODES = "live-9d8c7b6a5f4e", {"sms": "123456", "password": "147258"}
PERSONAL = (ID, NAME, CARD_NO, PHONE, FACE, *CODES.values(), "258369")

#: the contract requests; a table adds what its city needs (aab301, verify_id, channel)
REQUESTS: dict[str, dict[str, Any]] = {
    "read_card": {"aac002": ID, "aac003": NAME},
    "verify_identity": {"aac002": ID, "face_token": FACE, "factor": "sms", "code": CODES["sms"]},
    "activate": {"aac002": ID},
    "list_services": {},
    "health": {},
    # contract 1.2
    "card_status": {"aac002": ID},
    "enable_payment": {"aac002": ID},
    "reset_password": {"aac002": ID, "new_password": "258369"},
    "query_contributions": {"aac002": ID, "from_month": "202401", "to_month": "202403"},
    "settle_medical": {"aac002": ID, "action": "pre_settle", "settlement_id": "ST20261125000001", "busi_type": "02",
                       "hospital": {"code": "H32040001", "name": "常州市第一人民医院"},
                       "items": [{"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_cents": 150000,
                                  "quantity": 2},
                                 {"code": "OT03", "name": "陪护", "category": "other", "amount_cents": 10000,
                                  "quantity": 1}]},
}
#: the answers every dialect must type the same way
COMMON_ERRORS = [
    {"id": "http_500_text", "op": "read_card", "answer": {"status": 500, "body": "Internal Server Error"},
     "error": "UPSTREAM_UNAVAILABLE", "details": {"reason": "http_5xx", "http_status": 500}},
    {"id": "http_503_empty", "op": "health", "answer": {"status": 503, "body": ""},
     "error": "UPSTREAM_UNAVAILABLE", "details": {"reason": "http_5xx", "http_status": 503}},
    {"id": "http_429", "op": "verify_identity", "answer": {"status": 429, "body": "", "headers": {"Retry-After": "7"}},
     "error": "UPSTREAM_UNAVAILABLE", "details": {"reason": "rate_limited", "retry_after": 7.0}},
    {"id": "not_a_document", "op": "read_card", "answer": {"body": "oops {"},
     "error": "UPSTREAM_UNAVAILABLE", "details": {"reason": "malformed_response"}},
    {"id": "empty_body", "op": "list_services", "answer": {"body": ""},
     "error": "UPSTREAM_UNAVAILABLE", "details": {"reason": "malformed_response"}},
]


# --- tables ---------------------------------------------------------------------------------------
@dataclass
class Table:
    """One plugin's table (``<plugin>/cases.yaml``) with its manifest and fixtures."""

    data: dict[str, Any]
    folder: Path
    manifest: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.manifest = json.loads((PLUGINS_DIR / self.plugin / "manifest.json").read_text(encoding="utf-8"))

    @property
    def plugin(self) -> str:
        return str(self.data["plugin"])

    @property
    def city(self) -> str:
        return str(self.data["city"])

    @property
    def dialect(self) -> str:
        return str(self.manifest["adapter"]["spec"])

    def route(self, op: str) -> tuple[str, str]:
        method, path = self.data["operations"][op].get("route") or self.data["route"]
        return method, path

    def request(self, op: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        return {**REQUESTS[op], "aab301": self.city, **self.data.get("requests", {}).get(op, {}), **(overrides or {})}

    def credentials(self, which: str) -> dict[str, str]:
        return dict(self.data["credentials"][which])

    def fixture_text(self, ref: str) -> tuple[str, int | None]:
        """The text of ``file`` or ``file#key``, and the status an entry carries."""
        name, _, key = ref.partition("#")
        text = (self.folder / "fixtures" / name).read_text(encoding="utf-8")
        if not key:
            return text, None
        entry = json.loads(text)[key]
        status = None
        if isinstance(entry, dict) and set(entry) <= {"status", "body"} and "body" in entry:
            status, entry = entry.get("status"), entry["body"]
        return (entry if isinstance(entry, str) else json.dumps(entry, ensure_ascii=False)), status


def _load_tables() -> dict[str, Table]:
    tables = {}
    for path in sorted(HERE.glob("*/cases.yaml")):
        table = Table(yaml.safe_load(path.read_text(encoding="utf-8")), path.parent)
        tables[table.plugin] = table
    return tables


TABLES = _load_tables()


def merged(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """``base`` updated with ``overrides``; an override of ``None`` drops the key."""
    out = copy.deepcopy(base)
    for key, value in (overrides or {}).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


@dataclass
class Case:
    """One exchange: what the city answers to ``op`` and what the platform must make of it."""

    table: Table
    id: str
    op: str
    answer: Any
    request: dict[str, Any]
    sent: dict[str, Any] | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    names: str | None = None
    xfail: str | None = None

    def param(self) -> Any:
        marks = [pytest.mark.xfail(reason=self.xfail, strict=True)] if self.xfail else []
        return pytest.param(self, id=f"{self.table.plugin}-{self.id}", marks=marks)


def _status_answer(answer: Any, pattern: str, old: str, new: str) -> dict[str, Any]:
    base = answer if isinstance(answer, dict) else {"file": answer}
    return {**base, "replace": {**base.get("replace", {}), pattern.format(old): pattern.format(new)}}


def happy_cases(table: Table) -> Iterator[Case]:
    ops = table.data["operations"]
    for op, spec in ops.items():
        yield Case(table, op, op, spec["answer"], table.request(op), spec["sent"], spec["result"])
    for v in table.data.get("variants", ()):
        spec = ops[v["op"]]
        yield Case(table, v["id"], v["op"], v.get("answer", spec["answer"]), table.request(v["op"], v.get("request")),
                   merged(spec["sent"], v.get("sent")), merged(spec["result"], v.get("result")))
    statuses = table.data["card_status"]
    card = ops["read_card"]
    for status, wire in statuses["wire"].items():
        if status != "normal":
            answer = _status_answer(card["answer"], statuses["pattern"], statuses["wire"]["normal"], wire)
            yield Case(table, f"card_{status}", "read_card", answer, table.request("read_card"), card["sent"],
                       merged(card["result"], {"aaz502": status}))


def error_cases(table: Table) -> Iterator[Case]:
    def case(spec: dict[str, Any]) -> Case:
        return Case(table, spec["id"], spec["op"], spec["answer"], table.request(spec["op"]), error=spec["error"],
                    details=spec.get("details", {}), names=spec.get("names"), xfail=spec.get("xfail"))

    for spec in (*table.data["errors"], *COMMON_ERRORS):
        yield case(spec)
    statuses = table.data["card_status"]
    lost, pattern = statuses["wire"]["reported_lost"], statuses["pattern"]
    for status, wire in {**statuses["wire"], "unknown": statuses["unknown"]}.items():
        answer = _status_answer(statuses["error"], pattern, lost, wire)
        if status in ("normal", "unknown"):  # refused without an abnormal status: not understood
            yield case({"id": f"card_status_{status}", "op": "activate", "answer": answer,
                        "error": "UPSTREAM_UNAVAILABLE", "details": {"reason": "malformed_response"}})
        else:
            yield case({"id": f"card_status_{status}", "op": "activate", "answer": answer,
                        "error": "CARD_STATUS_ABNORMAL", "details": {"status": status}})
    unknown = _status_answer(table.data["operations"]["read_card"]["answer"], pattern, statuses["wire"]["normal"],
                             statuses["unknown"])
    yield case({"id": "card_unknown_status", "op": "read_card", "answer": unknown, "error": "UPSTREAM_UNAVAILABLE",
                "details": {"reason": "malformed_response"}})


# --- the wire: what the platform sent, checked per dialect ------------------------------------
def _children(element: Any) -> dict[str, str]:
    assert element is not None
    return {child.tag: child.text or "" for child in element}


def _header(request: Any, name: str) -> str:
    return str(request.headers.get(name, ""))


def sent_rest_json(request: Any, code: str | None, creds: dict[str, str], wire: dict[str, Any]) -> tuple[dict, dict]:
    assert _header(request, "Authorization") == f"Bearer {creds['token']}"
    fields = dict(parse_qsl(urlsplit(request.url).query))
    if request.body:
        assert _header(request, "Content-Type").startswith("application/json")
        fields.update(json.loads(request.body))
    return fields, fields


def sent_pinyin_form(request: Any, code: str | None, creds: dict[str, str], wire: dict[str, Any]) -> tuple[dict, dict]:
    assert _header(request, "Content-Type").startswith("application/x-www-form-urlencoded")
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    tree = dict(parse_qsl(body, keep_blank_values=True))
    fields = dict(tree)
    assert fields.pop("sign") == hmac_sha256(fields, creds["secret"])
    assert fields.pop("appid") == creds["appid"]
    assert abs(int(fields.pop("timestamp")) - time.time()) < 5
    assert len(fields.pop("nonce")) >= 8
    return tree, fields


def sent_xml_envelope(request: Any, code: str | None, creds: dict[str, str], wire: dict[str, Any]) -> tuple[dict, dict]:
    assert _header(request, "Content-Type") == "application/xml; charset=utf-8"
    assert request.body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    root = ElementTree.fromstring(request.body)
    assert root.tag == wire["root"]
    head, body = _children(root.find("HEADER")), _children(root.find("BODY"))
    assert set(head) == {"MsgType", "SenderID", "MsgID", "SendTime", "DSIGN"}
    assert head["MsgType"] == code and head["SenderID"] == creds["sender_id"] and head["MsgID"]
    assert re.fullmatch(r"20\d{12}", head["SendTime"])
    assert head["DSIGN"] == sm3_hex(code + head["MsgID"] + canonical_string(body) + "&key=" + creds["dsign_key"])
    return {"HEADER": head, "BODY": body}, body


def sent_soap11(request: Any, code: str | None, creds: dict[str, str], wire: dict[str, Any]) -> tuple[dict, dict]:
    assert _header(request, "Content-Type") == "text/xml; charset=utf-8"
    assert _header(request, "SOAPAction") == f'"{wire["soap_action"].format(code)}"'
    envelope = ElementTree.fromstring(request.body)
    assert envelope.tag == f"{{{SOAP_ENV}}}Envelope"
    (message,) = envelope.find(f"{{{SOAP_ENV}}}Body")
    assert message.tag == f"{{{wire['namespace']}}}{wire['request_element']}"
    head, body = _children(message.find("ReqHead")), _children(message.find("ReqBody"))
    assert set(head) == {"TransCode", "ChannelNo", "TransSeq", "Sign"}
    assert head["TransCode"] == code and head["ChannelNo"] == creds["channel_no"] and head["TransSeq"]
    signed = "|".join((code or "", creds["channel_no"], head["TransSeq"], canonical_string(body, exclude=()),
                       creds["sign_key"]))
    assert head["Sign"] == hashlib.md5(signed.encode(), usedforsecurity=False).hexdigest().upper()
    return {"ReqHead": head, "ReqBody": body}, body


SENT: dict[str, Callable[..., tuple[dict, dict]]] = {
    "rest-json": sent_rest_json, "pinyin-form": sent_pinyin_form, "xml-envelope": sent_xml_envelope,
    "soap-1.1": sent_soap11,
}


def sent(table: Table, op: str, request: Any, creds: dict[str, str]) -> dict[str, Any]:
    """The business fields of a sent request, after checking its common fields and authentication
    (recomputed here, then with the dialect's own :func:`auth.check`)."""
    code = table.data["operations"][op].get("code")
    tree, fields = SENT[table.dialect](request, code, creds, table.data.get("wire", {}))
    spec = dialect(table.dialect).spec
    auth.check(spec.auth, tree, dict(request.headers), creds)
    return fields


# --- the city: answers from the fixtures --------------------------------------------------------
def mock(rsps: responses.RequestsMock, table: Table, op: str, answer: Any) -> None:
    """Answer ``op``'s route with ``answer``, echoing what the table's ``echo`` names."""
    spec = answer if isinstance(answer, dict) else {"file": answer}
    if "file" in spec:
        text, status = table.fixture_text(spec["file"])
    else:
        text, status = spec["body"], None
    status = spec.get("status") or status or 200
    for old, new in spec.get("replace", {}).items():
        assert old in text, f"replace: {old!r} is not in the answer"
        text = text.replace(old, new)
    forced = spec.get("echo", {})

    def answer_(request: Any) -> tuple[int, dict[str, str], bytes]:
        body = request.body.decode() if isinstance(request.body, bytes) else request.body or ""
        out = text
        for placeholder, element in table.data.get("echo", {}).items():
            found = re.search(rf"<{element}>([^<]*)</{element}>", body)
            out = out.replace(placeholder, forced.get(placeholder) or (found.group(1) if found else ""))
        return status, dict(spec.get("headers", {})), out.encode("utf-8")

    method, path = table.route(op)
    rsps.add_callback(method, BASE + path, callback=answer_, content_type=table.data["content_type"])


def registry(table: Table, credentials: dict[str, str] | None = None) -> Registry:
    """The registry with only ``table``'s plugin, pointed at the ``responses`` base URL."""
    settings = Settings(base_url=BASE, allow=frozenset({table.plugin}), entry_points=False,
                        credentials={table.plugin: credentials} if credentials else {})
    return Registry(settings)


@pytest.fixture(autouse=True)
def no_personal_data_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level("DEBUG")
    yield
    logged = "\n".join(r.getMessage() for r in caplog.get_records("call"))
    for value in PERSONAL:
        assert value not in logged, "personal data in a log record"


def call(table: Table, case: Case, rsps: responses.RequestsMock, credentials: dict[str, str] | None = None) -> Any:
    mock(rsps, table, case.op, case.answer)
    return registry(table, credentials).call(str(case.request["aab301"]), case.op, case.request)


def _tables() -> list[Any]:
    return [pytest.param(t, id=t.plugin) for t in TABLES.values()]


# --- registration ---------------------------------------------------------------------------------
def test_every_spec_plugin_has_a_table() -> None:
    spec_plugins = {p.parent.name for p in PLUGINS_DIR.glob("*/manifest.json")
                    if "spec" in json.loads(p.read_text(encoding="utf-8")).get("adapter", {})}
    assert spec_plugins == set(TABLES)


@pytest.mark.parametrize("table", _tables())
def test_default_registration_serves_every_city_with_one_spec_adapter(table: Table) -> None:
    assert validator("manifest").problems(table.manifest) == []
    reg = registry(table)
    adapters = {c["code"]: reg.adapter(c["code"]) for c in table.manifest["cities"]}
    assert reg.plugin(table.plugin).status == "loaded"
    assert len({id(a) for a in adapters.values()}) == 1
    adapter = adapters[table.city]
    assert isinstance(adapter, SpecAdapter)
    assert adapter.spec is dialect(table.dialect).spec and adapter.spec.name == table.manifest["dialect"]
    folder = PLUGINS_DIR / table.plugin
    assert (folder / "manifest.json").is_file() and not list(folder.rglob("*.py"))  # no Python of its own


@pytest.mark.parametrize("table", _tables())
def test_every_manifest_city(table: Table, rsps: responses.RequestsMock) -> None:
    """An opened city reaches the wire with its own code; a city not opened is refused before."""
    reg = registry(table)
    mock(rsps, table, "health", table.data["operations"]["health"]["answer"])
    opened = [c["code"] for c in table.manifest["cities"] if c["opened"]]
    for city in opened:
        reg.call(city, "health", {"aab301": city})
    creds = table.credentials("mock")
    assert [list(sent(table, "health", c.request, creds).values()) for c in rsps.calls] == [[c] for c in opened]
    for city in (c["code"] for c in table.manifest["cities"] if not c["opened"]):
        with pytest.raises(EsscError) as info:
            reg.call(city, "read_card", dict(table.request("read_card"), aab301=city))
        assert info.value.code == "CITY_NOT_OPENED" and info.value.details["city"] == city
    assert len(rsps.calls) == len(opened)


# --- happy paths ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c.param() for t in TABLES.values() for c in happy_cases(t)])
def test_operation(case: Case, rsps: responses.RequestsMock) -> None:
    result = call(case.table, case, rsps)
    assert_valid(result, case.op)
    if case.op == "health":
        assert result["latency_ms"] >= 0
        result = {k: v for k, v in result.items() if k not in ("latency_ms", "detail")}
    assert result == case.result
    assert len(rsps.calls) == 1
    assert sent(case.table, case.op, rsps.calls[0].request, case.table.credentials("mock")) == case.sent


@pytest.mark.parametrize("table", _tables())
def test_configured_credentials_are_used(table: Table, rsps: responses.RequestsMock) -> None:
    configured = table.credentials("configured")
    assert set(configured) == set(table.credentials("mock"))
    assert not set(configured.values()) & set(table.credentials("mock").values())
    case = next(happy_cases(table))
    call(table, case, rsps, configured)
    request = rsps.calls[0].request
    assert sent(table, case.op, request, configured) == case.sent
    with pytest.raises(AssertionError):
        sent(table, case.op, request, table.credentials("mock"))


@pytest.mark.parametrize("table", [pytest.param(t, id=t.plugin) for t in TABLES.values() if "fresh" in t.data])
def test_every_request_is_fresh(table: Table, rsps: responses.RequestsMock) -> None:
    """Two identical requests differ in the value the city uses against replays."""
    mock(rsps, table, "health", table.data["operations"]["health"]["answer"])
    reg = registry(table)
    reg.call(table.city, "health", {"aab301": table.city})
    reg.call(table.city, "health", {"aab301": table.city})
    code = table.data["operations"]["health"].get("code")
    trees = [SENT[table.dialect](c.request, code, table.credentials("mock"), table.data.get("wire", {}))[0]
             for c in rsps.calls]
    first, second = (get_path(tree, table.data["fresh"]) for tree in trees)
    assert first and second and first != second


# --- errors -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c.param() for t in TABLES.values() for c in error_cases(t)])
def test_error_is_typed(case: Case, rsps: responses.RequestsMock) -> None:
    with pytest.raises(EsscError) as info:
        call(case.table, case, rsps)
    err = info.value
    assert err.code == case.error, f"{err.code}: {err.detail}"
    assert err.details["city"] == case.table.city and err.details["operation"] == case.op
    assert err.details["plugin"] == case.table.plugin
    if case.error == "CONTRACT_VIOLATION":
        assert err.details["rule"] == "city-rejected-request" and err.details["hook"] == case.op
    for key, value in case.details.items():
        assert err.details[key] == value
    if case.names:
        assert case.names in str(err)
    assert validator("error").problems(err.to_dict()) == []
    assert_no_personal_data(err, PERSONAL)


@pytest.mark.parametrize("table", _tables())
def test_activate_is_not_retried_but_reads_are(table: Table, rsps: responses.RequestsMock) -> None:
    reg = registry(table)
    for op in ("activate", "read_card"):
        mock(rsps, table, op, {"status": 503, "body": "busy"})
        with pytest.raises(EsscError, match="HTTP 503"):
            reg.call(table.city, op, table.request(op))
    assert len(rsps.calls) == 1 + 2  # 1 activate, 2 read_card attempts (the manifests say retries: 1)
