"""Generate the reference docs from the contract itself.

    python -m essc.tooling.docs > docs/hooks.md                 # from core/hookspecs.py
    python -m essc.tooling.docs --schemas > docs/schemas.md     # from schemas/*.schema.json

Tests fail when a committed file differs from what this prints (tests/core/test_hooks.py,
tests/contributor/test_docs.py), so the references can never drift from the contract.
"""
from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from essc.core import hookspecs


def hooks() -> list:
    return [f for name, f in sorted(vars(hookspecs).items())
            if name.startswith("essc_") and callable(f) and hasattr(f, "essc_spec")]


def parameters(func) -> list[str]:
    """The argument names of a hook specification, in order."""
    return list(inspect.signature(func).parameters)


def signature(func) -> str:
    return f"{func.__name__}({', '.join(parameters(func))})"


def hook_reference() -> str:
    lines = ["# Hook reference", "",
             "Generated from `core/hookspecs.py` by `python -m essc.tooling.docs`; do not edit by hand.", "",
             "Implement hooks in your plugin package's `__init__.py` with the `essc.core.hookimpl` marker.", ""]
    for func in hooks():
        lines += [f"## {signature(func)}", "", inspect.cleandoc(func.__doc__ or "UNDOCUMENTED"), ""]
    return "\n".join(lines)


# -- schemas -----------------------------------------------------------------------------------
COMMON = "common"


@dataclass(frozen=True)
class PropertyDoc:
    """One documented property of a contract schema (a ``$defs`` entry for ``common``)."""

    schema: str
    path: str  #: dotted path, ``[]`` for array items: ``cities[].code``
    pointer: str  #: JSON pointer of the property's subschema
    node: Any  #: the subschema as written
    required: bool | None  #: ``None`` for ``$defs`` entries

    @property
    def description(self) -> str | None:
        return description_of(self.node)


def _ref_target(node: Any) -> tuple[str, dict] | None:
    """(definition name, definition) of a ``$ref`` into common.schema.json's ``$defs``."""
    from essc import schemas

    ref = node.get("$ref") if isinstance(node, dict) else None
    if not ref or "#/$defs/" not in ref:
        return None
    base, _, name = ref.partition("#/$defs/")
    doc = base.rsplit("/", 1)[-1].removesuffix(".schema.json") or COMMON
    if doc not in schemas.names():
        return None
    target = schemas.load(doc).get("$defs", {}).get(name)
    return (name, target) if isinstance(target, dict) else None


def _through_ref(node: Any) -> tuple[str | None, dict]:
    """The node with a ``$ref`` (direct, or the only ``allOf`` member) laid under it."""
    if not isinstance(node, dict):
        return None, {}
    ref_node = node
    if "$ref" not in node and len(node.get("allOf", ())) == 1:
        ref_node = node["allOf"][0]
    found = _ref_target(ref_node)
    if found is None:
        return None, node
    name, target = found
    rest = {k: v for k, v in node.items() if k != "$ref" and not (ref_node is not node and k == "allOf")}
    return name, {**target, **rest}


def description_of(node: Any) -> str | None:
    """The node's own description, else that of the definition its ``$ref`` names."""
    if not isinstance(node, dict):
        return None
    if node.get("description"):
        return node["description"]
    return _through_ref(node)[1].get("description") or None


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def iter_properties(name: str, schema: dict) -> Iterator[PropertyDoc]:
    """Every property of a schema, nested ones (object properties, array items) included;
    for ``common`` every ``$defs`` entry. ``$ref`` targets are not entered (they are
    documented where they live)."""
    if name == COMMON:
        for key, sub in schema.get("$defs", {}).items():
            yield PropertyDoc(name, key, f"/$defs/{_escape(key)}", sub, None)
        return
    yield from _walk(name, schema, "", "")


def _walk(name: str, node: Any, path: str, pointer: str) -> Iterator[PropertyDoc]:
    if not isinstance(node, dict):
        return
    required = set(node.get("required", ()))
    for key, sub in node.get("properties", {}).items():
        sub_path, sub_ptr = f"{path}.{key}" if path else key, f"{pointer}/properties/{_escape(key)}"
        yield PropertyDoc(name, sub_path, sub_ptr, sub, key in required)
        yield from _walk(name, sub, sub_path, sub_ptr)
    if isinstance(node.get("items"), dict):
        yield from _walk(name, node["items"], f"{path}[]", f"{pointer}/items")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(name, node["additionalProperties"], f"{path}.*", f"{pointer}/additionalProperties")


def _code(text: Any) -> str:
    """Inline code for a markdown table cell (pipes escaped)."""
    text = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return "`" + text.replace("|", "\\|") + "`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _type_text(node: dict) -> str:
    ref, node = _through_ref(node)
    if ref is not None:
        return f"[{ref}](#{COMMON})"
    t = node.get("type")
    if t is None:
        values = node["enum"] if "enum" in node else [node["const"]] if "const" in node else None
        if not values:
            return "any"
        return " or ".join(dict.fromkeys(_json_type(v) for v in values))
    text = " or ".join([t] if isinstance(t, str) else t)
    if t == "array" and isinstance(node.get("items"), dict):
        text += f" of {_type_text(node['items'])}"
    elif t == "object" and isinstance(node.get("additionalProperties"), dict):
        text += f" of {_type_text(node['additionalProperties'])}"
    return text


def _rules(node: dict) -> list[str]:
    node = _through_ref(node)[1]
    out = []
    if "enum" in node:
        out.append("one of " + ", ".join(_code(v) for v in node["enum"]))
    if "const" in node:
        out.append(f"always {_code(node['const'])}")
    if "pattern" in node:
        out.append(f"pattern {_code(node['pattern'])}")
    if "format" in node:
        out.append(f"format {node['format']}")
    for kw, text in (("minLength", "length ≥ {}"), ("maxLength", "length ≤ {}"), ("minimum", "≥ {}"),
                     ("exclusiveMinimum", "> {}"), ("maximum", "≤ {}"), ("exclusiveMaximum", "< {}"),
                     ("minItems", "at least {} item(s)"), ("maxItems", "at most {} item(s)")):
        if kw in node:
            out.append(text.format(node[kw]))
    if node.get("uniqueItems"):
        out.append("unique items")
    contains = [m["contains"]["const"] for m in node.get("allOf", ())
                if isinstance(m, dict) and isinstance(m.get("contains"), dict) and "const" in m["contains"]]
    if contains:
        out.append("must contain " + ", ".join(_code(c) for c in contains))
    if node.get("additionalProperties") is False and "properties" in node:
        out.append("no other properties")
    for kw in ("items", "additionalProperties"):
        sub = node.get(kw)
        if isinstance(sub, dict) and "properties" not in sub:
            inner = _rules(sub)
            label = "items" if kw == "items" else "values"
            out += [f"{label}: {r}" for r in inner if r]
    return out


def _schema_section(name: str, schema: dict, operations: dict[str, tuple[str, str]]) -> list[str]:
    lines = [f"## {name}", "", f"**{schema.get('title', name)}**", ""]
    facts = [f"File `schemas/{name}.schema.json`."]
    if name in operations:
        facts.append(operations[name][0])
    if schema.get("description"):
        facts.append(schema["description"])
    if schema.get("additionalProperties") is False:
        facts.append("No properties other than these are allowed.")
    lines += [" ".join(facts), ""]
    if name == COMMON:
        lines += ["| definition | type | rules | description |", "|---|---|---|---|"]
        for p in iter_properties(name, schema):
            lines.append(f"| `{p.path}` | {_type_text(p.node)} | {'; '.join(_rules(p.node)) or ''} "
                         f"| {_cell(p.description or 'UNDOCUMENTED')} |")
    else:
        lines += ["| property | required | type | rules | description |", "|---|---|---|---|---|"]
        for p in iter_properties(name, schema):
            lines.append(f"| `{p.path}` | {'yes' if p.required else 'no'} | {_type_text(p.node)} "
                         f"| {'; '.join(_rules(p.node)) or ''} | {_cell(p.description or 'UNDOCUMENTED')} |")
    lines.append("")
    return lines


def schema_reference() -> str:
    """``docs/schemas.md``: every property of every contract schema with its type, rules
    (pattern, enum, bounds) and description."""
    from essc import schemas
    from essc.core import CONTRACT_VERSION
    from essc.core.adapter import OPERATIONS

    used: dict[str, tuple[str, str]] = {}
    for op in OPERATIONS.values():
        used[op.request_schema] = (f"Request of `{op.name}`.", op.name)
        used[op.response_schema] = (f"Response of `{op.name}`.", op.name)
    used["error"] = ("The error object of every typed failure (`EsscError.to_dict()`).", "")
    used["manifest"] = ("Validates every plugin's `manifest.json`.", "")
    names = schemas.names()
    lines = [
        "# Schema reference", "",
        "Generated from `schemas/*.schema.json` by `python -m essc.tooling.docs --schemas`; do not edit by hand.", "",
        f"Contract version {CONTRACT_VERSION} (`essc.core.CONTRACT_VERSION`). Every schema is JSON Schema draft "
        "2020-12 with the `$id` `https://essc-adapters.dev/schemas/<name>.schema.json`; shared definitions live in "
        "[common](#common) and a linked type names one of them (its rules apply). Paths are dotted, `[]` stands "
        "for the items of an array and `*` for the values of a map. How to change a schema without breaking "
        "plugins: [plugin-guide.md](plugin-guide.md#contract-versioning-and-release).", "",
        "| operation | request | response | summary |", "|---|---|---|---|",
    ]
    for op in OPERATIONS.values():
        lines.append(f"| `{op.name}` | [{op.request_schema}](#{op.request_schema}) "
                     f"| [{op.response_schema}](#{op.response_schema}) | {op.summary} |")
    lines.append("")
    for name in names:
        lines += _schema_section(name, schemas.load(name), used)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args not in ([], ["--schemas"]):
        print("usage: python -m essc.tooling.docs [--schemas]", file=sys.stderr)
        return 2
    print(schema_reference() if args else hook_reference(), end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
