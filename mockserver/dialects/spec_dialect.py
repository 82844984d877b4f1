"""The city side of a spec dialect: the mock answers in the spec's protocol, on top of the
dialect-neutral business model (citizens, card statuses, sync delay, not opened, identity
checks) and the shared request pipeline (attempts, faults, journal: :meth:`Dialect.exchange`).

The same :class:`essc.core.dialects.DialectSpec` the adapter is derived from is read here
the other way round: the request map tells which wire field carries which contract field,
the answer map where each contract value goes, the outcome table which code each business
outcome gets (the first code of its kind), the auth scheme how to check the signature.
"""
from __future__ import annotations

import datetime as dt
import json
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, request

from essc import schemas
from essc.core.adapter import OPERATIONS
from essc.core.dialects import DialectSpec
from essc.core.dialects import auth as spec_auth
from essc.core.dialects.adapter import credentials_for, generate
from essc.core.dialects.spec import OperationSpec, entry_schema, field_schema
from essc.core.dialects.wire import CONTENT_TYPES, WireError, decode, encode, get_path, set_path
from essc.core.naming import with_deprecated
from essc.core.schemas import validator

from .. import business
from ..business import CardState, MockBusinessError, PaymentBinding
from ..citizens import Citizen
from ..state import Credential
from . import Dialect, ProtocolError, city_code, guard_body, id_number, mock_state

__all__ = ["SpecCityDialect", "register_spec_dialect", "contract_result", "play", "answer", "SINCE_1_2"]

#: the operations of contract 1.2: their requests are checked against the contract's schema
SINCE_1_2 = frozenset(n for n, op in OPERATIONS.items() if op.since == "1.2")

_PATH_FIELD = re.compile(r"\{([a-z_0-9]+)\}")
#: business outcome -> kind to answer with when the spec has no code of its own for it
_FALLBACK = {"ticket_invalid": "identity_mismatch", "too_large": "bad_request", "bad_timestamp": "bad_request",
             "undecryptable": "unparseable", "unparseable": "bad_request", "unknown_operation": "bad_request",
             "unauthorized": "bad_signature", "bad_signature": "bad_request"}


def contract_result(operation: str, result: Any, factor: str | None = None) -> dict[str, Any]:
    """A business result as the contract's answer (what the spec's answer map reads)."""
    if operation == "read_card" and isinstance(result, Citizen):
        return {"aac002": result.id_number, "aac003": result.name, "aab301": result.city, "aaz500": result.card_no,
                "aaz501": result.card_id, "aaz502": result.card_status, "aaz508": result.generation,
                "aae008": result.bank, "aac067": result.mobile}
    if operation == "verify_identity":
        return {"verified": True, "verify_id": result, "factor": factor}
    if operation == "activate" and isinstance(result, Credential):  # the names of 1.2 and the deprecated ones
        return with_deprecated("credential", {
            "aab301": result.city, "sign_no": result.sign_no, "sign_seq": result.sign_seq, "sign_level": result.level,
            "valid_until": result.valid_until.strftime("%Y%m%d"), "sign_date": result.signed_at.strftime("%Y%m%d")})
    if operation == "list_services":
        return {"services": [{"code": code, "name": name} for code, name in result]}
    if operation == "card_status" and isinstance(result, CardState):
        state = {"aab301": result.city, "aaz502": result.status,
                 "checked_at": result.checked_at.strftime("%Y%m%d%H%M%S")}
        return state if result.sign_level is None else {**state, "sign_level": result.sign_level}
    if operation == "enable_payment" and isinstance(result, PaymentBinding):
        return {"aab301": result.city, "sign_no": result.sign_no, "sign_level": result.sign_level,
                "aae008": result.bank, "account_hint": result.account_hint}
    if operation == "reset_password" and isinstance(result, tuple):
        city, day = result
        return {"aab301": city, "reset_date": day.strftime("%Y%m%d")}
    if operation == "query_contributions" and isinstance(result, tuple):
        city, months = result
        return {"aab301": city, "months": months}
    if operation == "settle_medical":
        return dict(result)
    return {"status": result}


class SpecCityDialect(Dialect):
    """Answers of one spec dialect."""

    def __init__(self, spec: DialectSpec) -> None:
        self.spec = spec
        self.name = spec.name

    # -- rendering ---------------------------------------------------------------------------
    def _wire_value(self, rule: Mapping[str, Any], value: Any) -> Any:
        if rule.get("table"):
            value = self.spec.tables[rule["table"]].get(value, value)
        if rule.get("date"):
            value = dt.datetime.strptime(str(value), "%Y%m%d").strftime(rule["date"])
        if rule.get("datetime"):
            value = dt.datetime.strptime(str(value), "%Y%m%d%H%M%S").strftime(rule["datetime"])
        if rule.get("type") == "int":
            value = int(value)
        elif isinstance(value, int) and not isinstance(value, bool) and rule.get("type") != "int":
            value = str(value) if rule.get("type") == "string" else value
        return value

    def _head(self, ctx: dict[str, Any], code: str, message: str, fault: bool = False) -> dict[str, Any]:
        tree: dict[str, Any] = {}
        spec = self.spec
        for source, target in (spec.response.get("echo") or {}).items():
            value = get_path(ctx.get("tree") or {}, source)
            if value not in (None, "") and not target.startswith("Fault."):
                set_path(tree, target, value)
        for path, rule in (spec.response.get("fields") or {}).items():
            set_path(tree, path, generate(rule["generate"]) if isinstance(rule, Mapping) and "generate" in rule
                     else rule.get("const") if isinstance(rule, Mapping) else rule)
        for key, value in (("code", code), ("message", message)):
            paths = spec.response.get(key) or []
            chosen = [p for p in paths if p.startswith("Fault.") == fault]
            if chosen:
                set_path(tree, chosen[0], value)
        return tree

    def _render(self, tree: Mapping[str, Any], status: int, fault: str | None = None) -> Response:
        spec = self.spec
        encoding = spec.response_encoding
        if fault is not None:
            body_tree = dict(tree.get("Fault") or {})
            body_tree = {"faultcode": fault, **{k: v for k, v in body_tree.items() if k != "faultcode"}}
            body = encode({}, encoding, spec.transport, answer=True, fault=body_tree)
        else:
            body = encode(tree, encoding, spec.transport, answer=True)
        charset = spec.transport.get("charset", "utf-8")
        return Response(body, status, content_type=f"{CONTENT_TYPES[encoding]}; charset={charset}")

    def ok(self, operation: str, result: Any, ctx: dict[str, Any]) -> Response:
        op = self.spec.operations[operation]
        answer = contract_result(operation, result, ctx.get("factor"))
        success = self.spec.response["success"][0]
        tree = self._head(ctx, success, "成功") if success is not None else self._head(ctx, "", "")
        if success is None:
            for key in ("code", "message"):
                for path in self.spec.response.get(key) or []:
                    _drop(tree, path)
        if op.check:
            set_path(tree, op.check["path"], op.check["equals"])
        for name, rule in op.response.items():
            rule = rule if isinstance(rule, Mapping) else {"path": rule}
            if "from_request" in rule:
                continue
            if "list" in rule and "each" in rule:  # a list field: one wire entry per contract entry
                entries = []
                for entry in answer.get(name) or []:
                    item: dict[str, Any] = {}
                    for sub, sub_rule in rule["each"].items():
                        sub_rule = sub_rule if isinstance(sub_rule, Mapping) else {"path": sub_rule}
                        if entry.get(sub) is not None:
                            set_path(item, sub_rule["path"], self._wire_value(sub_rule, entry[sub]))
                    entries.append(item)
                set_path(tree, rule["list"], entries)
                continue
            if "list" in rule:
                code_rule = rule["code"] if isinstance(rule["code"], Mapping) else {"path": rule["code"]}
                name_rule = rule["name"] if isinstance(rule["name"], Mapping) else {"path": rule["name"]}
                items = []
                for entry in answer.get("services", []):
                    item: dict[str, Any] = {}
                    set_path(item, code_rule["path"], self._wire_value(code_rule, entry["code"]))
                    set_path(item, name_rule["path"], entry["name"])
                    items.append(item)
                set_path(tree, rule["list"], items)
                continue
            value = answer.get(name)
            if value is None:
                continue
            set_path(tree, rule["path"], self._wire_value(rule, value))
        return self._render(tree, op.success_status)

    def _error(self, kind: str, message: str, ctx: dict[str, Any], extra: Mapping[str, Any] | None = None
               ) -> Response:
        spec = self.spec
        seen = set()
        while kind not in spec.code_of_kind and kind in _FALLBACK and kind not in seen:
            seen.add(kind)
            kind = _FALLBACK[kind]
        code = spec.code_of_kind.get(kind)
        if code is None:  # the spec has no code for it: the city cannot say it
            return self._render({}, 500, fault="soapenv:Server" if spec.response_encoding == "soap11" else None)
        outcome = spec.outcomes[code]
        fault = outcome.get("fault")
        tree = self._head(ctx, code, message, fault=fault is not None)
        for key, value in (extra or {}).items():
            rule = outcome.get(key)
            if rule is None or value is None:
                continue
            rule = rule if isinstance(rule, Mapping) else {"path": rule}
            set_path(tree, rule["path"], self._wire_value(rule, value))
        status = outcome.get("http", 500 if fault else 200)
        return self._render(tree, status, fault=fault)

    def business_error(self, err: MockBusinessError, ctx: dict[str, Any]) -> Response:
        return self._error(err.kind, err.message, ctx, {"retry_after": err.data.get("retry_after"),
                                                        "status": err.data.get("status"),
                                                        "state": err.data.get("state")})

    def protocol_error(self, err: ProtocolError, ctx: dict[str, Any]) -> Response:
        return self._error(err.kind, err.message, ctx)

    def malformed(self, ctx: dict[str, Any]) -> Response:
        encoding = self.spec.response_encoding
        body = b'{"RspHead": {"RetCode": "00' if encoding == "json" else b"<?xml version='1.0'?><Envelope><Bo"
        return Response(body, 200, content_type=CONTENT_TYPES[encoding])

    # -- requests ------------------------------------------------------------------------------
    def parse(self, op_hint: str | None, path_args: Mapping[str, str]
              ) -> tuple[OperationSpec, dict[str, Any], dict[str, Any]]:
        """``(operation, wire tree, contract fields)`` of the current request."""
        spec = self.spec
        tree: dict[str, Any] = {}
        if request.method != "GET":
            try:
                tree = decode(request.get_data(cache=True), spec.encoding, spec.transport)
            except WireError as err:
                raise ProtocolError("unparseable", f"body: {err}", "body") from None
        op = spec.operations.get(op_hint) if op_hint else None
        if op is None:
            code_path = next((w for w, r in spec.common_request.items()
                              if isinstance(r, Mapping) and r.get("operation_code")), None)
            code = get_path(tree, code_path) if code_path else None
            op = next((o for o in spec.operations.values() if o.code is not None and o.code == code), None)
            if op is None:
                raise ProtocolError("unknown_operation", f"unknown operation code: {code_path}", code_path)
        try:
            return op, tree, self._fields(op, tree, path_args)
        except ProtocolError as err:  # journaled under the operation and city it was meant for
            err.operation = op.name  # type: ignore[attr-defined]
            city = next((get_path(tree, w) for w, r in op.request.items() if r == "aab301"), None)
            err.city = city if isinstance(city, str) else path_args.get("aab301")  # type: ignore[attr-defined]
            raise

    def _fields(self, op: OperationSpec, tree: dict[str, Any], path_args: Mapping[str, str]) -> dict[str, Any]:
        spec = self.spec
        try:
            spec_auth.check(spec.auth, tree, request.headers, credentials_for(spec, _configured(spec.name)))
        except spec_auth.AuthRefused as refused:
            raise ProtocolError(refused.kind, refused.message) from None
        fresh = (spec.data.get("checks") or {}).get("fresh")
        if fresh:
            stamp = get_path(tree, fresh["path"])
            if not isinstance(stamp, str) or not stamp.isascii() or not stamp.isdigit() or len(stamp) > 16:
                raise ProtocolError("bad_timestamp", f"missing or invalid field: {fresh['path']}", fresh["path"])
            seconds = int(stamp) / (1000 if fresh.get("unit") == "ms" else 1)
            if abs(time.time() - seconds) > fresh["window_s"]:
                raise ProtocolError("bad_timestamp", f"{fresh['path']} is too far off", fresh["path"])
        request_schema = schemas.load(OPERATIONS[op.name].request_schema)
        fields: dict[str, Any] = {}
        for wire, rule in op.request.items():
            rule = {"field": rule} if isinstance(rule, str) else rule
            name = rule.get("field")
            if name is None:
                continue
            if wire.startswith("query."):
                value: Any = request.args.get(wire[len("query."):])
            elif wire.startswith("header."):
                value = request.headers.get(wire[len("header."):])
            else:
                value = get_path(tree, wire)
            if name in path_args:
                value = path_args[name]
            target = field_schema(request_schema, name) or {}
            structured = target.get("type") in ("object", "array")
            if rule.get("encode") == "json" and isinstance(value, str) and value:
                try:
                    value = json.loads(value)
                except ValueError:
                    raise ProtocolError("bad_request", f"invalid field: {wire} (JSON text)", wire) from None
            if value in (None, "") or (isinstance(value, Mapping | list) and not structured):
                if "default" in rule or not _required(request_schema, name):
                    continue
                raise ProtocolError("bad_request", f"missing or empty field: {wire}", wire)
            if "each" in rule:
                value = self._entries(value, rule["each"], entry_schema(target), wire)
            elif rule.get("table"):
                inverse = spec.inverse_tables[rule["table"]]
                if str(value) not in inverse:
                    raise ProtocolError("bad_request", f"invalid field: {wire}", wire)
                value = inverse[str(value)]
            _set_field(fields, name, _typed(value, target))
        for name, value in path_args.items():  # contract fields carried in the path (/cities/{aab301}/...)
            fields.setdefault(name, value)
        if op.name in SINCE_1_2:  # the city checks what the contract says of the request
            problem = validator(OPERATIONS[op.name].request_schema).first_problem(fields)
            if problem is not None:
                raise ProtocolError("bad_request", f"invalid field: {problem.path} ({problem.rule})", problem.path)
        return fields

    def _entries(self, value: Any, each: Mapping[str, Any], schema: Mapping[str, Any], wire: str
                 ) -> list[dict[str, Any]]:
        """The contract entries of a list field's wire entries (one XML entry comes as an object)."""
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if not isinstance(item, Mapping):
                raise ProtocolError("bad_request", f"invalid field: {wire} (a list of objects)", wire)
            entry: dict[str, Any] = {}
            for sub_wire, sub_rule in each.items():
                sub_rule = {"field": sub_rule} if isinstance(sub_rule, str) else sub_rule
                sub = get_path(item, sub_wire)
                if sub in (None, "") or isinstance(sub, Mapping | list):
                    continue  # the schema check names what is missing
                if sub_rule.get("table"):
                    sub = self.spec.inverse_tables[sub_rule["table"]].get(str(sub), sub)
                _set_field(entry, sub_rule["field"], _typed(sub, field_schema(schema, sub_rule["field"]) or {}))
            out.append(entry)
        return out


def _required(schema: Mapping[str, Any], name: str) -> bool:
    """Is the request's field ``name`` required (a dotted field: is its first part)?"""
    return name.split(".")[0] in schema.get("required", ())


def _set_field(fields: dict[str, Any], name: str, value: Any) -> None:
    if "." in name:
        set_path(fields, name, value)
    else:
        fields[name] = value


def _typed(value: Any, schema: Mapping[str, Any]) -> Any:
    """A wire text as the contract's integer or number where the schema says so (XML and forms
    carry text only); anything that does not parse stays as it is for the schema check to refuse."""
    kind = schema.get("type")
    if isinstance(value, str) and kind in ("integer", "number"):
        text = value.strip()
        try:
            return int(text) if kind == "integer" or text.lstrip("-").isdigit() else float(text)
        except ValueError:
            return value
    return value


def _configured(name: str) -> dict[str, str]:
    return dict((current_app.config.get("SECRETS") or {}).get(name, {}))


def _drop(tree: dict[str, Any], path: str) -> None:
    *parents, last = path.split(".")
    node: Any = tree
    for part in parents:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)


def _work(op: str, fields: dict[str, Any], dialect: str) -> Any:
    state = mock_state()
    city = city_code(fields, "aab301")
    if op == "read_card":
        return business.read_card(state, dialect, city, id_number(fields, "aac002"), str(fields.get("aac003", "")))
    if op == "verify_identity":
        return business.verify_identity(state, dialect, city, id_number(fields, "aac002"),
                                        str(fields.get("face_token", "")), str(fields.get("factor", "")),
                                        str(fields.get("code", "")))
    if op == "activate":
        level = fields.get("sign_level", 1)
        try:
            level = int(level)
        except (TypeError, ValueError):
            level = 0
        if level not in (1, 2):
            raise ProtocolError("bad_request", "invalid field: sign level (1 or 2)", "sign_level")
        return business.activate(state, dialect, city, id_number(fields, "aac002"), str(fields.get("verify_id", "")),
                                 str(fields.get("channel", "")), level)
    if op == "list_services":
        return business.list_services(state, dialect, city)
    if op == "card_status":
        return business.card_status(state, dialect, city, id_number(fields, "aac002"), fields.get("sign_no"))
    if op == "enable_payment":
        return business.enable_payment(state, dialect, city, id_number(fields, "aac002"), str(fields["sign_no"]),
                                       str(fields["verify_id"]), str(fields["channel"]))
    if op == "reset_password":
        day = business.reset_password(state, dialect, city, id_number(fields, "aac002"), str(fields["verify_id"]),
                                      str(fields["new_password"]))
        return city, day
    if op == "query_contributions":
        return city, business.query_contributions(state, dialect, city, id_number(fields, "aac002"),
                                                  str(fields["from_month"]), str(fields["to_month"]))
    if op == "settle_medical":
        id_number(fields, "aac002")
        return business.settle_medical(state, dialect, city, fields)
    return business.health(state, dialect, city)


def answer(dialect: SpecCityDialect, hint: str | None, path_args: Mapping[str, str]) -> Response:
    """Answer the current request in ``dialect``'s protocol: parse it (``hint``: the operation
    when the route says it), then run it through :meth:`Dialect.exchange`."""
    ctx: dict[str, Any] = {}
    try:
        op, tree, fields = dialect.parse(hint, path_args)
    except ProtocolError as err:
        failure = err

        def refuse() -> Any:
            raise failure

        return dialect.exchange(getattr(err, "operation", hint), getattr(err, "city", None), None, refuse, ctx)
    ctx.update(tree=tree, factor=fields.get("factor"))
    city = fields.get("aab301") if isinstance(fields.get("aab301"), str) else None
    citizen = fields.get("aac002") if isinstance(fields.get("aac002"), str) else None
    return dialect.exchange(op.name, city, citizen, lambda: _work(op.name, fields, dialect.name), ctx)


def _blueprint(spec: DialectSpec, operations: Iterable[str] | None, served: set[tuple[str, str]]) -> Blueprint:
    dialect = SpecCityDialect(spec)
    wanted = set(spec.operations if operations is None else operations)
    bp = Blueprint("spec_" + re.sub(r"[^a-z0-9]", "_", spec.name) + ("" if operations is None else "_more"), __name__)
    routes: dict[tuple[str, str], list[str]] = {}
    for op in spec.operations.values():
        if op.name in wanted and (op.method, _PATH_FIELD.sub(r"<\1>", op.path)) not in served:
            routes.setdefault((op.method, op.path), []).append(op.name)

    def make_view(method: str, ops: list[str]) -> Any:
        hint = ops[0] if len(ops) == 1 else None

        def view(**path_args: str) -> Response:
            return answer(dialect, hint, path_args)

        view.__name__ = "_".join(ops) if hint else "gateway_" + re.sub(r"[^a-z0-9]", "_", method.lower())
        return view

    for (method, path), ops in routes.items():
        rule = _PATH_FIELD.sub(r"<\1>", path)
        bp.add_url_rule(rule, view_func=make_view(method, ops), methods=[method])
    guard_body(bp, dialect, lambda: None)
    return bp


def register_spec_dialect(app: Flask, spec: DialectSpec, operations: Iterable[str] | None = None) -> None:
    """Play ``spec`` on ``app`` (the mock): its routes, answering from the business model. With
    ``operations``, only theirs, on the routes the app does not serve yet: a hand-written city side
    that plays the other operations on a shared route (a gateway) hands these to the spec (:func:`play`)."""
    served = {(method, rule.rule) for rule in app.url_map.iter_rules() for method in rule.methods or ()}
    app.register_blueprint(_blueprint(spec, operations, served))


def play(spec: DialectSpec, **path_args: str) -> Response:
    """Answer the current request from ``spec``: what a hand-written gateway calls for an operation
    it does not play itself (the operations of contract 1.2)."""
    return answer(SpecCityDialect(spec), None, path_args)
