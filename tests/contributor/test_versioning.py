"""The contract cannot break silently.

The current contract (schemas/*.schema.json, the hookspecs, the operation table) is compared
with the newest frozen release in schemas/released/<version>/. A breaking change fails the
guard unless the contract's major (essc.core.CONTRACT_VERSION) is above the release's AND
CHANGELOG.md has an entry for that major that explains the migration.

Below the guard: a proof that it catches a deliberately breaking edit of a copy of
schemas/, and unit tests of tooling/compat/ with synthetic schema pairs for every breaking
kind and every allowed change. (Plugin-side versioning - a plugin targeting major 2.0 is
quarantined, a newer minor is refused - is tested in tests/core/test_registry.py.)
"""
from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from essc import schemas
from essc.core import CONTRACT_VERSION
from essc.tooling import compat
from essc.tooling.compat import KINDS, Change, compare, compare_hooks, compare_operations, release_problem

ROOT = Path(__file__).resolve().parents[2]
CHANGELOG = ROOT / "CHANGELOG.md"
COMMON_URI = "https://essc-adapters.dev/schemas/common.schema.json"


def found(changes: list[Change]) -> set[tuple[str, str, str]]:
    return {(c.schema, c.pointer, c.kind) for c in changes}


# -- the guard over the real contract ----------------------------------------------------------
def test_there_is_a_released_contract():
    versions = compat.released_versions()
    assert versions, f"no released contract in {compat.RELEASED_DIR}: run `python -m essc.tooling.compat --freeze`"
    assert all(re.fullmatch(r"\d+\.\d+", v) for v in versions)


def test_no_breaking_change_without_a_new_major_and_migration_notes():
    release = compat.latest_release()
    changes = compat.compare_contracts(release, compat.current_contract())
    problem = release_problem(changes, release.version, CONTRACT_VERSION, CHANGELOG.read_text(encoding="utf-8"))
    assert problem is None, problem


def test_changelog_has_an_entry_for_the_current_contract():
    entries = compat.changelog_entries(CHANGELOG.read_text(encoding="utf-8"), int(CONTRACT_VERSION.split(".")[0]))
    headings = [e.splitlines()[0] for e in entries]
    assert any(re.search(rf"\bContract {re.escape(CONTRACT_VERSION)}\b", h) for h in headings), \
        f"CHANGELOG.md needs a '## Contract {CONTRACT_VERSION}' entry (found {headings})"


@pytest.mark.parametrize("version", compat.released_versions())
def test_released_copy_is_complete(version):
    folder = compat.RELEASED_DIR / version
    spec = json.loads((folder / compat.HOOKSPECS_FILE).read_text(encoding="utf-8"))
    assert spec["contract_version"] == version
    assert spec["hooks"] and all(isinstance(args, list) for args in spec["hooks"].values())
    assert set(spec["operations"]) and all(set(o) == {"request", "response"} for o in spec["operations"].values())
    released = {p.name for p in folder.glob("*.schema.json")}
    assert "common.schema.json" in released and "manifest.schema.json" in released
    assert not (folder / "openapi.json").exists(), "openapi.json is the activation service's API, not the contract"
    for name in spec["operations"].values():
        assert f"{name['request']}.schema.json" in released and f"{name['response']}.schema.json" in released


def test_released_copies_are_not_contract_schemas():
    top_level = sorted(p.name[: -len(".schema.json")] for p in schemas.SCHEMA_DIR.glob("*.schema.json"))
    assert schemas.names() == top_level
    assert compat.RELEASED_DIR.is_relative_to(schemas.SCHEMA_DIR)
    assert all(not schemas.schema_path(n).is_relative_to(compat.RELEASED_DIR) for n in schemas.names())
    assert "openapi" not in schemas.names()


def test_the_newest_release_matches_the_current_contract_version_family():
    release = compat.latest_release()
    assert tuple(map(int, CONTRACT_VERSION.split("."))) >= tuple(map(int, release.version.split("."))), \
        f"CONTRACT_VERSION {CONTRACT_VERSION} is older than the newest release {release.version}"


# -- the guard catches a deliberately breaking edit --------------------------------------------
@pytest.fixture
def schema_copy(tmp_path: Path) -> Path:
    """A copy of schemas/ (the contract schemas only) to edit."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    for name in schemas.names():
        shutil.copyfile(schemas.schema_path(name), folder / f"{name}.schema.json")
    return folder


def edit(folder: Path, name: str, change) -> None:
    path = folder / f"{name}.schema.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def guard(folder: Path, version: str = CONTRACT_VERSION, changelog: str | None = None):
    release = compat.latest_release()
    new = compat.load_contract(folder, default_hooks=compat.current_contract())
    changes = compat.compare_contracts(release, new)
    text = CHANGELOG.read_text(encoding="utf-8") if changelog is None else changelog
    return changes, release_problem(changes, release.version, version, text)


def test_the_unedited_copy_passes_the_guard(schema_copy):
    changes, problem = guard(schema_copy)
    assert changes == [] and problem is None


def test_guard_catches_a_property_removed_from_card_record(schema_copy):
    edit(schema_copy, "card_record", lambda d: d["properties"].pop("aac067"))
    changes, problem = guard(schema_copy)
    assert ("card_record", "/properties/aac067", "property-removed") in found(changes), \
        f"removing card_record.aac067 (the mobile phone) is breaking, but the guard reported {changes}"
    assert problem is not None and "card_record#/properties/aac067: property-removed" in problem, \
        "removing card_record.aac067 under contract 1.x must fail the versioning guard"


def test_guard_catches_a_newly_required_field(schema_copy):
    def add_required(doc):
        doc["properties"]["aae010"] = {"description": "Bank account (test only).", "type": "string"}
        doc["required"].append("aae010")

    edit(schema_copy, "card_record", add_required)
    changes, problem = guard(schema_copy)
    assert found(changes) == {("card_record", "/properties/aae010", "property-required")}, \
        f"a new required field card_record.aae010 is breaking, but the guard reported {changes}"
    assert problem is not None, "a new required field card_record.aae010 under contract 1.x must fail the guard"


def test_guard_catches_a_narrowed_common_definition(schema_copy):
    edit(schema_copy, "common", lambda d: d["$defs"]["cardStatus"]["enum"].remove("locked"))
    changes, _ = guard(schema_copy)
    assert ("common", "/$defs/cardStatus/enum", "enum-narrowed") in found(changes), \
        f"dropping card status 'locked' from common.cardStatus is breaking, but the guard reported {changes}"


def test_guard_allows_the_breaking_edit_only_with_a_new_major_and_migration_notes(schema_copy):
    edit(schema_copy, "card_record", lambda d: d["properties"].pop("aac067"))
    _, same_major = guard(schema_copy, CONTRACT_VERSION)
    assert same_major is not None and "CONTRACT_VERSION = \"2.0\"" in same_major
    _, no_entry = guard(schema_copy, "2.0")
    assert no_entry is not None and "no '## Contract 2.x' entry" in no_entry
    _, no_migration = guard(schema_copy, "2.0", CHANGELOG.read_text(encoding="utf-8")
                            + "\n## Contract 2.0\n\n- card_record.aac067 removed.\n")
    assert no_migration is not None and "migration" in no_migration
    notes = "# Changelog\n\n## Contract 2.0\n\n### Migration\n\nStop returning aac067.\n\n## Contract 1.0\n\n- first\n"
    _, allowed = guard(schema_copy, "2.0", notes)
    assert allowed is None


def test_compat_command_reports_the_breaking_edit(schema_copy):
    edit(schema_copy, "card_record", lambda d: d["properties"].pop("aac067"))
    cmd = [sys.executable, "-m", "essc.tooling.compat", "--new", str(schema_copy)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "card_record#/properties/aac067: property-removed" in run.stdout
    assert "CONTRACT_VERSION" in run.stderr
    as_json = subprocess.run(cmd + ["--json"], capture_output=True, text=True, timeout=60)
    assert json.loads(as_json.stdout) == [{"schema": "card_record", "pointer": "/properties/aac067",
                                           "kind": "property-removed", "detail": "property 'aac067' removed"}]


def test_compat_command_passes_on_the_current_contract():
    run = subprocess.run([sys.executable, "-m", "essc.tooling.compat"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 breaking change(s)" in run.stdout


# -- tooling/compat/ on synthetic schema pairs ---------------------------------------------------
def obj(**props) -> dict:
    return {"type": "object", "required": ["a"], "properties": {"a": {"type": "string"}, **props}}


def common(**defs) -> dict:
    return {"$defs": {"code": {"type": "string", "pattern": "^[0-9]{6}$"}, **defs}}


BREAKING = {
    "property-removed": (obj(b={"type": "integer"}), obj(), "/properties/b"),
    "property-required (existing)": (obj(b={"type": "integer"}),
                                     {**obj(b={"type": "integer"}), "required": ["a", "b"]}, "/properties/b"),
    "property-required (new)": (obj(), {**obj(c={"type": "string"}), "required": ["a", "c"]}, "/properties/c"),
    "type-narrowed (list shrank)": (obj(b={"type": ["string", "null"]}), obj(b={"type": "string"}),
                                    "/properties/b/type"),
    "type-narrowed (number -> integer)": (obj(b={"type": "number"}), obj(b={"type": "integer"}),
                                          "/properties/b/type"),
    "type-narrowed (type appeared)": (obj(b={}), obj(b={"type": "string"}), "/properties/b/type"),
    "type-narrowed (schema became false)": (obj(b={"type": "string"}), obj(b=False), "/properties/b"),
    "enum-narrowed (lost a value)": (obj(b={"enum": ["x", "y"]}), obj(b={"enum": ["x"]}), "/properties/b/enum"),
    "enum-narrowed (enum appeared)": (obj(b={"type": "string"}), obj(b={"type": "string", "enum": ["x"]}),
                                      "/properties/b/enum"),
    "enum-narrowed (1 is not true)": (obj(b={"enum": [True, 2]}), obj(b={"enum": [1, 2]}), "/properties/b/enum"),
    "pattern-changed": (obj(b={"type": "string", "pattern": "^a"}), obj(b={"type": "string", "pattern": "^b"}),
                        "/properties/b/pattern"),
    "pattern-changed (pattern appeared)": (obj(), obj(a={"type": "string", "pattern": "^a"}), "/properties/a/pattern"),
    "format-changed": (obj(), obj(a={"type": "string", "format": "email"}), "/properties/a/format"),
    "bound-tightened (minLength rose)": (obj(a={"type": "string", "minLength": 1}),
                                         obj(a={"type": "string", "minLength": 2}), "/properties/a/minLength"),
    "bound-tightened (maxLength fell)": (obj(a={"type": "string", "maxLength": 40}),
                                         obj(a={"type": "string", "maxLength": 20}), "/properties/a/maxLength"),
    "bound-tightened (minimum rose)": (obj(b={"type": "number", "minimum": 0}), obj(b={"type": "number", "minimum": 1}),
                                       "/properties/b/minimum"),
    "bound-tightened (maximum fell)": (obj(b={"type": "number", "maximum": 60}),
                                       obj(b={"type": "number", "maximum": 30}), "/properties/b/maximum"),
    "bound-tightened (maxLength appeared)": (obj(), obj(a={"type": "string", "maxLength": 9}),
                                             "/properties/a/maxLength"),
    "bound-tightened (exclusiveMinimum appeared)": (obj(b={"type": "number"}),
                                                    obj(b={"type": "number", "exclusiveMinimum": 0}),
                                                    "/properties/b/exclusiveMinimum"),
    "bound-tightened (minItems rose)": (obj(b={"type": "array", "minItems": 0}),
                                        obj(b={"type": "array", "minItems": 1}), "/properties/b/minItems"),
    "additional-properties-closed": (obj(), {**obj(), "additionalProperties": False}, "/additionalProperties"),
    "const-added": (obj(b={"type": "boolean"}), obj(b={"type": "boolean", "const": True}), "/properties/b/const"),
    "const-changed": (obj(b={"const": "x"}), obj(b={"const": "y"}), "/properties/b/const"),
    "constraint-tightened (uniqueItems)": (obj(b={"type": "array"}), obj(b={"type": "array", "uniqueItems": True}),
                                           "/properties/b/uniqueItems"),
    "constraint-tightened (allOf member added)": (
        obj(b={"type": "array", "allOf": [{"contains": {"const": "x"}}]}),
        obj(b={"type": "array", "allOf": [{"contains": {"const": "x"}}, {"contains": {"const": "y"}}]}),
        "/properties/b/allOf/1"),
    "property-removed (nested in array items)": (
        obj(b={"type": "array", "items": {"type": "object", "properties": {"c": {"type": "string"}}}}),
        obj(b={"type": "array", "items": {"type": "object", "properties": {}}}), "/properties/b/items/properties/c"),
    "property-removed (escaped pointer)": (obj(**{"x/y": {}}), obj(), "/properties/x~1y"),
    "bound-tightened (map values)": (obj(b={"type": "object", "additionalProperties": {"type": "string"}}),
                                     obj(b={"type": "object", "additionalProperties": {"type": "string",
                                                                                       "minLength": 10}}),
                                     "/properties/b/additionalProperties/minLength"),
}


@pytest.mark.parametrize("case", BREAKING, ids=str)
def test_breaking_change_is_reported(case):
    old, new, pointer = BREAKING[case]
    kind = case.split(" ")[0]
    assert kind in KINDS
    changes = compare({"s": old}, {"s": new})
    assert ("s", pointer, kind) in found(changes), f"{case}: expected {kind} at {pointer}, got {changes}"
    assert all(c.kind in KINDS for c in changes)


ALLOWED = {
    "new optional property": (obj(), obj(c={"type": "string", "pattern": "^c"})),
    "enum widened": (obj(b={"enum": ["x"]}), obj(b={"enum": ["x", "y"]})),
    "type widened": (obj(b={"type": "string"}), obj(b={"type": ["string", "null"]})),
    "integer -> number": (obj(b={"type": "integer"}), obj(b={"type": "number"})),
    "type stated for an enum of strings": (obj(b={"enum": ["2", "3"]}), obj(b={"type": "string", "enum": ["2", "3"]})),
    "const -> enum holding it": (obj(b={"const": "x"}), obj(b={"enum": ["x", "y"]})),
    "requirement dropped": ({**obj(b={}), "required": ["a", "b"]}, obj(b={})),
    "pattern removed": (obj(a={"type": "string", "pattern": "^a"}), obj()),
    "bounds loosened": (obj(a={"type": "string", "minLength": 2, "maxLength": 9}),
                        obj(a={"type": "string", "minLength": 1, "maxLength": 40})),
    "additionalProperties opened": ({**obj(), "additionalProperties": False}, obj()),
    "annotations changed": (obj(a={"type": "string", "description": "old"}),
                            {**obj(a={"type": "string", "description": "new", "title": "A", "examples": ["x"]}),
                             "description": "whole"}),
    "1.0 equals 1": (obj(b={"enum": [1.0, 2]}), obj(b={"enum": [1, 2]})),
}


@pytest.mark.parametrize("case", ALLOWED, ids=str)
def test_allowed_change_is_not_reported(case):
    old, new = ALLOWED[case]
    assert compare({"s": old}, {"s": new}) == [], case


def test_new_schema_is_allowed_and_removed_schema_is_breaking():
    assert compare({"s": obj()}, {"s": obj(), "t": obj()}) == []
    assert found(compare({"s": obj(), "t": obj()}, {"s": obj()})) == {("t", "", "schema-removed")}


def test_common_definitions_are_compared_as_a_schema_of_their_own():
    old = {"common": common(), "s": obj(a={"$ref": f"{COMMON_URI}#/$defs/code"})}
    narrowed = copy.deepcopy(old)
    narrowed["common"]["$defs"]["code"]["pattern"] = "^[0-9]{4}$"
    assert found(compare(old, narrowed)) == {("common", "/$defs/code/pattern", "pattern-changed")}
    removed = copy.deepcopy(old)
    del removed["common"]["$defs"]["code"]
    assert ("common", "/$defs/code", "definition-removed") in found(compare(old, removed))
    added = copy.deepcopy(old)
    added["common"]["$defs"]["other"] = {"type": "string"}
    assert compare(old, added) == []


def test_a_retargeted_ref_compares_the_targets():
    defs = common(wide={"type": "string"}, same={"type": "string", "pattern": "^[0-9]{6}$"})
    old = {"common": defs, "s": obj(a={"$ref": f"{COMMON_URI}#/$defs/wide"}, b={"$ref": f"{COMMON_URI}#/$defs/code"})}
    new = copy.deepcopy(old)
    new["s"]["properties"]["a"] = {"$ref": f"{COMMON_URI}#/$defs/code"}  # narrower: a pattern appears
    new["s"]["properties"]["b"] = {"$ref": "common.schema.json#/$defs/same"}  # same content, another name
    assert found(compare(old, new)) == {("s", "/properties/a/pattern", "pattern-changed")}
    inline = copy.deepcopy(old)
    inline["s"]["properties"]["b"] = {"type": "string", "pattern": "^[0-9]{6}$", "description": "inlined"}
    assert compare(old, inline) == []
    dangling = copy.deepcopy(old)
    dangling["s"]["properties"]["b"] = {"$ref": f"{COMMON_URI}#/$defs/nowhere"}
    assert found(compare(old, dangling)) == {("s", "/properties/b/$ref", "ref-changed")}


def test_local_refs_resolve_inside_their_own_schema():
    old = {"s": {"$defs": {"x": {"type": "string"}, "y": {"type": "string", "maxLength": 3}},
                 "properties": {"p": {"$ref": "#/$defs/x"}}}}
    new = copy.deepcopy(old)
    new["s"]["properties"]["p"] = {"$ref": "#/$defs/y"}
    assert found(compare(old, new)) == {("s", "/properties/p/maxLength", "bound-tightened")}


def test_hooks():
    old = {"essc_a": ["city", "error"], "essc_b": ["name"], "essc_c": ["x", "y"]}
    assert compare_hooks(old, {**old, "essc_new": ["z"], "essc_c": ["x", "y", "extra"]}) == [], \
        "a new hook and a new argument are allowed"
    assert compare_hooks(old, {**old, "essc_c": ["y", "x"]}) == [], "pluggy passes by name: order is free"
    changes = compare_hooks(old, {"essc_a": ["city", "err"], "essc_c": ["x"]})
    assert found(changes) == {("hookspecs", "/hooks/essc_a/1", "hook-argument-renamed"),
                              ("hookspecs", "/hooks/essc_b", "hook-removed"),
                              ("hookspecs", "/hooks/essc_c/1", "hook-argument-removed")}
    assert "renamed to 'err'" in str(next(c for c in changes if c.kind == "hook-argument-renamed"))


def test_operations():
    old = {"read_card": {"request": "card_query", "response": "card_record"},
           "health": {"request": "health_query", "response": "health"}}
    assert compare_operations(old, {**old, "new_op": {"request": "a", "response": "b"}}) == []
    changes = compare_operations(old, {"read_card": {"request": "card_query", "response": "card_record_v2"}})
    assert found(changes) == {("hookspecs", "/operations/health", "operation-removed"),
                              ("hookspecs", "/operations/read_card/response", "operation-schema-changed")}


def test_compare_is_pure():
    old = {"common": common(), "s": obj(b={"$ref": f"{COMMON_URI}#/$defs/code"})}
    new = {"common": common(), "s": obj(b={"type": "string"})}
    before = copy.deepcopy((old, new))
    first = compare(old, new, {"essc_a": ["x"]}, {"essc_a": []})
    assert (old, new) == before
    assert compare(old, new, {"essc_a": ["x"]}, {"essc_a": []}) == first
    assert compare(old, new) == [c for c in first if c.schema != "hookspecs"], "hooks compared only when both given"


def test_the_current_contract_against_itself():
    current = compat.current_contract()
    assert compat.compare_contracts(current, current) == []
    assert set(current.hooks) == {"essc_register_adapters", "essc_adapter_called", "essc_plugin_quarantined"}


def test_changelog_entry_parsing():
    text = ("# Changelog\n\n## Contract 2.1\n\nadded x\n\n## Contract 2.0\n\n### Migration\n\ndo y\n\n"
            "## Contract 1.0\n\nfirst\n")
    assert compat.changelog_entries(text, 2) == ["## Contract 2.1\n\nadded x",
                                                 "## Contract 2.0\n\n### Migration\n\ndo y"]
    assert compat.changelog_entries(text, 1) == ["## Contract 1.0\n\nfirst"]
    assert compat.changelog_entries(text, 3) == []
    assert compat.changelog_entries("Contract 3.0 mentioned in prose, migration\n", 3) == [], "headings only"
    breaking = [Change("s", "/properties/b", "property-removed", "property 'b' removed")]
    assert release_problem(breaking, "1.0", "2.1", text) is None, "the migration may sit in the 2.0 entry"
    assert release_problem(breaking, "2.0", "2.1", text) is not None, "2.0 is released: breaking needs 3.0"
    assert release_problem([], "1.0", "0.9", text) is not None, "the contract version cannot go backwards"


def test_freeze_writes_an_exact_release(tmp_path):
    folder = compat.freeze(tmp_path / "9.9", "9.9")
    for name in schemas.names():
        assert (folder / f"{name}.schema.json").read_bytes() == schemas.schema_path(name).read_bytes()
    assert not (folder / "openapi.json").exists()
    release = compat.load_release("9.9", tmp_path)
    assert release.version == "9.9" and compat.released_versions(tmp_path) == ["9.9"]
    assert compat.compare_contracts(release, compat.current_contract()) == []


def test_a_release_may_only_be_rewritten_for_annotations():
    current = compat.current_contract()
    described = copy.deepcopy(current)
    described.schemas["card_record"]["properties"]["aaz500"]["description"] = "reworded"
    described.schemas["card_record"]["title"] = "retitled"
    assert compat.same_but_annotations(current, described)
    widened = copy.deepcopy(current)
    widened.schemas["card_record"]["properties"]["aae010"] = {"type": "string"}
    assert not compat.same_but_annotations(current, widened), "a new property needs a new version"
    no_description_field = copy.deepcopy(current)
    del no_description_field.schemas["manifest"]["properties"]["description"]
    assert not compat.same_but_annotations(current, no_description_field), \
        "the manifest's *property* named description is no annotation"


# -- an anyOf that the old schema implies (contract 1.2: the credential's two sets of names) ----------
def test_an_anyof_implied_by_the_old_required_list_is_not_breaking():
    old = {"credential": {"type": "object", "required": ["a", "signNo"], "properties": {"a": {}, "signNo": {}}}}
    new = {"credential": {"type": "object", "required": ["a"], "properties": {"a": {}, "signNo": {}, "sign_no": {}},
                          "anyOf": [{"required": ["sign_no"]}, {"required": ["signNo"], "description": "1.0"}]}}
    assert compare(old, new, {}, {}) == []


def test_an_anyof_the_old_schema_does_not_imply_is_breaking():
    old = {"credential": {"type": "object", "required": ["a"], "properties": {"a": {}, "signNo": {}}}}
    new = {"credential": {"type": "object", "required": ["a"], "properties": {"a": {}, "signNo": {}, "sign_no": {}},
                          "anyOf": [{"required": ["sign_no"]}, {"required": ["signNo"]}]}}
    assert found(compare(old, new, {}, {})) == {("credential", "/anyOf", "constraint-tightened")}
    narrowed = {"credential": {**new["credential"], "anyOf": [{"required": ["signNo"], "minProperties": 3}]}}
    assert found(compare(old, narrowed, {}, {})) == {("credential", "/anyOf", "constraint-tightened")}


def test_the_1_2_credential_accepts_every_1_1_credential():
    import jsonschema
    from referencing import Registry, Resource

    from essc.core.schemas import validator

    release = compat.load_release("1.1")
    resources = Registry().with_resources((f"{schemas.BASE_URI}{name}.schema.json", Resource.from_contents(doc))
                                          for name, doc in release.schemas.items())
    old_credential = {"aab301": "330100", "signNo": "ES0123456789", "signSeq": "1", "signLevel": 2,
                      "validate": "20361124", "signDate": "20261125"}
    jsonschema.Draft202012Validator(release.schemas["credential"], registry=resources).validate(old_credential)
    assert validator("credential").is_valid(old_credential)
