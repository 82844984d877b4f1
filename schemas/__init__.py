"""The JSON Schemas (draft 2020-12) of the e-SSC contract: the one source of truth.

The files ship as package data; :func:`schema_path` finds one, :func:`load` reads it.
"""
from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent
BASE_URI = "https://essc-adapters.dev/schemas/"


def names() -> list[str]:
    """Names of all schemas (``card_record`` for ``card_record.schema.json``)."""
    return sorted(p.name[: -len(".schema.json")] for p in SCHEMA_DIR.glob("*.schema.json"))


def schema_path(name: str) -> Path:
    return SCHEMA_DIR / f"{name}.schema.json"


@cache
def load(name: str) -> dict[str, Any]:
    with schema_path(name).open(encoding="utf-8") as fh:
        schema: dict[str, Any] = json.load(fh)
    return schema
