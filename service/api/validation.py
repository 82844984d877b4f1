"""Request validation against schemas/openapi.json (JSON Schema draft 2020-12).

The OpenAPI document is the one source of truth: the request schemas are taken from its
``components.schemas``; their relative ``$ref`` s (``common.schema.json#/$defs/idNumber``)
resolve to the contract's schema files, offline. Problems name the JSON path and the
rule, never the offending value (it may be an ID number or a name).

:func:`json_body` refuses, before any schema and for every field and key of a body,
what JSON Schema cannot say: duplicate keys (``duplicate-key``), lone surrogates
(``surrogate``) and control or other unprintable characters (``control-character``:
anything :meth:`str.isprintable` refuses: C0/C1 controls, DEL, line breaks, format and
private-use characters), and the non-JSON constants ``NaN``/``Infinity`` (``json``).

:func:`served_openapi_document` is the document as ``GET /v1/openapi.json`` serves it:
self-contained, the contract schemas it refers to copied under ``components/schemas``
(``contract_common``...) and every ``$ref`` pointing inside the document.
"""
from __future__ import annotations

import copy
import json
import re
from functools import cache, lru_cache
from typing import Any, cast
from urllib.parse import urldefrag, urljoin

import jsonschema
from flask import Request
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from essc import schemas
from essc.core.masking import scrub

from .errors import BadRequest

OPENAPI_URI = schemas.BASE_URI + "openapi.json"


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    with (schemas.SCHEMA_DIR / "openapi.json").open(encoding="utf-8") as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def schema_registry() -> Registry:
    """The OpenAPI document and every contract schema, under their canonical URIs."""
    resources = [(schemas.BASE_URI + f"{n}.schema.json", Resource.from_contents(schemas.load(n)))
                 for n in schemas.names()]
    resources.append((OPENAPI_URI, Resource.from_contents(openapi_document(), default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@cache
def component_validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator for ``#/components/schemas/<name>`` of the OpenAPI document."""
    if name not in openapi_document()["components"]["schemas"]:
        raise KeyError(f"schemas/openapi.json has no component {name!r}")
    schema = {"$ref": f"{OPENAPI_URI}#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=schema_registry())


CONTRACT_PREFIX = "contract_"  # components/schemas/contract_<name>: a copy of <name>.schema.json


def _contract_name(uri: str) -> str:
    """``common`` for ``https://essc-adapters.dev/schemas/common.schema.json``."""
    name = uri[len(schemas.BASE_URI):-len(".schema.json")] if uri.startswith(schemas.BASE_URI) \
        and uri.endswith(".schema.json") else ""
    if name not in schemas.names():
        raise ValueError(f"schemas/openapi.json refers to {uri!r}, which is no contract schema")
    return name


def _pointer(document: object, fragment: str) -> object:
    if fragment and not fragment.startswith("/"):
        raise ValueError(f"only JSON-pointer $refs can be bundled, not #{fragment}")
    node: Any = document  # JSON: a missing key or index raises
    for token in filter(None, fragment.split("/")):
        token = token.replace("~1", "/").replace("~0", "~")
        node = node[int(token)] if isinstance(node, list) else node[token]
    return node


@lru_cache(maxsize=1)
def served_openapi_document() -> dict:
    """The OpenAPI document made self-contained (computed once; the app primes it at start-up).

    Every contract schema reached through a ``$ref`` (transitively) is copied, without its
    ``$id``/``$schema``, to ``components/schemas/contract_<name>``, and every ``$ref`` is
    rewritten to ``#/components/schemas/...``: a client or a fuzzer loads the document
    offline. schemas/openapi.json stays the hand-edited source (the request validators
    read it with its relative refs)."""
    doc = copy.deepcopy(openapi_document())
    components = doc["components"]["schemas"]
    pending: list[tuple[object, str]] = [(doc, OPENAPI_URI)]  # (node, base URI of its $refs)
    copied: dict[str, dict] = {}

    def rewrite(node: object, base: str) -> None:
        if isinstance(node, list):
            for item in node:
                rewrite(item, base)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            target, fragment = urldefrag(urljoin(base, ref))
            if target != OPENAPI_URI:
                name = _contract_name(target)
                if name not in copied:
                    if CONTRACT_PREFIX + name in components:
                        raise ValueError(f"schemas/openapi.json already has a component {CONTRACT_PREFIX + name}")
                    contract = copied[name] = copy.deepcopy(schemas.load(name))
                    contract.pop("$id", None)
                    contract.pop("$schema", None)
                    pending.append((contract, target))
                node["$ref"] = f"#/components/schemas/{CONTRACT_PREFIX}{name}{fragment}"
        for value in node.values():
            rewrite(value, base)

    while pending:
        rewrite(*pending.pop())
    components.update((CONTRACT_PREFIX + name, copied[name]) for name in sorted(copied))
    for ref in _refs(doc):  # every $ref now points inside the document, and resolves
        if not ref.startswith("#"):
            raise ValueError(f"unbundled $ref {ref!r}")
        _pointer(doc, ref[1:])
    return doc


def _refs(node: object):
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _describe(error: jsonschema.ValidationError) -> str:
    # an error from iter_errors has its rule's value, instance and schema (Unset only when built by hand)
    v = error.validator
    rv, instance, schema = cast(Any, error.validator_value), cast(Any, error.instance), cast(Any, error.schema)
    if v == "required":
        missing = [k for k in rv if isinstance(instance, dict) and k not in instance]
        return "missing required field(s): " + ", ".join(missing)
    if v == "additionalProperties":
        allowed = set(schema.get("properties", {}))
        extra = sorted(str(k)[:40] for k in instance if k not in allowed)
        return scrub("unknown field(s): " + ", ".join(extra) + "; allowed: " + ", ".join(sorted(allowed)))
    if v == "oneOf" and error.json_path.endswith("verification"):
        return "give face_token and exactly one of sms_code, password"
    if v == "type":
        return f"must be of type {rv if isinstance(rv, str) else ' or '.join(rv)}"
    if v == "const":
        return f"must be {json.dumps(rv)}"
    if v == "pattern":
        return f"does not have the required format ({rv})"
    if v in ("minLength", "maxLength"):
        return f"length breaks {v} {rv}"
    return f"breaks rule '{v}'"


def _all_of_ref_siblings(node: object) -> object:
    """``node`` with every ``$ref`` that has sibling keywords made ``allOf: [$ref, siblings]``:
    JSON Schema 2020-12 applies such siblings, draft 7 (fastjsonschema's) ignores them."""
    if isinstance(node, list):
        return [_all_of_ref_siblings(v) for v in node]
    if not isinstance(node, dict):
        return node
    out = {k: _all_of_ref_siblings(v) for k, v in node.items()}
    rules = {k: v for k, v in out.items() if k not in ("$ref", "description", "title")}
    if "$ref" in out and rules:
        return {"allOf": [{"$ref": out["$ref"]}, rules]}
    return out


@cache
def fast_component(name: str):
    """``#/components/schemas/<name>`` compiled with fastjsonschema from the served (self-contained)
    document: a predicate, ``True`` when valid; None when the schema cannot be compiled. The hot
    path's check (a few microseconds); :func:`component_validator` names the problem."""
    import fastjsonschema

    components = _all_of_ref_siblings(served_openapi_document()["components"])
    try:
        check = fastjsonschema.compile({"components": components,
                                        "allOf": [{"$ref": f"#/components/schemas/{name}"}]},
                                       use_default=False, use_formats=False)
    except Exception:  # fastjsonschema cannot compile it: the precise validator alone
        return None

    def valid(data: object) -> bool:
        try:
            check(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return valid


def validate(name: str, data: object) -> None:
    """Raise INVALID_INPUT (400) naming the first problem's JSON path and rule. A body the compiled
    validator accepts is valid at once; any other is judged by jsonschema (the reference)."""
    fast = fast_component(name)
    if fast is not None and fast(data):
        return
    errors = sorted(component_validator(name).iter_errors(data),
                    key=lambda e: (-len(e.absolute_path), e.json_path, str(e.validator)))
    if errors:
        first = errors[0]
        raise BadRequest(f"{first.json_path}: {_describe(first)}", field=first.json_path, rule=str(first.validator))


def validated_body(request: Request, component: str) -> dict[str, Any]:
    """The request's JSON body (:func:`json_body`) once it is valid against
    ``#/components/schemas/<component>`` (:func:`validate`), which describes a JSON object."""
    data = json_body(request)
    validate(component, data)
    return cast(dict[str, Any], data)


def json_body(request: Request) -> object:
    """The parsed JSON body; 415 for another media type, 400 for invalid JSON, 413 if too large.

    400 INVALID_INPUT also for a duplicate key, a lone surrogate or an unprintable
    character in any key or string of the body, naming its JSON path and the rule
    (``duplicate-key``, ``surrogate``, ``control-character``) but never the value."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise BadRequest("Content-Type must be application/json", field="Content-Type", rule="media-type",
                         http_status=415)
    raw = request.get_data(cache=True)  # raises 413 above MAX_CONTENT_LENGTH
    duplicates: dict[int, list[str]] = {}  # id(object) -> its keys seen more than once
    replaced: list[object] = []  # values of duplicate keys stay alive: no id is reused while parsing

    def pairs(items: list[tuple[str, object]]) -> dict:
        obj: dict = {}
        for key, value in items:
            if key in obj:
                duplicates.setdefault(id(obj), []).append(key)
                replaced.append(obj[key])
            obj[key] = value
        return obj

    try:
        data = json.loads(raw, object_pairs_hook=pairs, parse_constant=_no_constant)
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply", field="$", rule="json") from None
    except _NotJson:
        raise BadRequest("the body holds NaN or Infinity, which are not JSON", field="$", rule="json") from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError; the message holds no body text
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise BadRequest(f"the body is not valid UTF-8 JSON{where}", field="$", rule="json") from None
    _check_strings(data, "$", duplicates)
    return data


class _NotJson(ValueError):
    pass


def _no_constant(name: str) -> object:
    raise _NotJson(name)


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _member(path: str, key: str) -> str:
    """The JSON path of member ``key`` of ``path``: ``$.name``; a key that is not a plain
    identifier is not echoed (it may be personal data): ``$.*``."""
    return f"{path}.{key}" if _PLAIN_KEY.fullmatch(key) else f"{path}.*"


def _string_problem(value: str) -> str | None:
    if value.isprintable():
        return None
    return "surrogate" if _SURROGATE.search(value) else "control-character"


_WHAT = {"surrogate": "a lone surrogate (not a Unicode character)",
         "control-character": "a control or other unprintable character"}


def _check_strings(node: object, path: str, duplicates: dict[int, list[str]]) -> None:
    """Depth-first, in document order: the first duplicate key, bad key or bad string."""
    stack: list[tuple[object, str]] = [(node, path)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            rule = _string_problem(node)
            if rule:
                raise BadRequest(f"{path} holds {_WHAT[rule]}", field=path, rule=rule)
        elif isinstance(node, dict):
            for key in node:
                rule = _string_problem(key)
                if rule:
                    raise BadRequest(f"a key of {path} holds {_WHAT[rule]}", field=path, rule=rule)
            for key in duplicates.get(id(node), ()):
                raise BadRequest(f"{_member(path, key)} appears more than once", field=_member(path, key),
                                 rule="duplicate-key")
            stack.extend((value, _member(path, key)) for key, value in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in reversed(list(enumerate(node))))
