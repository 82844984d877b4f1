"""Contributor docs cannot drift from the contract.

- every property of every contract schema (and every definition of common.schema.json) has a
  description - its own, or that of the common definition it ``$ref``s;
- docs/schemas.md is what ``python -m essc.tooling.docs --schemas`` prints;
- docs/plugin-guide.md mentions every hook, operation, error code and breaking-change kind,
  and its relative links resolve.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from essc import schemas
from essc.core import OPERATIONS
from essc.tooling import compat, docs
from essc.tooling.docs import hooks, iter_properties, schema_reference

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_MD = ROOT / "docs" / "schemas.md"
GUIDE = ROOT / "docs" / "plugin-guide.md"


def undocumented(name: str, schema: dict) -> list[str]:
    return [p.path for p in iter_properties(name, schema) if not p.description]


# -- descriptions -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", schemas.names())
def test_every_schema_property_has_a_description(name):
    schema = schemas.load(name)
    missing = undocumented(name, schema)
    assert not missing, (f"schemas/{name}.schema.json: no description for {', '.join(missing)} "
                         "(add a \"description\"; it is not a breaking change)")
    assert schema.get("title"), f"schemas/{name}.schema.json has no title"


def test_the_description_check_catches_a_missing_description():
    ref = {"$ref": "https://essc-adapters.dev/schemas/common.schema.json#/$defs/cityCode"}
    schema = {"properties": {
        "a": {"type": "string"},
        "b": ref,  # inherits the description of common's cityCode
        "c": {"description": "documented", "type": "array",
              "items": {"type": "object", "properties": {"d": {"type": "string"}}}},
        "e": {"$ref": "https://essc-adapters.dev/schemas/common.schema.json#/$defs/nowhere"},
        "f": {"allOf": [ref]},
        "g": {"$ref": "https://essc-adapters.dev/schemas/missing.schema.json#/$defs/cityCode"},
    }}
    assert undocumented("synthetic", schema) == ["a", "c[].d", "e", "g"]
    assert undocumented("common", {"$defs": {"x": {"type": "string"}, "y": {"description": "ok"}}}) == ["x"]


def test_every_property_is_in_the_schema_reference():
    text = SCHEMAS_MD.read_text(encoding="utf-8")
    for name in schemas.names():
        assert f"\n## {name}\n" in text
        for p in iter_properties(name, schemas.load(name)):
            assert f"| `{p.path}` |" in text, f"docs/schemas.md lacks {name} {p.path}"


# -- generated reference ----------------------------------------------------------------------
def test_docs_schemas_md_is_generated_from_the_schemas():
    assert SCHEMAS_MD.read_text(encoding="utf-8") == schema_reference(), \
        "docs/schemas.md is stale: run `python -m essc.tooling.docs --schemas > docs/schemas.md`"


def test_docs_command_prints_both_references(capsys):
    assert docs.main(["--schemas"]) == 0
    assert capsys.readouterr().out == schema_reference()
    assert docs.main([]) == 0
    assert capsys.readouterr().out == docs.hook_reference()
    assert docs.main(["--nope"]) == 2


def test_schema_reference_shows_rules():
    text = schema_reference()
    assert "| `aaz500` | yes | string | pattern `^[A-Z0-9]{9}$` |" in text
    assert "| `aaz508` | yes | string | one of `2`, `3` |" in text
    assert "(0[1-9]\\|1[0-2])" in text, "pipes inside a table cell are escaped"
    assert "| `aac002` | yes | [idNumber](#common) | pattern `^[0-9]{17}[0-9X]$` |" in text


# -- the plugin guide -------------------------------------------------------------------------
@pytest.mark.parametrize("hook", [h.__name__ for h in hooks()])
def test_every_hook_is_in_the_plugin_guide(hook):
    assert hook in GUIDE.read_text(encoding="utf-8"), f"docs/plugin-guide.md does not mention the hook {hook}"


def test_every_operation_and_error_code_is_in_the_plugin_guide():
    from essc.core import errors

    text = GUIDE.read_text(encoding="utf-8")
    codes = {cls.code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.EsscError) and cls.code != "ESSC_ERROR"}
    missing = [f"`{n}`" for n in [*OPERATIONS, *sorted(codes)] if f"`{n}`" not in text]
    assert not missing, f"docs/plugin-guide.md does not mention {', '.join(missing)}"


def test_every_breaking_change_kind_is_in_the_plugin_guide():
    text = GUIDE.read_text(encoding="utf-8")
    missing = [k for k in compat.KINDS if f"`{k}`" not in text]
    assert not missing, f"docs/plugin-guide.md does not explain the breaking-change kind(s) {missing}"


def test_plugin_guide_links_resolve():
    text = GUIDE.read_text(encoding="utf-8")
    anchors = {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        if not path:
            assert anchor in anchors, f"docs/plugin-guide.md: no heading for the link #{anchor}"
        else:
            assert (GUIDE.parent / path).exists(), f"docs/plugin-guide.md links to a missing {path}"
