"""Finding plugins and reading their manifests - without importing plugin code.

Three sources, in this order (the first to claim a plugin name or a city wins):
1. the in-repo reference plugins: every folder with a ``manifest.json`` in ``essc.plugins``;
2. extra plugin folders (settings ``plugin_dirs`` / ``ESSC_PLUGIN_DIRS``): each sub-folder with
   a ``manifest.json`` is a top-level package of that name;
3. installed packages exposing an entry point in the ``essc.plugins`` group whose value is
   the plugin package (its folder holds ``manifest.json``).
"""
from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import CONTRACT_VERSION, ENTRY_POINT_GROUP
from .adapter import OPERATIONS
from .schemas import validator
from .settings import Settings

MANIFEST = "manifest.json"
#: the package holding the in-repo reference plugins (one sub-folder each)
BUILTIN_PACKAGE = "essc.plugins"


@dataclass
class PluginSource:
    """Where a plugin comes from (nothing imported yet)."""

    name: str  #: best guess before the manifest is read (folder or entry-point name)
    module: str  #: import name of the plugin package
    origin: str  #: "builtin", "dir:<path>" or "entry-point:<distribution>"
    directory: Path | None  #: folder holding manifest.json
    sys_path: str | None = None  #: folder to put on sys.path before importing (plugin_dirs)
    dist_version: str | None = None


@dataclass
class PluginRecord:
    """One plugin as the registry knows it."""

    source: PluginSource
    manifest: dict[str, Any] | None = None
    status: str = "discovered"  #: discovered | loaded | quarantined | disabled
    reason: str | None = None
    module: Any = None
    cities: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.manifest["name"] if self.manifest else self.source.name

    @property
    def version(self) -> str | None:
        return self.manifest["version"] if self.manifest else self.source.dist_version

    def quarantine(self, reason: str) -> None:
        self.status, self.reason = "quarantined", reason


def _scan_folder(folder: Path, origin: str, module_prefix: str, sys_path: str | None) -> list[PluginSource]:
    out: list[PluginSource] = []
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return out
    for sub in entries:
        if sub.is_dir() and (sub / MANIFEST).is_file() and not sub.name.startswith(("_", ".")):
            out.append(PluginSource(sub.name, module_prefix + sub.name, origin, sub, sys_path))
    return out


def discover(settings: Settings) -> list[PluginSource]:
    """Every plugin source, deduplicated by module name, in precedence order."""
    sources: list[PluginSource] = []
    if settings.builtin_plugins:
        # the package's folders, found without executing it: the runtime imports no plugin code
        # until a city is called (the registry then imports the plugin module by name)
        spec = importlib.util.find_spec(BUILTIN_PACKAGE)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            sources += _scan_folder(Path(folder), "builtin", BUILTIN_PACKAGE + ".", None)
    for extra in settings.plugin_dirs:
        sources += _scan_folder(Path(extra), f"dir:{extra}", "", str(extra))
    if settings.entry_points:
        sources += _entry_point_sources()
    seen, unique = set(), []
    for s in sources:
        if s.module not in seen:
            seen.add(s.module)
            unique.append(s)
    return unique


def _entry_point_sources() -> list[PluginSource]:
    from importlib.metadata import entry_points

    out = []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        module = ep.value.split(":")[0].strip()
        directory = None
        try:
            spec = importlib.util.find_spec(module)
            if spec and spec.submodule_search_locations:
                directory = Path(list(spec.submodule_search_locations)[0])
        except (ImportError, ValueError):
            directory = None
        dist = getattr(ep, "dist", None)
        out.append(PluginSource(ep.name, module, f"entry-point:{dist.name if dist else '?'}", directory,
                                dist_version=dist.version if dist else None))
    return out


def read_manifest(record: PluginRecord) -> None:
    """Read and validate the record's manifest; quarantine the record if it is unusable."""
    src = record.source
    if src.directory is None:
        record.quarantine(f"cannot locate the package {src.module!r} of entry point {src.name!r}")
        return
    path = src.directory / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        record.quarantine(f"no {MANIFEST} in {src.directory}")
        return
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        record.quarantine(f"{MANIFEST} is not valid JSON: {err}")
        return
    problem = validator("manifest").first_problem(data)
    if problem is not None:
        record.quarantine(f"invalid {MANIFEST}: {problem}")
        return
    record.manifest = data
    record.cities = tuple(c["code"] for c in data["cities"])
    incompatible = contract_problem(data["contract_version"]) or newer_operations(data)
    if incompatible:
        record.quarantine(incompatible)


def newer_operations(manifest: dict[str, Any]) -> str | None:
    """Why a manifest declares operations its ``contract_version`` does not have (e.g.
    ``settle_medical``, new in 1.2, in a plugin targeting 1.1), or None."""
    target = tuple(int(x) for x in manifest["contract_version"].split("."))
    newer = [f"{name} ({OPERATIONS[name].since})" for name in manifest["capabilities"]["operations"]
             if name in OPERATIONS and tuple(int(x) for x in OPERATIONS[name].since.split(".")) > target]
    if newer:
        return (f"declares {', '.join(newer)} but targets contract {manifest['contract_version']}: set "
                "contract_version to the newest of them")
    return None


def contract_problem(version: str, current: str = CONTRACT_VERSION) -> str | None:
    """Why a plugin targeting contract ``version`` cannot load, or ``None`` if compatible
    (same major, minor not newer than ours)."""
    major, minor = (int(x) for x in version.split("."))
    cur_major, cur_minor = (int(x) for x in current.split("."))
    if major != cur_major:
        return f"incompatible contract: plugin targets {version}, framework implements {current} (major differs)"
    if minor > cur_minor:
        return f"plugin targets contract {version}, newer than the framework's {current}: upgrade essc-adapters"
    return None
