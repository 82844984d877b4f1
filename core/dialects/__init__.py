"""Dialects as data: a city protocol described by a spec (``schemas/dialect.schema.json``),
from which the framework derives the adapter (:class:`SpecAdapter`) and the mock's city side
(``essc.mockserver.spec_dialect``). See docs/dialect-specs.md."""
from __future__ import annotations

from .adapter import SpecAdapter
from .catalog import DialectEntry, dialect, dialects
from .spec import DialectSpec, SpecError, load_spec, parse_spec

__all__ = ["DialectSpec", "SpecError", "load_spec", "parse_spec", "SpecAdapter", "DialectEntry", "dialect",
           "dialects"]
