"""The platform side of a spec dialect: :class:`SpecAdapter` translates contract requests
into the spec's wire requests and the city's answers back into contract answers or the
typed errors of :mod:`essc.core.outcomes` - with no code of the plugin's own."""
from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from functools import partial
from typing import Any
from urllib.parse import quote

from essc import schemas

from ..adapter import OPERATIONS, CityAdapter, Payload
from ..answers import CityCall, named_fields, retry_seconds
from ..errors import EsscError, InvalidInput, UpstreamUnavailable
from ..outcomes import outcome_error
from ..settings import PluginContext
from . import auth
from .spec import INTEGER_FIELDS, DialectSpec, OperationSpec, entry_schema, field_schema, is_integer
from .wire import CONTENT_TYPES, WireError, decode, encode, get_parts, get_path, json_text, set_path

__all__ = ["SpecAdapter", "generate", "credentials_for"]


def generate(kind: str) -> str:
    """A fresh value of a generated field (message ids, sequence numbers, times)."""
    if kind == "uuid":
        return uuid.uuid4().hex
    now = time.time()
    if kind == "unix_s":
        return str(int(now))
    if kind == "unix_ms":
        return str(int(now * 1000))
    return dt.datetime.fromtimestamp(now).strftime("%Y%m%d%H%M%S")  # datetime14




def _date8(value: Any, form: str) -> str | None:
    """A wire date of ``form`` as the contract's YYYYMMDD, or None if it is not one."""
    text = value if type(value) is str else str(value)
    if form == "%Y%m%d" and len(text) == 8 and text.isdigit():
        try:
            dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
            return text
        except ValueError:
            return None
    try:
        if form.startswith("%Y-%m-%d"):  # ISO dates and date-times: the C parser, 20x cheaper
            parsed = dt.datetime.fromisoformat(text)
            if len(text) != len(parsed.strftime(form)):
                return None
        else:
            parsed = dt.datetime.strptime(text, form)
        return f"{parsed.year:04d}{parsed.month:02d}{parsed.day:02d}"
    except ValueError:
        return None


def _moment14(value: Any, form: str) -> str | None:
    """A wire moment of ``form`` as the contract's YYYYMMDDhhmmss, or None if it is not one."""
    try:
        parsed = dt.datetime.strptime(value if type(value) is str else str(value), form)
    except ValueError:
        return None
    return parsed.strftime("%Y%m%d%H%M%S")


def _leaf_names(tree: Mapping[str, Any], prefix: str = "") -> list[str]:
    out: list[str] = []
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        out += _leaf_names(value, path) if isinstance(value, Mapping) else [path]
    return out


def credentials_for(spec: DialectSpec, configured: Mapping[str, str]) -> dict[str, str]:
    """The spec's credentials: configured values over the spec's (mock) defaults."""
    return {name: configured.get(name, c["default"]) for name, c in spec.credentials.items()}


class SpecAdapter(CityAdapter):
    """An adapter derived from a :class:`DialectSpec`; one object serves every city of the plugin."""

    def __init__(self, context: PluginContext, spec: DialectSpec) -> None:
        self.context = context
        self.spec = spec
        self.http = context.http_client()
        self.credentials = credentials_for(spec, context.credentials)
        transport = self._transport = spec.transport
        self._encoding, self._response_encoding = spec.encoding, spec.response_encoding
        self._body_statuses = spec.body_statuses
        self._content_type = f"{CONTENT_TYPES[spec.encoding]}; charset={transport.get('charset', 'utf-8')}"
        self._code_paths = [p.split(".") for p in spec.response["code"]]
        self._success = frozenset(spec.response["success"])
        self._echo = [(a.split("."), b.split("."), b) for a, b in (spec.response.get("echo") or {}).items()]
        #: the answer maps, compiled once: (contract field, reader) per operation
        self._readers = {name: [(field, self._compile(rule, field, name)) for field, rule in op.response.items()]
                         for name, op in spec.operations.items() if name not in ("list_services", "health")}
        #: the request maps, compiled once: (body|query|header, key, path parts, rule) per operation
        self._writers = {name: [self._target(wire) + (_request_rule(rule),) for wire, rule in op.request.items()]
                         for name, op in spec.operations.items()}
        for name in spec.operations:  # the operations the spec carries, and only those
            setattr(self, name, partial(self._run, name))

    @staticmethod
    def _target(wire: str) -> tuple[str, str, list[str]]:
        for where in ("query", "header"):
            if wire.startswith(where + "."):
                return where, wire[len(where) + 1:], []
        return "body", wire, wire.split(".")

    def _compile(self, rule: Any, name: str, operation: str | None = None,
                 schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A reader of the answer field ``name``; ``schema`` is the field's own (entries of a list),
        else it is looked up in the operation's answer schema."""
        rule = {"path": rule} if isinstance(rule, str) else dict(rule)
        compiled: dict[str, Any] = rule
        if "path" in rule:
            rule["parts"] = rule["path"].split(".")
        if "list" in rule:
            rule["list_parts"] = rule["list"].split(".")
        if rule.get("table"):
            rule["inverse"] = self.spec.inverse_tables[rule["table"]]
        if schema is None and operation is not None:
            schema = field_schema(schemas.load(OPERATIONS[operation].response_schema), name)
        rule["integer"] = name in INTEGER_FIELDS or is_integer(schema)
        if "each" in rule:
            entry = entry_schema(schema)
            rule["readers"] = [(sub, self._compile(sub_rule, sub, schema=field_schema(entry, sub)))
                               for sub, sub_rule in rule["each"].items()]
        #: a required value read as it is (no table, date, type or optional): the fast path
        rule["plain"] = ("parts" in rule and not rule["integer"] and
                         not any(rule.get(k) for k in ("table", "date", "datetime", "type", "optional",
                                                       "from_request")))
        return compiled

    # -- request ------------------------------------------------------------------------------
    def _value(self, rule: Any, request: Payload, op: OperationSpec) -> Any:
        if isinstance(rule, str):
            return request.get(rule)
        if "each" in rule:  # a list field: each entry mapped to a wire object
            entries = _field(request, rule["field"])
            if entries is None:
                return None
            wire_entries = []
            for entry in entries:
                item: dict[str, Any] = {}
                for key, sub in rule["each"].items():
                    part = self._value(_request_rule(sub), entry, op)
                    if part is not None:
                        set_path(item, key, part)
                wire_entries.append(item)
            return json_text(wire_entries) if rule.get("encode") == "json" else wire_entries
        if "const" in rule:
            value: Any = rule["const"]
        elif "credential" in rule:
            value = self.credentials[rule["credential"]]
        elif "generate" in rule:
            value = generate(rule["generate"])
        elif rule.get("operation_code"):
            value = op.code
        else:
            value = _field(request, rule["field"])
            if value is None:
                value = rule.get("default")
        if value is None:
            return None
        if rule.get("encode") == "json":
            return json_text(value)
        if rule.get("table"):
            table = self.spec.tables[rule["table"]]
            if value not in table:
                raise InvalidInput(f"{rule.get('field', '?')} has a value the city does not take",
                                   field=rule.get("field"), rule="table", city=request.get("aab301"),
                                   operation=op.name)
            value = table[value]
        if rule.get("type") == "int":
            value = int(value)
        elif rule.get("type") == "string":
            value = str(value)
        return value

    def build(self, op: OperationSpec, request: Payload) -> tuple[str, dict[str, Any], dict[str, str], dict[str, str]]:
        """``(path, body tree, query, headers)`` of the wire request, authenticated."""
        tree: dict[str, Any] = {}
        query: dict[str, str] = {}
        headers: dict[str, str] = {}
        for where, key, parts, rule in self._writers[op.name]:
            value = request.get(rule) if type(rule) is str else self._value(rule, request, op)
            if value is None:
                continue
            if where == "body":
                if len(parts) == 1:
                    tree[key] = value
                else:
                    set_path(tree, key, value)
            elif where == "query":
                query[key] = str(value)
            else:
                headers[key] = str(value)
        auth.sign(self.spec.auth, tree, headers, self.credentials)
        path = op.path.format_map({k: quote(str(v), safe="") for k, v in request.items()}) if "{" in op.path \
            else op.path
        return path, tree, query, headers

    # -- one exchange ----------------------------------------------------------------------------
    def _run(self, operation: str, request: Payload) -> Payload:
        op = self.spec.operations[operation]
        call = CityCall(str(request.get("aab301")), operation)
        path, tree, query, headers = self.build(op, request)
        transport = self._transport
        kwargs: dict[str, Any] = {"params": query or None}
        if op.method != "GET":
            headers["Content-Type"] = self._content_type
            kwargs["data"] = encode(tree, self._encoding, transport)
            if self._encoding == "soap11" and transport.get("soap_action"):
                headers["SOAPAction"] = '"' + str(transport["soap_action"]).replace("{code}", op.code or "") + '"'
        started = time.perf_counter()
        resp = self.http.request(op.method, path, city=call.city, operation=operation,
                                 idempotent=OPERATIONS[operation].idempotent, headers=headers,
                                 readable_statuses=self._body_statuses, **kwargs)
        latency_ms = (time.perf_counter() - started) * 1000  # the framework times health for the plugin
        status = resp.status_code
        if not 200 <= status < 300 and status not in self._body_statuses:
            raise call.rejected(f"the city refused the request with HTTP {status}")
        try:
            answer = decode(resp.content, self._response_encoding, transport)
        except WireError as err:
            if status >= 500:  # a declared body status without a readable body: an outage
                raise UpstreamUnavailable(f"the city answered HTTP {status}", reason="http_5xx", http_status=status,
                                          **call.ctx) from None
            if status >= 400:  # a refusal whose body cannot be read is still a refusal
                raise call.rejected(f"the city refused the request with HTTP {status}") from None
            raise call.malformed(f"{err} (HTTP {status})") from None
        if self._echo:
            self._check_echo(tree, answer, call)
        code = self._first_code(answer)
        if 200 <= status < 300 and code in self._success:
            check = op.check
            if check and str(get_path(answer, check["path"])).lower() != str(check["equals"]).lower():
                raise outcome_error(check["otherwise"], city=call.city, operation=operation,
                                    code=f"{check['path']} not {check['equals']}")
            return self.answer(op, answer, request, call, latency_ms)
        raise self.error(answer, code, status, call, tree)

    def _check_echo(self, sent: Mapping[str, Any], answer: Mapping[str, Any], call: CityCall) -> None:
        """The correlation fields the city copies must be ours (another request's answer is not)."""
        for ours, theirs, name in self._echo:
            mine, echoed = get_parts(sent, ours), get_parts(answer, theirs)
            if mine is not None and echoed not in (None, "") and str(echoed) != str(mine):
                raise call.malformed(f"the answer's '{name}' does not echo our '{'.'.join(ours)}'")

    def _first_code(self, tree: Mapping[str, Any]) -> str | None:
        for parts in self._code_paths:
            value = get_parts(tree, parts)
            if value is not None and value != "" and type(value) is not dict and type(value) is not list:
                return str(value)
        return None

    @staticmethod
    def _first(tree: Mapping[str, Any], paths: list[str]) -> str | None:
        for path in paths:
            value = get_path(tree, path)
            if value not in (None, "") and not isinstance(value, Mapping | list):
                return str(value)
        return None

    def error(self, answer: Mapping[str, Any], code: str | None, status: int, call: CityCall,
              sent: Mapping[str, Any] | None = None) -> EsscError:
        """The typed error of an answer that is not a success."""
        outcome = self.spec.outcomes.get(code) if code is not None else None
        if outcome is None:
            fault = get_path(answer, "Fault.faultcode")
            if isinstance(fault, str) and fault.endswith("Server"):
                return UpstreamUnavailable("the city answered a SOAP Server fault", reason="http_5xx",
                                           http_status=status, **call.ctx)
            if isinstance(fault, str):
                return call.rejected(f"the city answered a SOAP {fault.rsplit(':', 1)[-1]} fault")
            if status >= 500 and code is None:
                return UpstreamUnavailable(f"the city answered HTTP {status}", reason="http_5xx", http_status=status,
                                           **call.ctx)
            what = f"result code {code!r}" if code is not None else "no result code"
            return call.malformed(f"HTTP {status} with {what} that the dialect does not know")
        retry_after = None
        if outcome.get("retry_after"):
            retry_after = retry_seconds(get_path(answer, outcome["retry_after"]))
        card_status = state = None
        if outcome.get("status"):
            card_status = self._read(answer, outcome["status"], "status", {}, call, optional=True)
        if outcome.get("state"):
            state = self._read(answer, outcome["state"], "state", {}, call, optional=True)
        named = None
        if outcome["kind"] == "bad_request":  # which of OUR fields the city's message names (not its text)
            message = self._first(answer, self.spec.response.get("message") or [])
            fields = named_fields(message, [p.rsplit(".", 1)[-1] for p in _leaf_names(sent or {})])
            named = ", ".join(fields) or None
        return outcome_error(outcome["kind"], city=call.city, operation=call.operation, code=code,
                             retry_after=retry_after, status=card_status, message_field=named, state=state)

    # -- answer -------------------------------------------------------------------------------------
    def _read(self, tree: Any, rule: Any, name: str, request: Payload, call: CityCall,
              optional: bool = False) -> Any:
        if type(rule) is not dict or "integer" not in rule:  # not compiled yet (an outcome's status or state)
            rule = self._compile(rule, name)
        if "from_request" in rule:
            return request.get(rule["from_request"])
        if "readers" in rule:
            return self._read_list(tree, rule, name, request, call)
        value = get_parts(tree, rule["parts"])
        if value is None or value == "" or type(value) is dict or type(value) is list:
            if optional or rule.get("optional"):
                return None
            raise call.malformed(f"the answer lacks '{rule['path']}' (for {name})")
        inverse = rule.get("inverse")
        if inverse is not None:
            key = value if type(value) is str else str(value)
            if key not in inverse:
                raise call.malformed(f"the answer has an unknown '{rule['path']}'")
            value = inverse[key]
        date = rule.get("date")
        if date:
            value = _date8(value, date)
            if value is None:
                raise call.malformed(f"the answer's '{rule['path']}' is not a date of the form {date}")
        moment = rule.get("datetime")
        if moment:
            value = _moment14(value, moment)
            if value is None:
                raise call.malformed(f"the answer's '{rule['path']}' is not a moment of the form {moment}")
        if rule["integer"]:
            if type(value) is str and value.isascii() and value.isdigit():
                value = int(value)
        elif type(value) is int or type(value) is float:
            value = str(value)
        return value

    def _read_list(self, tree: Any, rule: Mapping[str, Any], name: str, request: Payload,
                   call: CityCall) -> list[dict[str, Any]] | None:
        """The entries of a list field (``list`` + ``each``); one wire entry may come as an object
        (XML), none as an absent or empty element."""
        items = get_parts(tree, rule["list_parts"])
        if items in (None, ""):
            return None if rule.get("optional") else []
        items = items if isinstance(items, list) else [items]
        out: list[dict[str, Any]] = []
        for item in items:
            if not isinstance(item, Mapping):
                raise call.malformed(f"an entry of '{rule['list']}' is not an object (for {name})")
            entry: dict[str, Any] = {}
            for sub, reader in rule["readers"]:
                value = self._read(item, reader, sub, request, call)
                if value is not None:
                    entry[sub] = value
            out.append(entry)
        return out

    def answer(self, op: OperationSpec, tree: Mapping[str, Any], request: Payload, call: CityCall,
               latency_ms: float) -> Payload:
        """The contract answer of a successful exchange."""
        if op.name == "list_services":
            rule = op.response["services"]
            items = get_path(tree, rule["list"])
            items = [] if items in (None, "") else items if isinstance(items, list) else [items]
            code_rule = rule["code"] if isinstance(rule["code"], Mapping) else {"path": rule["code"]}
            table = self.spec.inverse_tables.get(code_rule.get("table", ""), {})
            name_key = rule["name"] if isinstance(rule["name"], str) else rule["name"]["path"]
            services = call.services(items, code_rule["path"], name_key, table)
            return call.fits("service_list", {"aab301": call.city, "services": services})
        if op.name == "health":
            rule = op.response["status"]
            rule = rule if isinstance(rule, Mapping) else {"path": rule}
            words = self.spec.tables.get(rule.get("table", ""), {"up": "up", "down": "down"})
            state = get_path(tree, rule["path"])
            if state in (None, "") or isinstance(state, Mapping | list):
                raise call.malformed(f"the answer lacks '{rule['path']}' (for status)")
            return call.fits("health", call.health(str(state or ""), str(words.get("up", "up")),
                                                   str(words.get("down", "down")), round(latency_ms, 1)))
        result: dict[str, Any] = {}
        for name, rule in self._readers[op.name]:
            if rule["plain"]:  # the common case, inline: a required string at a path
                value = get_parts(tree, rule["parts"])
                if type(value) is str and value:
                    result[name] = value
                    continue
            value = self._read(tree, rule, name, request, call)
            if value is not None:
                result[name] = value
        if op.name == "verify_identity":
            result.update(verified=True, factor=request["factor"])
        return call.fits(OPERATIONS[op.name].response_schema, result)


def _request_rule(rule: Any) -> Any:
    """A request rule as the writers use it: a dotted contract field becomes ``{"field": ...}``."""
    return {"field": rule} if isinstance(rule, str) and "." in rule else rule


def _field(request: Mapping[str, Any], name: str) -> Any:
    """The contract field ``name`` of a request (a dotted path for a field inside an object)."""
    if "." not in name:
        return request.get(name)
    return get_path(request, name)
