"""Request validation against schemas/openapi.json (JSON Schema draft 2020-12).

The OpenAPI document is the one source of truth: the request schemas are taken from its
``components.schemas``; their relative ``$ref`` s (``common.schema.json#/$defs/idNumber``)
resolve to the contract's schema files, offline. Problems name the JSON path and the
rule, never the offending value (it may be an ID number or a name).
"""
from __future__ import annotations

import json
from functools import cache, lru_cache

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


def _describe(error: jsonschema.ValidationError) -> str:
    v, rv = error.validator, error.validator_value
    if v == "required":
        missing = [k for k in rv if isinstance(error.instance, dict) and k not in error.instance]
        return "missing required field(s): " + ", ".join(missing)
    if v == "additionalProperties":
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(k)[:40] for k in error.instance if k not in allowed)
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


def validate(name: str, data: object) -> None:
    """Raise INVALID_INPUT (400) naming the first problem's JSON path and rule."""
    errors = sorted(component_validator(name).iter_errors(data),
                    key=lambda e: (-len(e.absolute_path), e.json_path, str(e.validator)))
    if errors:
        first = errors[0]
        raise BadRequest(f"{first.json_path}: {_describe(first)}", field=first.json_path, rule=str(first.validator))


def json_body(request: Request) -> object:
    """The parsed JSON body; 415 for another media type, 400 for invalid JSON, 413 if too large."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise BadRequest("Content-Type must be application/json", field="Content-Type", rule="media-type",
                         http_status=415)
    raw = request.get_data(cache=True)  # raises 413 above MAX_CONTENT_LENGTH
    try:
        return json.loads(raw)
    except RecursionError:
        raise BadRequest("the JSON body is nested too deeply", field="$", rule="json") from None
    except ValueError as err:  # JSONDecodeError and UnicodeDecodeError; the message holds no body text
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise BadRequest(f"the body is not valid UTF-8 JSON{where}", field="$", rule="json") from None
