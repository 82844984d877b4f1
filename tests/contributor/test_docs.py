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


# -- what the docs name exists ----------------------------------------------------------------------
# Real checks rather than keywords: every module, class, function and attribute the docs name in
# `essc....` resolves; every repository path they name exists; every `helper()` said to live in a
# file is defined there; every `essc <command> --option` is a command and option of the CLI; every
# TOML example is a settings file the registry accepts.
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP_FOLDERS = ("core", "cli", "conformance", "tooling", "plugins", "mockserver", "service", "schemas", "tests",
               "docs", "bench", "dialects")
#: names of the "before" column of the CHANGELOG's moves: they are meant not to resolve any more
MOVED = re.compile(r"essc\.core\.(cli|contract|templates|compat|docs|bench|testing)\b")
MOVED_PATH = re.compile(r"core/(cli|contract|templates|compat)\b|core/(docs|bench|testing)\.py")


def _code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`\n]+)`", text)


def _resolve(dotted: str) -> bool:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_module_and_attribute_exists(doc):
    text = doc.read_text(encoding="utf-8")
    dotted = re.compile(r"\bessc(\.[A-Za-z_]\w*)+")
    names = {m.group(0).rstrip(".") for span in _code_spans(text) for m in dotted.finditer(span)}
    names = {n for n in names if not MOVED.match(n) and not n.startswith("essc.plugins.")}  # plugin names are examples
    missing = sorted(n for n in names if not _resolve(n))
    assert not missing, f"{doc.name} names what does not exist: {', '.join(missing)}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_named_repository_path_exists(doc):
    text = doc.read_text(encoding="utf-8")
    pattern = re.compile(rf"^(?:\.\./)?((?:{'|'.join(TOP_FOLDERS)})/[\w./*<>-]*)$")
    missing = []
    for span in _code_spans(text) + re.findall(r"\]\(\.\./([^)#\s]+)", text):
        m = pattern.match(span.strip())
        # placeholders (<plugin>, X.Y), the "before" column of the CHANGELOG's moves, and a plugin
        # repository's own files (tests/test_contract.py of a scaffolded plugin) are not this repository's
        if (not m or "<" in m.group(1) or "X.Y" in m.group(1) or MOVED_PATH.match(m.group(1))
                or re.fullmatch(r"tests/test_\w+\.py", m.group(1))):
            continue
        path = m.group(1).rstrip("/")
        if not (list(ROOT.glob(path)) if "*" in path else (ROOT / path).exists()):
            missing.append(path)
    assert not missing, f"{doc.name} names paths that do not exist: {', '.join(sorted(set(missing)))}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_helper_said_to_live_in_a_file_is_defined_there(doc):
    """``the `_result()` helper in `plugins/zhejiang/adapter.py``` must name a function of that file."""
    text = doc.read_text(encoding="utf-8")
    wrong = []
    for name, path in re.findall(r"`(\w+)\(\)`[^`\n]{0,20}?\bin\s+`([\w/]+\.py)`", text):
        file = ROOT / path
        if not file.is_file() or not re.search(rf"^\s*(?:def|class)\s+{name}\b", file.read_text(encoding="utf-8"),
                                               flags=re.M):
            wrong.append(f"{name}() in {path}")
    assert not wrong, f"{doc.name} points to helpers that are not there: {', '.join(wrong)}"


def _cli_uses(text: str) -> list[str]:
    lines = [span for span in _code_spans(text) if span.startswith("essc ")]
    for block in re.findall(r"^```(?:bash|sh)[^\n]*\n(.*?)^```", text, flags=re.M | re.S):
        lines += [m.group(0) for m in re.finditer(r"(?<![\w./-])essc [^\n#|&;)]*", block.replace("\\\n", " "))]
    return lines


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_essc_command_and_option_exists(doc):
    from essc.cli import main

    wrong = []
    for use in _cli_uses(doc.read_text(encoding="utf-8")):
        words = use.split()
        if len(words) < 2 or not re.fullmatch(r"[a-z][a-z-]*", words[1]):
            continue
        command = main.commands.get(words[1])
        if command is None:
            wrong.append(f"`{use.strip()}`: no command {words[1]}")
            continue
        options = {o for p in command.params for o in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
        passes_through = any(p.name == "pytest_args" for p in command.params)
        for word in words[2:]:
            option = word.split("=")[0]
            if option.startswith("-") and option not in options and not passes_through:
                wrong.append(f"`{use.strip()}`: essc {words[1]} has no option {option}")
    assert not wrong, f"{doc.name}: " + "; ".join(wrong)


def test_every_settings_example_is_accepted(tmp_path):
    """The TOML examples of the docs are settings files the registry reads."""
    from essc.core.settings import Settings

    examples = [b for doc in DOCS for b in re.findall(r"^```toml\n(.*?)^```", doc.read_text(encoding="utf-8"),
                                                       flags=re.M | re.S)]
    assert examples, "no TOML example in the docs"
    for i, example in enumerate(examples):
        if "[endpoints]" not in example and "[plugins]" not in example:
            continue  # not a registry settings file (a scaffold's tox.ini fragment ...)
        path = tmp_path / f"example{i}.toml"
        path.write_text(example, encoding="utf-8")
        settings = Settings.from_env(config_file=path, env={})
        for plugin, url in settings.endpoints.items():
            assert settings.endpoint(plugin) == url.rstrip("/")


def test_the_guide_documents_every_answer_helper():
    """Every public helper of essc.core.answers.CityCall is in the plugin guide as ``call.<name>(``."""
    from essc.core.answers import CityCall

    text = GUIDE.read_text(encoding="utf-8")
    helpers = [n for n, v in vars(CityCall).items() if not n.startswith("_") and callable(v)]
    missing = [n for n in helpers if f"call.{n}(" not in text]
    assert not missing, f"docs/plugin-guide.md does not document CityCall.{', CityCall.'.join(missing)}"


def test_the_docs_cite_no_file_outside_the_repository():
    """Domain facts are cited from docs/domain.md, which the repository carries."""
    assert (ROOT / "docs" / "domain.md").is_file()
    offenders = []
    for path in [*DOCS, *ROOT.glob("*/**/*.py"), *ROOT.glob("schemas/**/*.json")]:
        if any(part in (".git", ".tox", ".venv", "build", "node_modules") for part in path.parts):
            continue
        if "DOMAIN.md" in path.read_text(encoding="utf-8", errors="replace") and path.name != "test_docs.py":
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"cite docs/domain.md instead of DOMAIN.md: {', '.join(offenders)}"
