"""Conformance against the real city: record the plugin's exchanges with a city's test
system into cassettes, then replay them.

A spec (or an adapter) written from a city's interface document can be wrong in the same
way on both sides, and the mock - derived from the same spec - would agree with it. A
cassette is what the REAL city answered; replaying it checks

(a) the adapter: every recorded answer must translate to the recorded contract result or
    typed error (``replay_adapter``);
(b) the mock's dialect: its answers to the recorded requests must match the recorded answers
    in structure and codes, ignoring the fields the spec declares volatile
    (``replay_mock``).

Cassettes hold no personal data and no secret: :func:`record` replaces the citizens' ID
numbers, names, card numbers, phones, face tokens, codes, the plugin's secrets and the
signatures by synthetic values, consistently (the same value everywhere it appears), and
:func:`leaks` is the check a test runs over every cassette.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from essc.core.adapter import OPERATIONS
from essc.core.dialects import DialectSpec
from essc.core.dialects import auth as spec_auth
from essc.core.dialects.adapter import credentials_for, generate
from essc.core.dialects.wire import WireError, decode, encode, get_path, set_path
from essc.core.errors import EsscError
from essc.core.idnumber import check_char, make_id_number
from essc.core.naming import normalise
from essc.core.registry import Registry

__all__ = ["COVERAGE", "Citizen", "record", "covered", "cassettes_of",
 "load_cassettes", "replay_adapter", "replay_mock", "leaks", "Mismatch",
           "SYNTHETIC_DIVISION"]

#: synthetic ID numbers are issued in a division that does not exist (GB/T 2260 has no 99xxxx)
SYNTHETIC_DIVISION = "990000"
#: synthetic mobile numbers: this prefix and 4 digits (valid in form, reserved here)
SYNTHETIC_PHONE = "1300000"
#: the right SMS code and password of the recording, as the cassettes show them
SYNTHETIC_CODES = {"sms": "100001", "password": "100002"}
#: a new e-SSC password (reset_password) as the cassettes show it
SYNTHETIC_NEW_PASSWORD = "100003"
SYNTHETIC_NAMES = ("测试甲", "测试乙", "测试丙", "测试丁", "测试戊", "测试己", "测试庚", "测试辛")
_ID = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")
#: a mobile number stands on its own: not 11 digits inside a longer token (a request's random hex
#: serial such as TransSeq 4f...13912345678c... is no phone number)
_PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9][0-9]{9}(?![0-9A-Za-z])")
#: fields that hold a citizen's name in the built-in dialects (JSON keys, XML elements)
_NAME_FIELDS = re.compile(r'"(?:aac003|xm|AAC003|XM)"\s*:\s*"([^"]*)"|<(?:AAC003|XM|xm)>([^<]*)<')
_CONTRACT_VOLATILE = {"verify_id", "latency_ms", "signSeq", "sign_seq", "detail"}


#: what a city's cassettes must cover for the top tier: the happy path and each business error
COVERAGE = frozenset({("read_card", "ok"), ("verify_identity", "ok"), ("activate", "ok"),
                      ("read_card", "RECORD_NOT_SYNCED"), ("verify_identity", "IDENTITY_MISMATCH"),
                      ("activate", "IDENTITY_MISMATCH")})


def covered(cassettes: Iterable[Mapping[str, Any]]) -> set[tuple[str, str]]:
    """(operation, ``ok`` or the error code) of every cassette."""
    return {(c["operation"], "ok" if "result" in c else c["error"]["code"]) for c in cassettes}


def cassettes_of(registry: Registry, city: str, folder: Path | None = None) -> tuple[Path | None, list[dict]]:
    """The cassettes of ``city``: from ``folder``, else the ``cassettes/`` folder of its plugin."""
    if folder is None:
        directory = registry.plugin(registry.city(city).plugin).source.directory
        folder = directory / "cassettes" if directory is not None else None
    found = load_cassettes(folder) if folder is not None and folder.is_dir() else []
    return folder, [c for c in found if c.get("city") == city]


@dataclass
class Citizen:
    """A test citizen of the city's test system: ``label`` says what the city will answer
    (``normal``, or the abnormal card status, e.g. ``reported_lost``)."""

    id_number: str
    name: str
    label: str = "normal"


@dataclass
class Mismatch:
    cassette: str
    operation: str
    what: str

    def __str__(self) -> str:
        return f"{self.cassette} {self.operation}: {self.what}"


# -- capturing the wire ------------------------------------------------------------------------
@contextmanager
def _capture() -> Iterator[list[dict[str, Any]]]:
    """Every HTTP exchange of this process while active (request and answer, raw)."""
    seen: list[dict[str, Any]] = []
    original = HTTPAdapter.send

    def send(self: HTTPAdapter, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = original(self, request, *args, **kwargs)
        url = urlsplit(request.url or "")
        body = request.body or b""
        seen.append({
            "request": {"method": request.method, "path": url.path, "query": url.query,
                        "headers": {k: v for k, v in request.headers.items()
                                    if k.lower() in ("content-type", "soapaction", "authorization")},
                        "body": body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body)},
            "answer": {"status": response.status_code, "content_type": response.headers.get("Content-Type", ""),
                       "body": response.content.decode("utf-8", "replace")}})
        return response

    HTTPAdapter.send = send  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        HTTPAdapter.send = original  # type: ignore[method-assign]


def _outcome(registry: Registry, city: str, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    try:
        return {"result": registry.call(city, operation, request)}
    except EsscError as err:
        keep = {k: err.details[k] for k in ("status", "retry_after", "reason") if k in err.details}
        return {"error": {"code": err.code, **keep, **({"detail": err.detail} if err.detail else {})}}


# -- pseudonymisation ---------------------------------------------------------------------------
class _Pseudonyms:
    def __init__(self) -> None:
        self.map: dict[str, str] = {}
        self._n = 0

    def add(self, real: Any, synthetic: str) -> None:
        if isinstance(real, str) and real and real not in self.map:
            self.map[real] = synthetic

    def citizen(self, who: Citizen) -> tuple[str, str]:
        if who.id_number not in self.map:
            self._n += 1
            fake_id = make_id_number(SYNTHETIC_DIVISION, dt.date(1990, 1, 1), self._n)
            self.add(who.id_number, fake_id)
            self.add(who.id_number.lower(), fake_id)
            self.add(who.name, SYNTHETIC_NAMES[(self._n - 1) % len(SYNTHETIC_NAMES)])
        return self.map[who.id_number], self.map[who.name]

    def result(self, result: Mapping[str, Any]) -> None:
        forms = {"aaz500": "X{:08d}", "aaz501": "SYNTHETIC{:023d}", "aac067": SYNTHETIC_PHONE + "{:04d}",
                 "signNo": "SYNTHETICSIGN{:08d}", "sign_no": "SYNTHETICSIGN{:08d}",
                 "account_hint": "0000****{:04d}"}  # synthetic, but of the contract's form
        for key, form in forms.items():
            value = result.get(key)
            if isinstance(value, str) and value not in self.map:
                self._n += 1
                self.add(value, form.format(self._n))

    def apply(self, text: str) -> str:
        return swap(text, self.map)


def swap(text: str, mapping: Mapping[str, str]) -> str:
    """Replace every key of ``mapping`` in ``text`` by its value (longest first; a number is
    replaced only where it is not part of a longer number)."""
    for old in sorted(mapping, key=len, reverse=True):
        if old.isdigit():
            new = mapping[old]
            text = re.sub(rf"(?<![0-9]){re.escape(old)}(?![0-9])", lambda _m, new=new: new, text)
        else:
            text = text.replace(old, mapping[old])
    return text


def _blank_signature(spec: DialectSpec | None, exchange: dict[str, Any]) -> None:
    if spec is None or spec.auth.get("scheme") not in ("signature", "code", "bearer"):
        return
    request = exchange["request"]
    if spec.auth.get("scheme") == "bearer":
        request["headers"].pop("Authorization", None)
        return
    into = str(spec.auth.get("into", ""))
    if not request["body"] or not into or into.startswith("header."):
        return
    try:
        tree = decode(request["body"].encode(), spec.encoding, spec.transport)
    except WireError:
        return
    if get_path(tree, into) is not None:
        set_path(tree, into, "<signature>")
        request["body"] = encode(tree, spec.encoding, spec.transport).decode(spec.transport.get("charset", "utf-8"))


def _script(citizens: list[Citizen], city: str, code: str, password: str | None) -> Iterator[tuple[str, str,
                                                                                                        dict]]:
    """``(label, operation, contract request)`` of the recorded flow; ``verify_id`` of a
    passed check is filled in as ``"<ticket>"`` and replaced with the real one."""
    happy_done = False
    for who in citizens:
        ident = {"aac002": who.id_number, "aab301": city}
        yield who.label, "read_card", {**ident, "aac003": who.name}
        if who.label != "normal" or happy_done:
            continue
        happy_done = True
        check = {**ident, "face_token": "live-recording", "factor": "sms", "code": code}
        yield "normal", "verify_identity", check
        yield "normal", "activate", {**ident, "verify_id": "<ticket>", "channel": "essc-record"}
        yield "normal", "verify_identity", {**check, "code": "000000" if code != "000000" else "999999"}
        yield "normal", "activate", {**ident, "verify_id": "no-such-ticket", "channel": "essc-record"}
        yield "normal", "read_card", {**ident, "aac003": "查无此人"}
        if password:
            yield "normal", "verify_identity", {**check, "factor": "password", "code": password}
    yield "-", "list_services", {"aab301": city}
    yield "-", "health", {"aab301": city}


def record(registry: Registry, city: str, citizens: list[Citizen], out: Path, *, code: str = "123456",
           password: str | None = None, spec: DialectSpec | None = None) -> list[Path]:
    """Drive the city's plugin through the flow (happy path and each business error the test
    citizens can give) and write one cassette per exchange to ``out``. Returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    info = registry.city(city)
    configured = dict(registry.settings.credentials.get(info.plugin, {}))
    if spec is not None:  # the spec says which credentials are secret
        secrets = spec.secret_values(credentials_for(spec, configured))
    else:  # code: whatever is named like a secret
        secrets = [v for k, v in configured.items() if re.search(r"key|secret|token|pass", k, re.I)]
    names = _Pseudonyms()
    for n, secret in enumerate(secrets):
        names.add(secret, f"SECRET-{n + 1}")
    written: list[Path] = []
    ticket: str | None = None
    for seq, (label, operation, request) in enumerate(_script(citizens, city, code, password), 1):
        who = next((c for c in citizens if c.id_number == request.get("aac002")), None)
        if who is not None:
            names.citizen(who)
        if request.get("verify_id") == "<ticket>":
            if ticket is None:
                continue
            request = {**request, "verify_id": ticket}
        scrub_request(names, request, code, password)
        with _capture() as wire:
            outcome = _outcome(registry, city, operation, request)
        result = outcome.get("result") or {}
        if operation == "verify_identity" and "result" in outcome and request["factor"] == "sms":
            ticket = result.get("verify_id")
        names.result(result)
        for exchange in wire:
            _blank_signature(spec, exchange)
        cassette = {"seq": seq, "city": city, "plugin": info.plugin, "dialect": spec.name if spec else None,
                    "label": label, "operation": operation, "request": request, **outcome, "wire": wire}
        text = names.apply(json.dumps(cassette, ensure_ascii=False, indent=2))
        path = out / f"{seq:02d}-{operation}-{_slug(outcome)}.json"
        path.write_text(text + "\n", encoding="utf-8")
        written.append(path)
    (out / "README.md").write_text(
        f"Cassettes of city {city} recorded by `essc record` against its test system: one exchange per file, "
        "personal data and secrets replaced by synthetic values. Replay: `essc conformance --city "
        f"{city} --cassettes {out}`.\n", encoding="utf-8")
    return written


def scrub_request(names: _Pseudonyms, request: Mapping[str, Any], code: str, password: str | None) -> None:
    """Learn the secrets of a contract request a cassette must not show: the face token, the right
    SMS code and password, a new password (reset_password)."""
    if "face_token" in request:
        names.add(request["face_token"], "live-synthetic")
    if "code" in request and request["code"] in (code, password):  # the right codes; a wrong one is no secret
        names.add(request["code"], SYNTHETIC_CODES[request["factor"]])
    if "new_password" in request:
        names.add(request["new_password"], SYNTHETIC_NEW_PASSWORD)


def _slug(outcome: Mapping[str, Any]) -> str:
    return "ok" if "result" in outcome else str(outcome["error"]["code"]).lower()


def load_cassettes(folder: Path) -> list[dict[str, Any]]:
    out = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        data["_file"] = path.name
        out.append(data)
    return out


# -- the leak check -------------------------------------------------------------------------------
def leaks(text: str, secrets: Iterable[str] = ()) -> list[str]:
    """What in ``text`` looks like real personal data or a secret (empty: clean)."""
    found = []
    for match in _ID.finditer(text):
        number = match.group(0).upper()
        if not number.startswith(SYNTHETIC_DIVISION[:2]) and check_char(number[:17]) == number[17]:
            found.append(f"an ID number {number[:3]}…")
    for match in _PHONE.finditer(text):
        if not match.group(0).startswith(SYNTHETIC_PHONE):
            found.append(f"a mobile number {match.group(0)[:3]}…")
    for match in _NAME_FIELDS.finditer(text):
        name = match.group(1) or match.group(2) or ""
        if name and name not in SYNTHETIC_NAMES and name != "查无此人":
            found.append("a name in a name field")
    for secret in secrets:
        if secret and secret in text:
            found.append("a secret credential")
    if re.search(r"live-(?!synthetic|recording)", text):
        found.append("a face token")
    return found


# -- replay (a): the adapter ------------------------------------------------------------------------
def _contract(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _contract(v) for k, v in value.items() if k not in _CONTRACT_VOLATILE}
    return value


def _echoing(spec: DialectSpec | None, recorded: Mapping[str, Any]) -> Any:
    """A ``responses`` callback answering the recorded answer, with the correlation fields the
    city echoes (message ids, sequence numbers) set to those of the request sent now."""
    answer = recorded["answer"]
    headers = {"Content-Type": answer["content_type"]} if answer["content_type"] else {}

    def reply(request: requests.PreparedRequest) -> tuple[int, dict[str, str], bytes]:
        body = answer["body"]
        if spec is not None and request.body and recorded["request"]["body"]:
            sent_body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
            try:
                sent = decode(sent_body, spec.encoding, spec.transport)
                then = decode(recorded["request"]["body"].encode(), spec.encoding, spec.transport)
            except WireError:
                sent = then = {}
            for ours in (spec.response.get("echo") or {}):
                old, new = get_path(then, ours), get_path(sent, ours)
                if isinstance(old, str) and isinstance(new, str) and old:
                    body = body.replace(old, new)
        return answer["status"], headers, body.encode("utf-8")

    return reply


def replay_adapter(registry: Registry, city: str, cassettes: list[dict[str, Any]],
                   spec: DialectSpec | None = None) -> list[Mismatch]:
    """Feed every recorded answer to the city's adapter; its translation must equal the
    recorded contract result or typed error. With the dialect's ``spec`` the echoed
    correlation fields follow the request sent now."""
    import responses

    problems: list[Mismatch] = []
    base = registry.settings.endpoint(registry.city(city).plugin).rstrip("/")
    for cassette in cassettes:
        if cassette.get("city") != city:
            problems.append(Mismatch(cassette["_file"], cassette["operation"],
                                     f"recorded for city {cassette.get('city')}"))
            continue
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
            for exchange in cassette["wire"]:
                mocked.add_callback(exchange["request"]["method"], base + exchange["request"]["path"],
                                    callback=_echoing(spec, exchange))
            got = _outcome(registry, city, cassette["operation"], cassette["request"])
        expected = {k: cassette[k] for k in ("result", "error") if k in cassette}
        if "result" in expected:  # recorded before contract 1.2: the deprecated names, as the registry renames them
            expected["result"] = normalise(OPERATIONS[cassette["operation"]].response_schema, expected["result"])
        if _contract(got) != _contract(expected):
            problems.append(Mismatch(cassette["_file"], cassette["operation"],
                                     f"the adapter translates the recorded answer to {_brief(got)}, "
                                     f"the recording says {_brief(expected)}"))
    return problems


def _brief(outcome: Mapping[str, Any]) -> str:
    if "error" in outcome:
        err = outcome["error"]
        return f"error {err.get('code')}" + (f" (status {err['status']})" if err.get("status") else "") + (
            f": {err['detail']}" if err.get("detail") else "")
    return "result " + json.dumps(_contract(outcome.get("result")), ensure_ascii=False, sort_keys=True)[:300]


# -- replay (b): the mock's dialect --------------------------------------------------------------------
def _leaf_paths(tree: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            out.update(_leaf_paths(value, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(tree, list):
        for item in tree[:1]:  # the shape of an entry, not how many
            out.update(_leaf_paths(item, prefix))
    elif tree not in (None, ""):  # an empty element is no structure
        out[prefix] = tree
    return out


def _coded_paths(spec: DialectSpec, operation: str) -> set[str]:
    """Answer paths whose values are codes (result code, table-coded fields)."""
    paths = {p for p in spec.response["code"]}
    op = spec.operations.get(operation)
    for rule in (op.response.values() if op else ()):
        if isinstance(rule, Mapping) and rule.get("table") and "path" in rule:
            paths.add(rule["path"])
        if isinstance(rule, Mapping) and "list" in rule and isinstance(rule.get("code"), Mapping):
            paths.add(f"{rule['list']}.{rule['code']['path']}")
    return paths


@dataclass
class _Replay:
    spec: DialectSpec
    mock_url: str
    credentials: dict[str, str]
    swaps: dict[str, str] = field(default_factory=dict)


def _resend(replay: _Replay, exchange: Mapping[str, Any]) -> requests.Response:
    spec, request = replay.spec, exchange["request"]
    body = swap(request["body"], replay.swaps)
    path, query = swap(request["path"], replay.swaps), swap(request["query"], replay.swaps)
    headers = dict(request["headers"])
    if body:
        tree = decode(body.encode(), spec.encoding, spec.transport)
        for wire, rule in spec.common_request.items():  # fresh ids and times, as a client sends them
            if isinstance(rule, Mapping) and "generate" in rule and get_path(tree, wire) is not None:
                set_path(tree, wire, generate(rule["generate"]))
        spec_auth.sign(spec.auth, tree, headers, replay.credentials)
        data: bytes | None = encode(tree, spec.encoding, spec.transport)
    else:
        data = None
        spec_auth.sign(spec.auth, {}, headers, replay.credentials)
    url = replay.mock_url.rstrip("/") + path + (f"?{query}" if query else "")
    return requests.request(request["method"], url, data=data, headers=headers, timeout=10)


def replay_mock(spec: DialectSpec, mock_url: str, cassettes: list[dict[str, Any]],
                citizens: Mapping[str, Mapping[str, str]], codes: Mapping[str, str] | None = None) -> list[Mismatch]:
    """Send every recorded request (its synthetic citizen swapped for the mock's citizen of the
    same label, re-signed with the mock's credentials) to the mock's dialect and compare the
    answers with the recorded ones: same HTTP status, same structure, same codes, volatile
    fields ignored. ``citizens``: label -> the mock's citizen (``id_number``, ``name``)."""
    replay = _Replay(spec, mock_url, credentials_for(spec, {}))
    for factor, code in (codes or {"sms": "123456", "password": "147258"}).items():  # the mock's right codes
        replay.swaps[SYNTHETIC_CODES[factor]] = code
    volatile = set(spec.volatile)
    problems: list[Mismatch] = []
    for cassette in cassettes:
        label = cassette["label"]
        request = cassette["request"]
        if label in citizens and "aac002" in request:
            replay.swaps[request["aac002"]] = citizens[label]["id_number"]
            if request.get("aac003") and request["aac003"] != "查无此人":
                replay.swaps[request["aac003"]] = citizens[label]["name"]
        for exchange in cassette["wire"]:
            recorded = exchange["answer"]
            answer = _resend(replay, exchange)
            where = f"{cassette['_file']}"
            if answer.status_code != recorded["status"]:
                problems.append(Mismatch(where, cassette["operation"],
                                         f"HTTP {answer.status_code} from the mock, {recorded['status']} recorded"))
                continue
            try:
                mine = decode(answer.content, spec.response_encoding, spec.transport)
                theirs = decode(recorded["body"].encode(), spec.response_encoding, spec.transport)
            except WireError as err:
                problems.append(Mismatch(where, cassette["operation"], f"unreadable answer: {err}"))
                continue
            a, b = _leaf_paths(mine), _leaf_paths(theirs)
            for path in sorted(set(b) - set(a) - volatile):
                problems.append(Mismatch(where, cassette["operation"],
                                         f"{path}: in the recorded answer, missing in the mock's"))
            for path in sorted(set(a) - set(b) - volatile):
                problems.append(Mismatch(where, cassette["operation"],
                                         f"{path}: in the mock's answer, not in the recorded one"))
            for path in sorted(_coded_paths(spec, cassette["operation"]) & set(a) & set(b)):
                if str(a[path]) != str(b[path]):
                    problems.append(Mismatch(where, cassette["operation"],
                                             f"{path}: the mock answers {a[path]!r}, the city answered {b[path]!r}"))
            op = spec.operations.get(cassette["operation"])
            if cassette["operation"] == "verify_identity" and op is not None and "result" in cassette:
                rule = op.response.get("verify_id")
                path = rule if isinstance(rule, str) else (rule or {}).get("path")
                if path and get_path(theirs, path) and get_path(mine, path):
                    replay.swaps[str(get_path(theirs, path))] = str(get_path(mine, path))
    return problems
