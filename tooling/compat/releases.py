"""Released contracts: loading, freezing, and the changelog rule for breaking changes."""
from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diff import _HOOKSPECS_DOC, _SCHEMA_SUFFIX, HOOKSPECS_FILE, Change, compare  # noqa: F401


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
    from essc.core import CONTRACT_VERSION
    from essc.core.adapter import OPERATIONS
    from essc.tooling.docs import hooks, parameters

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
    the contract schemas and a ``hookspecs.json``. ``python -m essc.tooling.compat --freeze``
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
