"""Breaking changes of the plugin contract between two versions.

The contract is the JSON Schemas of ``schemas/`` (``*.schema.json``; not ``openapi.json``,
which belongs to the activation service), the hook specifications of
``core/hookspecs.py`` and the operation table of ``core/adapter.py``. Every released
version keeps a frozen copy in ``schemas/released/<MAJOR.MINOR>/``: the schemas plus a
``hookspecs.json`` with the hook names and argument lists.

:func:`compare` is pure: give it the old and the new schema sets (name -> schema) and
hook lists (name -> argument names), get the breaking changes back. A change is breaking
when something that was valid (a payload, a plugin, a hook implementation) may no longer be:

* ``schema-removed`` / ``definition-removed``: a schema file or a ``$defs`` entry is gone;
* ``property-removed``: a property is gone from ``properties``;
* ``property-required``: a property is required that was not (new or existing);
* ``type-narrowed``: the ``type`` list lost a type (``number`` -> ``integer`` too), a type
  appeared where there was none, or the schema became ``false``;
* ``enum-narrowed``: the ``enum`` lost values, or an ``enum`` appeared;
* ``const-added`` / ``const-changed``: a ``const`` appeared, or its value changed;
* ``pattern-changed`` / ``format-changed``: a ``pattern`` (``format``) appeared or changed
  (regular expressions cannot be compared, so every change counts);
* ``bound-tightened``: ``minLength``, ``minimum``, ``exclusiveMinimum``, ``minItems``,
  ``minProperties`` appeared or rose; ``maxLength``, ``maximum``, ``exclusiveMaximum``,
  ``maxItems``, ``maxProperties`` appeared or fell;
* ``additional-properties-closed``: ``additionalProperties`` (``unevaluatedProperties``)
  turned ``false``;
* ``constraint-tightened``: any other new constraint: an ``allOf`` member or
  ``patternProperties`` entry added, ``anyOf``/``oneOf`` alternatives removed,
  ``uniqueItems`` turned on, ``multipleOf``, ``contains``, ``not``, ``if``,
  ``propertyNames``, ``dependentRequired``, ``dependentSchemas`` added or changed;
* ``ref-changed``: a ``$ref`` points elsewhere and a side cannot be resolved (when both
  resolve, their targets are compared instead);
* ``hook-removed``, ``hook-argument-removed``, ``hook-argument-renamed``: pluggy passes
  arguments by name, so an implementation asking for the old name would fail;
* ``operation-removed``, ``operation-schema-changed``: an adapter operation is gone, or
  its request/response schema is another one.

Allowed: new optional properties, new schemas, new ``$defs``, new hooks, new hook
arguments, widened enums and types, removed or loosened constraints, and every
annotation (``title``, ``description``, ``examples``, ``$comment``).

References (``$ref``) are followed within the schema set (``common.schema.json#/$defs/...`` or
``#/...``) only when a ``$ref`` changed; an unchanged ``$ref`` needs no following because
its target is compared where it lives (``common`` is compared as a schema of its own).

    python -m essc.core.compat                 # current contract vs the newest release
    python -m essc.core.compat --against 1.0   # ... vs a given release
    python -m essc.core.compat --old DIR --new DIR [--json]
    python -m essc.core.compat --freeze        # at release: write schemas/released/<CONTRACT_VERSION>/
    python -m essc.core.compat --freeze --force  # re-copy a release whose schemas only gained annotations

It prints the breaking changes and exits 1 when they are not allowed: a breaking change
needs a new contract major (``essc.core.CONTRACT_VERSION``) and a ``CHANGELOG.md`` entry
for that major that mentions the migration (:func:`release_problem`).
"""
from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "KINDS", "Change", "Contract", "compare", "compare_schemas", "compare_hooks", "compare_operations",
    "compare_contracts", "current_contract", "load_contract", "released_versions", "load_release",
    "latest_release", "hookspecs_document", "freeze", "same_but_annotations", "release_problem",
    "changelog_entries", "RELEASED_DIR", "HOOKSPECS_FILE", "CHANGELOG",
]

#: Every kind of breaking change, with what it means (docs/plugin-guide.md lists them).
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
                self.add(f"{ptr}/{kw}", "constraint-tightened", f"{kw} added")
                continue
            for i, sub in enumerate(old[kw]):
                if i < len(new[kw]):
                    self.node(sub, new[kw][i], f"{ptr}/{kw}/{i}", odoc, ndoc, depth + 1)
                else:
                    self.add(f"{ptr}/{kw}/{i}", "constraint-tightened", f"{kw} alternative {i} removed")


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
def _schema_dir() -> Path:
    from essc import schemas

    return schemas.SCHEMA_DIR


RELEASED_DIR = _schema_dir() / "released"
#: The changelog at the repository root (absent from an installed wheel: then read as empty).
CHANGELOG = _schema_dir().parent / "CHANGELOG.md"


@dataclass
class Contract:
    """One version of the contract: schemas, hook argument lists, operation table."""

    version: str | None
    schemas: dict[str, Any]
    hooks: dict[str, list[str]] | None = None
    operations: dict[str, dict[str, str]] | None = None
    origin: str = field(default="", compare=False)


def compare_contracts(old: Contract, new: Contract) -> list[Change]:
    return compare(old.schemas, new.schemas, old.hooks, new.hooks, old.operations, new.operations)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split("."))


def hookspecs_document(version: str | None = None) -> dict[str, Any]:
    """What ``released/<version>/hookspecs.json`` holds for the current code."""
    from . import CONTRACT_VERSION
    from .adapter import OPERATIONS
    from .docs import hooks, parameters

    return {
        "contract_version": version or CONTRACT_VERSION,
        "hooks": {f.__name__: parameters(f) for f in hooks()},
        "operations": {op.name: {"request": op.request_schema, "response": op.response_schema}
                       for op in OPERATIONS.values()},
    }


def current_contract() -> Contract:
    """The contract this code implements: ``essc.schemas`` + hookspecs + operations."""
    from essc import schemas

    doc = hookspecs_document()
    return Contract(doc["contract_version"], {n: schemas.load(n) for n in schemas.names()}, doc["hooks"],
                    doc["operations"], origin=str(schemas.SCHEMA_DIR))


def load_contract(directory: Path | str, *, default_hooks: Contract | None = None) -> Contract:
    """The contract in ``directory``: its ``*.schema.json`` (not sub-folders) and, if present,
    ``hookspecs.json``; without one, hooks and operations come from ``default_hooks``."""
    directory = Path(directory)
    schemas = {p.name[: -len(_SCHEMA_SUFFIX)]: json.loads(p.read_text(encoding="utf-8"))
               for p in sorted(directory.glob("*" + _SCHEMA_SUFFIX))}
    if not schemas:
        raise FileNotFoundError(f"no *{_SCHEMA_SUFFIX} in {directory}")
    spec_file = directory / HOOKSPECS_FILE
    if spec_file.is_file():
        spec = json.loads(spec_file.read_text(encoding="utf-8"))
        return Contract(spec.get("contract_version"), schemas, spec.get("hooks"), spec.get("operations"),
                        origin=str(directory))
    if default_hooks is not None:
        return Contract(default_hooks.version, schemas, default_hooks.hooks, default_hooks.operations,
                        origin=str(directory))
    return Contract(None, schemas, origin=str(directory))


def freeze(target: Path | str, version: str | None = None) -> Path:
    """Write the released copy of the current contract into ``target``: byte-exact copies of
    the contract schemas and a ``hookspecs.json``. ``python -m essc.core.compat --freeze``
    writes ``schemas/released/<CONTRACT_VERSION>/``."""
    import shutil

    from essc import schemas

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    for name in schemas.names():
        shutil.copyfile(schemas.schema_path(name), target / f"{name}{_SCHEMA_SUFFIX}")
    doc = hookspecs_document(version)
    (target / HOOKSPECS_FILE).write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


_ANNOTATIONS = frozenset({"title", "description", "examples", "$comment"})
_SCHEMA_MAPS = frozenset({"properties", "$defs", "patternProperties", "dependentSchemas"})


def _without_annotations(node: Any, schema_map: bool = False) -> Any:
    """The schema without annotation keywords (a property *named* ``description`` stays)."""
    if isinstance(node, list):
        return [_without_annotations(v) for v in node]
    if not isinstance(node, dict):
        return node
    if schema_map:
        return {k: _without_annotations(v) for k, v in node.items()}
    return {k: _without_annotations(v, k in _SCHEMA_MAPS) for k, v in node.items() if k not in _ANNOTATIONS}


def same_but_annotations(a: Contract, b: Contract) -> bool:
    """Whether two contracts differ at most in annotations (what ``--freeze --force`` may rewrite)."""
    return (_without_annotations(a.schemas, True) == _without_annotations(b.schemas, True)
            and a.hooks == b.hooks and a.operations == b.operations)


def released_versions(root: Path | str = RELEASED_DIR) -> list[str]:
    """Released contract versions (folders ``MAJOR.MINOR`` of ``root``), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d+\.\d+", p.name)]
    return sorted(found, key=_version_key)


def load_release(version: str, root: Path | str = RELEASED_DIR) -> Contract:
    contract = load_contract(Path(root) / version)
    contract.version = version  # the folder name is the version
    return contract


def latest_release(root: Path | str = RELEASED_DIR) -> Contract | None:
    versions = released_versions(root)
    return load_release(versions[-1], root) if versions else None


# -- release policy ----------------------------------------------------------------------------
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CONTRACT_HEADING = re.compile(r"\bContract\s+(\d+)\.(\d+)\b", re.I)


def changelog_entries(text: str, major: int) -> list[str]:
    """Every CHANGELOG section whose heading names ``Contract <major>.<minor>``: the heading
    and the body up to the next heading of the same or a higher level."""
    lines, out = text.splitlines(), []
    for i, line in enumerate(lines):
        m = _HEADING.match(line)
        if not m:
            continue
        c = _CONTRACT_HEADING.search(m.group(2))
        if not c or int(c.group(1)) != major:
            continue
        level, body = len(m.group(1)), [line]
        for nxt in lines[i + 1:]:
            h = _HEADING.match(nxt)
            if h and len(h.group(1)) <= level:
                break
            body.append(nxt)
        out.append("\n".join(body).rstrip())
    return out


def release_problem(changes: Sequence[Change], released: str, current: str, changelog: str) -> str | None:
    """Why the current contract cannot ship against the newest release, or ``None``.

    Breaking changes are allowed only with a new major: ``current``'s major above
    ``released``'s, and a CHANGELOG entry for that major that mentions the migration."""
    if _version_key(current) < _version_key(released):
        return f"CONTRACT_VERSION {current} is older than the released contract {released}"
    if not changes:
        return None
    listing = "\n".join(f"  - {c}" for c in changes)
    head = f"{len(changes)} breaking change(s) against the released contract {released}:\n{listing}\n"
    major, released_major = _version_key(current)[0], _version_key(released)[0]
    if major <= released_major:
        return (head + f"CONTRACT_VERSION is {current}: undo the change(s), or make them a new major "
                f"(CONTRACT_VERSION = \"{released_major + 1}.0\") with a CHANGELOG.md entry "
                f"'## Contract {released_major + 1}.0' that explains the migration")
    entries = changelog_entries(changelog, major)
    if not entries:
        return head + f"CONTRACT_VERSION is {current} but CHANGELOG.md has no '## Contract {major}.x' entry"
    if not any("migration" in e.lower() for e in entries):
        return head + f"no CHANGELOG.md entry of contract {major}.x mentions the migration"
    return None


# -- command line ------------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m essc.core.compat",
                                     description="Breaking changes of the plugin contract against a release.")
    old = parser.add_mutually_exclusive_group()
    old.add_argument("--against", metavar="VERSION", help="a release in schemas/released/ (default: the newest)")
    old.add_argument("--old", metavar="DIR", help="a folder with the old *.schema.json (+ hookspecs.json)")
    parser.add_argument("--new", metavar="DIR", help="a folder with the new schemas (default: the installed contract)")
    parser.add_argument("--changelog", metavar="FILE", default=str(CHANGELOG), help="default: %(default)s")
    parser.add_argument("--json", action="store_true", help="print the changes as JSON")
    parser.add_argument("--freeze", action="store_true",
                        help="release: write schemas/released/<CONTRACT_VERSION>/ from the current contract")
    parser.add_argument("--force", action="store_true", help="with --freeze: overwrite an existing release")
    args = parser.parse_args(argv)

    if args.freeze:
        from . import CONTRACT_VERSION

        target = RELEASED_DIR / CONTRACT_VERSION
        if target.exists():
            if not args.force:
                parser.error(f"{target} exists: a released contract is frozen (--force to rewrite it, e.g. "
                             "after adding descriptions)")
            if not same_but_annotations(load_release(CONTRACT_VERSION), current_contract()):
                parser.error(f"refusing to rewrite {target}: the current contract differs from it in more than "
                             "annotations (title, description, examples, $comment); release a new version")
        print(f"wrote {freeze(target)}")
        return 0

    current = current_contract()
    try:
        new = load_contract(args.new, default_hooks=current) if args.new else current
        if args.old:
            base = load_contract(args.old)
        else:
            version = args.against or (released_versions() or [None])[-1]
            if version is None:
                parser.error(f"no released contract in {RELEASED_DIR}")
            base = load_release(version)
    except (OSError, ValueError) as err:
        parser.error(str(err))
    changes = compare_contracts(base, new)
    if args.json:
        print(json.dumps([c.to_dict() for c in changes], ensure_ascii=False, indent=2))
    else:
        print(f"contract {new.version} ({new.origin}) vs {base.version} ({base.origin}): "
              f"{len(changes)} breaking change(s)")
        for c in changes:
            print(f"  {c}")
    try:
        changelog = Path(args.changelog).read_text(encoding="utf-8")
    except OSError:
        changelog = ""
    problem = None
    if base.version and new.version:
        problem = release_problem(changes, base.version, new.version, changelog)
    elif changes:
        problem = "breaking changes (versions unknown: no policy applied)"
    if problem:
        print(problem.splitlines()[-1], file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
