"""Schema and hook comparison: what changed between two contract versions, and is it breaking.

See :mod:`essc.tooling.compat` for the rules."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

KINDS: dict[str, str] = {
    "schema-removed": "a contract schema is gone",
    "definition-removed": "a $defs entry is gone",
    "property-removed": "a property is gone",
    "property-required": "a property is newly required",
    "type-narrowed": "the type list shrank, or a type appeared where any was allowed",
    "enum-narrowed": "the enum lost values, or an enum appeared",
    "const-added": "a const appeared",
    "const-changed": "the const value changed",
    "pattern-changed": "a pattern appeared or changed",
    "format-changed": "a format appeared or changed",
    "bound-tightened": "a min/max length, value, item or property count appeared or tightened",
    "additional-properties-closed": "additionalProperties (unevaluatedProperties) turned false",
    "constraint-tightened": "another constraint appeared or tightened (allOf, anyOf, uniqueItems, ...)",
    "ref-changed": "a $ref points elsewhere and cannot be resolved",
    "hook-removed": "a hook specification is gone",
    "hook-argument-removed": "a hook argument is gone",
    "hook-argument-renamed": "a hook argument has another name",
    "operation-removed": "an adapter operation is gone",
    "operation-schema-changed": "an operation's request or response schema is another schema",
}

_SCHEMA_SUFFIX = ".schema.json"
HOOKSPECS_FILE = "hookspecs.json"
_HOOKSPECS_DOC = "hookspecs"  # the "schema" named by hook and operation changes
_LOWER = ("minLength", "minimum", "exclusiveMinimum", "minItems", "minProperties", "minContains")
_UPPER = ("maxLength", "maximum", "exclusiveMaximum", "maxItems", "maxProperties", "maxContains")
_OTHER = ("multipleOf", "contains", "not", "if", "then", "else", "propertyNames", "dependentRequired",
          "dependentSchemas")
_MAX_DEPTH = 64


@dataclass(frozen=True, order=True)
class Change:
    """One breaking change: in which schema, where (JSON pointer, RFC 6901), what kind."""

    schema: str  #: schema name (``card_record``), or ``hookspecs`` for hooks and operations
    pointer: str  #: location in the schema (in hookspecs.json for hooks): the old one for removals
    kind: str  #: one of :data:`KINDS`
    detail: str  #: one readable line

    def __str__(self) -> str:
        return f"{self.schema}#{self.pointer}: {self.kind}: {self.detail}"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def _js(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _key(value: Any) -> Any:
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    return ("json", json.dumps(value, sort_keys=True, ensure_ascii=False))


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return "integer"
    return {float: "number", str: "string", list: "array", dict: "object"}.get(type(value), "null")


def _types(node: Mapping[str, Any]) -> set[str] | None:
    """The types a node allows: its ``type``, else those of its ``enum``/``const`` values,
    else ``None`` (any)."""
    t = node.get("type")
    if t is not None:
        return {t} if isinstance(t, str) else set(t)
    if "enum" in node:
        return {_value_type(v) for v in node["enum"]}
    if "const" in node:
        return {_value_type(node["const"])}
    return None


def _looser_or_same(keyword: str, old: Any, new: Any) -> bool:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (old, new))
    if not numbers:
        return _key(old) == _key(new)
    return new <= old if keyword in _LOWER else new >= old


def pattern_widened(old: Mapping[str, Any], new_pattern: str, samples: int = 400) -> bool:
    """Does ``new_pattern`` accept every string ``old`` accepted? Decided exactly for an old enum
    (each value must match), by sampling for an old pattern (``samples`` strings generated from
    it by hypothesis, derandomized: the same answer on every run). A regex inclusion cannot be
    decided in general, so without hypothesis installed a changed pattern stays breaking."""
    import re

    try:
        compiled = re.compile(new_pattern)
    except re.error:
        return False
    if "enum" in old and "pattern" not in old:
        return all(isinstance(v, str) and compiled.search(v) is not None for v in old["enum"])
    if "pattern" not in old:
        return False
    try:
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import strategies as st
    except ImportError:
        return False
    escaped: list[str] = []

    @settings(max_examples=samples, database=None, derandomize=True, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(st.from_regex(old["pattern"], fullmatch=True))
    def still_matches(value: str) -> None:
        if compiled.search(value) is None:
            escaped.append(value)
            raise AssertionError("the old pattern allowed a value the new one refuses")

    try:
        still_matches()
    except AssertionError:
        return False
    except Exception:  # a pattern hypothesis cannot generate from: stay conservative
        return False
    return not escaped


class _Comparison:
    """Walks an old and a new schema side by side, collecting breaking changes."""

    def __init__(self, old_set: Mapping[str, Any], new_set: Mapping[str, Any]) -> None:
        self.old_set, self.new_set = old_set, new_set
        self.changes: list[Change] = []
        self.schema = ""

    def add(self, pointer: str, kind: str, detail: str) -> None:
        self.changes.append(Change(self.schema, pointer, kind, detail))

    # -- $ref --------------------------------------------------------------------------
    @staticmethod
    def resolve(ref: str, doc: str, schemas: Mapping[str, Any]) -> tuple[str, Any] | None:
        """(document name, target) of a ``$ref`` inside the schema set, or ``None``."""
        base, _, fragment = ref.partition("#")
        if base:
            filename = base.rsplit("/", 1)[-1]
            if not filename.endswith(_SCHEMA_SUFFIX):
                return None
            doc = filename[: -len(_SCHEMA_SUFFIX)]
        node = schemas.get(doc)
        if node is None:
            return None
        if fragment:
            if not fragment.startswith("/"):
                return None  # plain-name anchors are not used by the contract
            for token in fragment[1:].split("/"):
                token = _unescape(token)
                if isinstance(node, list) and token.isdigit() and int(token) < len(node):
                    node = node[int(token)]
                elif isinstance(node, dict) and token in node:
                    node = node[token]
                else:
                    return None
        return doc, node

    def deref(self, node: dict, doc: str, schemas: Mapping[str, Any]) -> tuple[str, Any] | None:
        """The node with its ``$ref`` replaced by the target (siblings laid over it)."""
        found = self.resolve(node["$ref"], doc, schemas)
        if found is None:
            return None
        target_doc, target = found
        if target is True:
            target = {}
        if not isinstance(target, dict):
            return target_doc, target
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return target_doc, {**target, **siblings}

    # -- the walk ----------------------------------------------------------------------
    def node(self, old: Any, new: Any, ptr: str, odoc: str, ndoc: str, depth: int = 0) -> None:
        if depth > _MAX_DEPTH:
            return
        if old is True:
            old = {}
        if new is True:
            new = {}
        if old is False:
            return  # nothing was valid: nothing can break
        if new is False:
            self.add(ptr, "type-narrowed", "the schema became false: nothing is valid any more")
            return
        if not isinstance(old, dict) or not isinstance(new, dict):
            return
        oref, nref = old.get("$ref"), new.get("$ref")
        if oref != nref:
            o = self.deref(old, odoc, self.old_set) if oref else (odoc, old)
            n = self.deref(new, ndoc, self.new_set) if nref else (ndoc, new)
            if o is None or n is None:
                self.add(f"{ptr}/$ref", "ref-changed",
                         f"$ref {_js(oref)} became {_js(nref)} and cannot be resolved to compare")
                return
            self.node(o[1], n[1], ptr, o[0], n[0], depth + 1)
            return
        self.keywords(old, new, ptr)
        self.objects(old, new, ptr, odoc, ndoc, depth)
        self.subschemas(old, new, ptr, odoc, ndoc, depth)

    def keywords(self, old: dict, new: dict, ptr: str) -> None:
        old_t, new_t = _types(old), _types(new)
        if "type" in new:
            if old_t is None:
                self.add(f"{ptr}/type", "type-narrowed", f"type {_js(new.get('type'))} where any type was allowed")
            else:
                lost = sorted(t for t in old_t if t not in new_t and not (t == "integer" and "number" in new_t))
                if lost:
                    self.add(f"{ptr}/type", "type-narrowed", f"type lost {', '.join(lost)} "
                             f"({_js(old.get('type'))} -> {_js(new.get('type'))})")
        if "enum" in new:
            new_keys = {_key(v) for v in new["enum"]}
            if "enum" in old:
                lost = [v for v in old["enum"] if _key(v) not in new_keys]
                if lost:
                    self.add(f"{ptr}/enum", "enum-narrowed", f"enum lost {', '.join(map(_js, lost))}")
            elif "const" not in old or _key(old["const"]) not in new_keys:
                self.add(f"{ptr}/enum", "enum-narrowed", f"enum {_js(new['enum'])} where any value was allowed")
        if "const" in new:
            if "const" in old:
                if _key(old["const"]) != _key(new["const"]):
                    self.add(f"{ptr}/const", "const-changed", f"const {_js(old['const'])} -> {_js(new['const'])}")
            elif not ("enum" in old and [_key(v) for v in old["enum"]] == [_key(new["const"])]):
                self.add(f"{ptr}/const", "const-added", f"const {_js(new['const'])} added")
        for kw, kind in (("pattern", "pattern-changed"), ("format", "format-changed")):
            if kw == "pattern" and kw in new and old.get(kw) != new[kw] and pattern_widened(old, new["pattern"]):
                continue  # every value the old schema allowed still matches: a looser limit
            if kw in new and old.get(kw) != new[kw]:
                what = f"{kw} {_js(old[kw])} -> {_js(new[kw])}" if kw in old else f"{kw} {_js(new[kw])} added"
                self.add(f"{ptr}/{kw}", kind, what)
        for kw in _LOWER + _UPPER:
            if kw not in new:
                continue
            if kw not in old:
                self.add(f"{ptr}/{kw}", "bound-tightened", f"{kw} {_js(new[kw])} added")
            elif not _looser_or_same(kw, old[kw], new[kw]):
                self.add(f"{ptr}/{kw}", "bound-tightened", f"{kw} {_js(old[kw])} -> {_js(new[kw])}")
        if new.get("uniqueItems") is True and old.get("uniqueItems") is not True:
            self.add(f"{ptr}/uniqueItems", "constraint-tightened", "uniqueItems turned on")
        for kw in _OTHER:
            if kw in new and (kw not in old or _key(old[kw]) != _key(new[kw])):
                self.add(f"{ptr}/{kw}", "constraint-tightened",
                         f"{kw} {'changed' if kw in old else 'added'}: {_js(new[kw])}")

    def objects(self, old: dict, new: dict, ptr: str, odoc: str, ndoc: str, depth: int) -> None:
        old_props, new_props = old.get("properties", {}), new.get("properties", {})
        for name, sub in old_props.items():
            where = f"{ptr}/properties/{_escape(name)}"
            if name not in new_props:
                self.add(where, "property-removed", f"property {name!r} removed")
            else:
                self.node(sub, new_props[name], where, odoc, ndoc, depth + 1)
        was_required = set(old.get("required", ()))
        for name in new.get("required", ()):
            if name not in was_required:
                self.add(f"{ptr}/properties/{_escape(name)}", "property-required",
                         f"property {name!r} is newly required")
        for kw in ("additionalProperties", "unevaluatedProperties"):
            o, n = old.get(kw, True), new.get(kw, True)
            if n is False and o is not False:
                self.add(f"{ptr}/{kw}", "additional-properties-closed", f"{kw} turned false")
            elif isinstance(o, dict) or isinstance(n, dict):
                self.node(o, n, f"{ptr}/{kw}", odoc, ndoc, depth + 1)
        old_pp, new_pp = old.get("patternProperties", {}), new.get("patternProperties", {})
        for pattern, sub in new_pp.items():
            where = f"{ptr}/patternProperties/{_escape(pattern)}"
            if pattern in old_pp:
                self.node(old_pp[pattern], sub, where, odoc, ndoc, depth + 1)
            else:
                self.add(where, "constraint-tightened", f"patternProperties {pattern!r} added")
        old_defs, new_defs = old.get("$defs", {}), new.get("$defs", {})
        for name, sub in old_defs.items():
            where = f"{ptr}/$defs/{_escape(name)}"
            if name not in new_defs:
                self.add(where, "definition-removed", f"definition {name!r} removed")
            else:
                self.node(sub, new_defs[name], where, odoc, ndoc, depth + 1)

    def subschemas(self, old: dict, new: dict, ptr: str, odoc: str, ndoc: str, depth: int) -> None:
        if "items" in new or "items" in old:
            self.node(old.get("items", True), new.get("items", True), f"{ptr}/items", odoc, ndoc, depth + 1)
        old_prefix, new_prefix = old.get("prefixItems", []), new.get("prefixItems", [])
        for i, sub in enumerate(new_prefix):
            where = f"{ptr}/prefixItems/{i}"
            if i < len(old_prefix):
                self.node(old_prefix[i], sub, where, odoc, ndoc, depth + 1)
            else:
                self.add(where, "constraint-tightened", f"prefixItems[{i}] added")
        old_all, new_all = old.get("allOf", []), new.get("allOf", [])
        for i, sub in enumerate(new_all):
            where = f"{ptr}/allOf/{i}"
            if i < len(old_all):
                self.node(old_all[i], sub, where, odoc, ndoc, depth + 1)
            else:
                self.add(where, "constraint-tightened", f"allOf member {i} added: {_js(sub)}")
        for kw in ("anyOf", "oneOf"):
            if kw not in new:
                continue
            if kw not in old:
                if kw == "anyOf" and _implied(old, new[kw]):
                    continue  # every payload valid before satisfies one alternative: nothing tightened
                self.add(f"{ptr}/{kw}", "constraint-tightened", f"{kw} added")
                continue
            for i, sub in enumerate(old[kw]):
                if i < len(new[kw]):
                    self.node(sub, new[kw][i], f"{ptr}/{kw}/{i}", odoc, ndoc, depth + 1)
                else:
                    self.add(f"{ptr}/{kw}/{i}", "constraint-tightened", f"{kw} alternative {i} removed")


_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples", "deprecated"})


def _implied(old: dict, alternatives: Any) -> bool:
    """Does the ``old`` schema imply one of the ``alternatives`` of an ``anyOf`` that appeared?
    True for an alternative that only requires properties the old schema required (the 1.2
    credential: ``required`` shrank to ``aab301`` and ``anyOf`` asks for the old names or the new)."""
    was_required = set(old.get("required", ()))
    for alternative in alternatives if isinstance(alternatives, list) else ():
        if (isinstance(alternative, dict) and set(alternative) - _ANNOTATIONS == {"required"}
                and set(alternative["required"]) <= was_required):
            return True
    return False


def compare_schemas(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """Breaking changes from schema set ``old`` to ``new`` (schema name -> schema)."""
    walk = _Comparison(old, new)
    for name in sorted(old):
        walk.schema = name
        if name not in new:
            walk.add("", "schema-removed", f"schema {name!r} removed")
            continue
        walk.node(old[name], new[name], "", name, name)
    return sorted(walk.changes)


def compare_hooks(old: Mapping[str, Sequence[str]], new: Mapping[str, Sequence[str]]) -> list[Change]:
    """Breaking changes from hook list ``old`` to ``new`` (hook name -> argument names)."""
    changes = []
    for hook in sorted(old):
        if hook not in new:
            changes.append(Change(_HOOKSPECS_DOC, f"/hooks/{_escape(hook)}", "hook-removed", f"hook {hook} removed"))
            continue
        old_args, new_args = list(old[hook]), list(new[hook])
        added = [a for a in new_args if a not in old_args]
        for i, arg in enumerate(old_args):
            if arg in new_args:
                continue
            where = f"/hooks/{_escape(hook)}/{i}"
            if i < len(new_args) and new_args[i] in added:
                changes.append(Change(_HOOKSPECS_DOC, where, "hook-argument-renamed",
                                      f"{hook}: argument {arg!r} renamed to {new_args[i]!r}"))
            else:
                changes.append(Change(_HOOKSPECS_DOC, where, "hook-argument-removed",
                                      f"{hook}: argument {arg!r} removed"))
    return changes


def compare_operations(old: Mapping[str, Mapping[str, str]], new: Mapping[str, Mapping[str, str]]) -> list[Change]:
    """Breaking changes of the operation table (operation -> {"request": schema, "response": schema})."""
    changes = []
    for op in sorted(old):
        where = f"/operations/{_escape(op)}"
        if op not in new:
            changes.append(Change(_HOOKSPECS_DOC, where, "operation-removed", f"operation {op} removed"))
            continue
        for side in ("request", "response"):
            if old[op].get(side) != new[op].get(side):
                changes.append(Change(_HOOKSPECS_DOC, f"{where}/{side}", "operation-schema-changed",
                                      f"{op}: {side} schema {old[op].get(side)!r} -> {new[op].get(side)!r}"))
    return changes


def compare(old_schemas: Mapping[str, Any], new_schemas: Mapping[str, Any],
            old_hooks: Mapping[str, Sequence[str]] | None = None, new_hooks: Mapping[str, Sequence[str]] | None = None,
            old_operations: Mapping[str, Mapping[str, str]] | None = None,
            new_operations: Mapping[str, Mapping[str, str]] | None = None) -> list[Change]:
    """Every breaking change from the old contract to the new one (pure; sorted).

    Hooks (operations) are compared only when both sides are given."""
    changes = compare_schemas(old_schemas, new_schemas)
    if old_hooks is not None and new_hooks is not None:
        changes += compare_hooks(old_hooks, new_hooks)
    if old_operations is not None and new_operations is not None:
        changes += compare_operations(old_operations, new_operations)
    return changes


# -- contracts on disk -------------------------------------------------------------------------
