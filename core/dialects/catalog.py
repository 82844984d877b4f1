"""Which dialects are installed: the built-in specs (``essc.dialects``) and whatever any
installed package registers through the ``essc.dialects`` entry-point group.

An entry point names a callable returning an iterable of dialects, each either a spec file
(``str`` or ``Path``) or a :class:`DialectEntry` - for a protocol a spec cannot express,
an entry with ``city_side`` (``module:function(app)``, registering the mock's Flask
blueprint) and adapters written in Python::

    [options.entry_points]
    essc.dialects =
        wuxi-soap = essc_wuxi.dialect:essc_dialects
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from ..masking import get_logger
from .spec import DialectSpec, SpecError, load_spec

__all__ = ["DialectEntry", "dialects", "dialect", "reset", "ENTRY_POINT_GROUP", "spec_problems"]

log = get_logger("essc.dialects")

ENTRY_POINT_GROUP = "essc.dialects"


@dataclass
class DialectEntry:
    """One installed dialect. ``spec`` gives both sides unless ``city_side`` (code for the
    mock) is given; without a spec the platform side is the plugins' own code."""

    name: str
    origin: str = "?"
    spec: DialectSpec | None = None
    city_side: str | None = None
    title: str = ""

    @property
    def platform(self) -> str:
        return "spec" if self.spec is not None else "code"

    @property
    def city(self) -> str:
        return "code" if self.city_side else ("spec" if self.spec is not None else "none")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title or (self.spec.title if self.spec else ""),
                "origin": self.origin, "platform_side": self.platform, "city_side": self.city,
                "source": self.spec.source if self.spec else None}


_lock = threading.Lock()
_cache: dict[str, DialectEntry] | None = None
_problems: list[str] = []


def _builtin() -> Iterable[DialectEntry]:
    folder = resources.files("essc.dialects")
    for item in sorted(folder.iterdir(), key=lambda p: p.name):
        if item.name.endswith((".yaml", ".yml", ".json")):
            spec = load_spec(Path(str(item)))
            yield DialectEntry(spec.name, "builtin", spec)


def _from_entry_points() -> Iterable[DialectEntry]:
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist.name if ep.dist is not None else "?"
        try:
            provided = ep.load()()
            for item in provided:
                if isinstance(item, DialectEntry):
                    item.origin = f"entry-point:{dist}"
                    yield item
                else:
                    spec = load_spec(Path(item))
                    yield DialectEntry(spec.name, f"entry-point:{dist}", spec)
        except SpecError as err:
            _problems.append(f"entry point {ep.name} ({dist}): {err}")
        except Exception as err:  # a broken package must not take the others down
            _problems.append(f"entry point {ep.name} ({dist}): {type(err).__name__}: {err}")


def dialects() -> dict[str, DialectEntry]:
    """Every installed dialect by name (computed once per process)."""
    global _cache
    with _lock:
        if _cache is None:
            found: dict[str, DialectEntry] = {}
            for entry in (*_builtin(), *_from_entry_points()):
                if entry.name in found:
                    _problems.append(f"dialect {entry.name!r} of {entry.origin} is already registered by "
                                     f"{found[entry.name].origin}; ignored")
                    continue
                found[entry.name] = entry
            for problem in _problems:
                log.warning("dialect not registered: %s", problem)
            _cache = found
        return _cache


def dialect(name: str) -> DialectEntry | None:
    return dialects().get(name)


def spec_problems() -> list[str]:
    dialects()
    return list(_problems)


def reset() -> None:
    """Forget the catalog (tests that install a dialect package in this process)."""
    global _cache
    with _lock:
        _cache = None
        _problems.clear()
