"""Dialect specs: a city protocol as data (``schemas/dialect.schema.json``).

:func:`load_spec` reads a YAML or JSON spec, validates it against the schema and against
the contract (every table it names exists, every required contract field of an answer is
mapped, a SOAP spec names its elements...), and returns a :class:`DialectSpec` that both
sides use: :class:`essc.core.dialects.adapter.SpecAdapter` (the platform side) and the
mock's spec dialect (the city side). A broken spec is a :class:`SpecError` naming the file,
the JSON path and the rule.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, cast

import jsonschema

from essc import schemas

from ..adapter import OPERATIONS

__all__ = ["DialectSpec", "OperationSpec", "SpecError", "load_spec", "parse_spec", "field_schema", "entry_schema",
           "is_integer", "OUTCOMES_OF"]

#: contract answer fields the framework fills itself (not on the wire)
FRAMEWORK_FIELDS = {"verify_identity": {"verified", "factor"}, "health": {"latency_ms", "detail"},
                    "list_services": {"aab301"}}
#: contract answer fields that are integers (all others are strings); the 1.2 answers say it in
#: their schemas (:func:`is_integer`)
INTEGER_FIELDS = frozenset({"signLevel", "sign_level"})
#: outcome kinds an operation of contract 1.2 can end in, beyond those every operation has: a spec
#: carrying the operation gives each a result code (the mock answers it, the adapter maps it back)
OUTCOMES_OF = {
    "card_status": ("credential_unknown",),
    "enable_payment": ("credential_unknown", "card_status"),
    "reset_password": ("card_status",),
    "settle_medical": ("credential_unknown", "card_status", "settlement_unknown", "settlement_conflict"),
}


def field_schema(schema: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
    """The schema of the contract field at dotted ``path`` of an object ``schema`` (references
    into ``common`` and single-member ``allOf`` followed); None when there is no such field."""
    node: Mapping[str, Any] | None = schema
    for part in path.split("."):
        node = _resolve(node)
        if node is None:
            return None
        if node.get("type") == "array":
            node = _resolve(node.get("items"))
        props = node.get("properties") if node is not None else None
        node = props.get(part) if isinstance(props, Mapping) else None
    return _resolve(node)


def entry_schema(schema: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The schema of an entry of a list field's ``schema`` (empty when it is no list)."""
    return (_resolve(schema.get("items")) if schema is not None else None) or {}


def _resolve(node: Any) -> Mapping[str, Any] | None:
    if not isinstance(node, Mapping):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(schemas.BASE_URI):
        uri, _, fragment = ref.partition("#")
        target: Any = schemas.load(uri[len(schemas.BASE_URI):][: -len(".schema.json")])
        for part in filter(None, fragment.split("/")):
            target = target[part]
        return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    members = node.get("allOf")
    if isinstance(members, list) and len(members) == 1:
        inner = _resolve(members[0]) or {}
        return {**inner, **{k: v for k, v in node.items() if k != "allOf"}}
    return node


def is_integer(schema: Mapping[str, Any] | None) -> bool:
    """Does a contract field of ``schema`` hold an integer (type integer, or integer enum/const)?"""
    if schema is None:
        return False
    if schema.get("type") == "integer":
        return True
    values = schema.get("enum", [schema["const"]] if "const" in schema else None)
    return bool(values) and all(type(v) is int for v in values)


class SpecError(ValueError):
    """A spec that cannot be used; ``where`` is the file, ``path`` the JSON path in it."""

    def __init__(self, where: str, path: str, problem: str) -> None:
        super().__init__(f"{where}: {path}: {problem}")
        self.where, self.path, self.problem = where, path, problem


@dataclass(frozen=True)
class OperationSpec:
    name: str
    method: str
    path: str
    code: str | None
    success_status: int
    request: Mapping[str, Any]
    response: Mapping[str, Any]
    #: a success must carry ``path`` = ``equals``, else it is the outcome ``otherwise``
    check: Mapping[str, Any] | None = None


@dataclass
class DialectSpec:
    """A validated spec. ``data`` is the spec as written; the rest is derived from it."""

    data: dict[str, Any]
    source: str
    operations: dict[str, OperationSpec] = field(default_factory=dict)
    #: table name -> wire value -> contract value
    inverse_tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: outcome kind -> the first result code of that kind (what the mock answers)
    code_of_kind: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.data["name"])

    @property
    def title(self) -> str:
        return str(self.data["title"])

    @property
    def transport(self) -> Mapping[str, Any]:
        return cast("Mapping[str, Any]", self.data["transport"])

    @property
    def encoding(self) -> str:
        return str(self.transport["encoding"])

    @property
    def response_encoding(self) -> str:
        default = "json" if self.encoding == "form" else self.encoding
        return str(self.transport.get("response_encoding", default))

    @property
    def body_statuses(self) -> frozenset[int]:
        return frozenset(self.transport.get("body_statuses", ()))

    @property
    def auth(self) -> Mapping[str, Any]:
        return self.data.get("auth") or {"scheme": "none"}

    @property
    def credentials(self) -> Mapping[str, Mapping[str, Any]]:
        return self.data.get("credentials") or {}

    @property
    def common_request(self) -> Mapping[str, Any]:
        return self.data.get("request") or {}

    @property
    def response(self) -> Mapping[str, Any]:
        return cast("Mapping[str, Any]", self.data["response"])

    @property
    def outcomes(self) -> Mapping[str, Mapping[str, Any]]:
        return cast("Mapping[str, Mapping[str, Any]]", self.data["outcomes"])

    @property
    def tables(self) -> Mapping[str, Mapping[str, Any]]:
        return self.data.get("tables") or {}

    @property
    def volatile(self) -> tuple[str, ...]:
        return tuple(self.data.get("volatile", ()))

    def secret_values(self, credentials: Mapping[str, str]) -> list[str]:
        """The values of the secret credentials (kept out of logs and cassettes)."""
        return [credentials.get(n, c["default"]) for n, c in self.credentials.items() if c.get("secret")]


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schemas.load("dialect"))


def parse_spec(data: Any, source: str) -> DialectSpec:
    """Validate ``data`` (a parsed spec) and derive what both sides need."""
    errors = sorted(_validator().iter_errors(data), key=lambda e: (len(e.absolute_path), e.json_path))
    if errors:
        first = errors[0]
        raise SpecError(source, first.json_path, f"breaks rule '{first.validator}': {first.message[:200]}")
    spec = DialectSpec(data=data, source=source)
    tables = spec.tables
    for name, table in tables.items():
        spec.inverse_tables[name] = {str(v): k for k, v in table.items()}
    for code, outcome in spec.outcomes.items():
        spec.code_of_kind.setdefault(outcome["kind"], code)
        status = outcome.get("status")
        if isinstance(status, Mapping) and status.get("table") and status["table"] not in tables:
            raise SpecError(source, f"$.outcomes['{code}'].status.table", f"no table {status['table']!r}")
    transport = spec.transport
    if spec.encoding == "soap11":
        for key in ("namespace", "request_element", "response_element"):
            if key not in transport:
                raise SpecError(source, "$.transport", f"a soap11 spec names transport.{key}")
    for key in ("key", "token"):
        credential = spec.auth.get(key)
        if credential is not None and credential not in spec.credentials:
            raise SpecError(source, f"$.auth.{key}", f"no credential {credential!r} under credentials")
    uses_code = any(isinstance(v, Mapping) and v.get("operation_code") for v in spec.common_request.values())
    for op_name, op in data["operations"].items():
        where = f"$.operations.{op_name}"
        lacking = [k for k in OUTCOMES_OF.get(op_name, ()) if k not in spec.code_of_kind]
        if lacking:
            raise SpecError(source, where, f"{op_name} can end in {', '.join(lacking)}: give each a result code "
                                           "under outcomes")
        path = op.get("path", transport.get("path"))
        if path is None:
            raise SpecError(source, where, "no path (give operations.<op>.path or transport.path)")
        if uses_code and "code" not in op:
            raise SpecError(source, where, "the requests carry an operation code: give operations.<op>.code")
        _check_maps(spec, source, where, {**spec.common_request, **op.get("request", {})}, op.get("response", {}),
                    op_name)
        spec.operations[op_name] = OperationSpec(
            name=op_name, method=op.get("method", transport.get("method", "POST")), path=path, code=op.get("code"),
            success_status=op.get("success_status", 200), request={**spec.common_request, **op.get("request", {})},
            response=op.get("response", {}), check=op.get("check"))
    return spec


def _check_maps(spec: DialectSpec, source: str, where: str, request: Mapping[str, Any],
                response: Mapping[str, Any], op: str) -> None:
    request_schema = schemas.load(OPERATIONS[op].request_schema)
    _check_request_map(spec, source, f"{where}.request", request, request_schema, OPERATIONS[op].request_schema)
    answer_schema = schemas.load(OPERATIONS[op].response_schema)
    required = set(answer_schema.get("required", ())) - FRAMEWORK_FIELDS.get(op, set())
    missing = sorted(required - set(response))
    if missing:
        raise SpecError(source, f"{where}.response", f"maps no wire value to the contract's {', '.join(missing)}")
    alternatives = [set(a.get("required", ())) for a in answer_schema.get("anyOf", ())]
    if alternatives and not any(names <= set(response) for names in alternatives):  # the credential's two names
        first = sorted(alternatives[0] - set(response))
        raise SpecError(source, f"{where}.response", f"maps no wire value to the contract's {', '.join(first)}")
    for name, rule in response.items():
        if name not in answer_schema["properties"]:
            raise SpecError(source, f"{where}.response.{name}",
                            f"not a field of the contract's {OPERATIONS[op].response_schema} answer")
        _check_answer_rule(spec, source, f"{where}.response.{name}", rule)
        if isinstance(rule, Mapping) and "each" in rule:
            entry = field_schema(answer_schema, name)
            entry = _resolve(entry.get("items")) if entry is not None else None
            if entry is None or "properties" not in entry:
                raise SpecError(source, f"{where}.response.{name}.each", f"{name} is not a list of objects")
            unknown = sorted(set(rule["each"]) - set(entry["properties"]))
            if unknown:
                raise SpecError(source, f"{where}.response.{name}.each",
                                f"{', '.join(unknown)}: not a field of an entry of {name}")
            lacking = sorted(set(entry.get("required", ())) - set(rule["each"]))
            if lacking:
                raise SpecError(source, f"{where}.response.{name}.each",
                                f"maps no wire value to {', '.join(lacking)} of an entry of {name}")
            for sub, sub_rule in rule["each"].items():
                _check_answer_rule(spec, source, f"{where}.response.{name}.each.{sub}", sub_rule)


def _check_answer_rule(spec: DialectSpec, source: str, where: str, rule: Any) -> None:
    for sub in (rule, *(rule.get(k) for k in ("code", "name") if isinstance(rule, Mapping))):
        if isinstance(sub, Mapping) and sub.get("table") and sub["table"] not in spec.tables:
            raise SpecError(source, where, f"no table {sub['table']!r}")


def _check_request_map(spec: DialectSpec, source: str, where: str, request: Mapping[str, Any],
                       schema: Mapping[str, Any], schema_name: str) -> None:
    for wire, rule in request.items():
        if isinstance(rule, str):
            rule = {"field": rule}
        if rule.get("table") and rule["table"] not in spec.tables:
            raise SpecError(source, f"{where}['{wire}']", f"no table {rule['table']!r}")
        if rule.get("credential") and rule["credential"] not in spec.credentials:
            raise SpecError(source, f"{where}['{wire}']", f"no credential {rule['credential']!r}")
        name = rule.get("field")
        if name is None:
            continue
        target = field_schema(schema, name)
        if target is None:
            raise SpecError(source, f"{where}['{wire}']",
                            f"{name!r} is not a field of the contract's {schema_name} request")
        if "each" in rule:
            entry = _resolve(target.get("items"))
            if target.get("type") != "array" or entry is None:
                raise SpecError(source, f"{where}['{wire}'].each", f"{name!r} is not a list of the request")
            _check_request_map(spec, source, f"{where}['{wire}'].each", rule["each"], entry, f"{schema_name} {name}")


def load_spec(path: str | Path) -> DialectSpec:
    """Read a spec file (``.yaml``/``.yml`` or ``.json``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SpecError(str(path), "$", f"cannot be read: {err.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as err:  # YAMLError, JSONDecodeError
        raise SpecError(str(path), "$", f"is not valid {path.suffix[1:].upper()}: {type(err).__name__}") from None
    return parse_spec(data, str(path))
