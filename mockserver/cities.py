"""The mock's cities: their data (``cities.json``) and its validation."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from .clock import MAX_VIRTUAL_S

__all__ = ["MODES", "DIALECTS", "known_dialects", "City", "city_changes", "city_from_dict", "load_cities"]

MODES = ("supported", "delayed", "not_opened")
#: the dialects whose city side is hand-written in mockserver/dialects/
DIALECTS = ("rest-json", "pinyin-form", "xml-envelope", "gm-json")


def known_dialects() -> tuple[str, ...]:
    """Every dialect the mock plays: the hand-written ones and every installed dialect with a
    city side (a spec, or code registered through the essc.dialects entry points)."""
    from essc.core.dialects import dialects

    return DIALECTS + tuple(n for n, e in dialects().items() if n not in DIALECTS and e.city != "none")
CITY_CODE = re.compile(r"^[1-9][0-9]{5}$")


@dataclass(frozen=True)
class City:
    code: str
    name: str
    province: str
    dialect: str
    mode: str
    sync_delay_s: float = 0
    sync_after_attempts: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive_int_or_none(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key!r} must be an integer >= 1 or null")
    return value


def city_changes(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate the changeable fields of a city (mode, sync_delay_s, sync_after_attempts)."""
    out: dict[str, Any] = {}
    if "mode" in data:
        if data["mode"] not in MODES:
            raise ValueError(f"'mode' must be one of {', '.join(MODES)}")
        out["mode"] = data["mode"]
    if "sync_delay_s" in data:
        delay = data["sync_delay_s"]
        if (isinstance(delay, bool) or not isinstance(delay, (int, float)) or not math.isfinite(delay)
                or not 0 <= delay <= MAX_VIRTUAL_S):
            raise ValueError(f"'sync_delay_s' must be a finite number of seconds between 0 and {MAX_VIRTUAL_S}"
                             " (not NaN or Infinity)")
        out["sync_delay_s"] = delay
    if "sync_after_attempts" in data:
        out["sync_after_attempts"] = _positive_int_or_none(data["sync_after_attempts"], "sync_after_attempts")
    return out


def city_from_dict(data: Any) -> City:
    """A :class:`City` from JSON (cities.json or ``POST /__admin/cities``); ``ValueError`` if invalid."""
    if not isinstance(data, dict):
        raise ValueError("a city must be a JSON object")
    allowed = {"code", "name", "province", "dialect", "mode", "sync_delay_s", "sync_after_attempts"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    for key in ("code", "name", "province", "dialect", "mode"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise ValueError(f"{key!r} is required (a non-empty string)")
    if not CITY_CODE.match(data["code"]):
        raise ValueError("'code' must be a 6-digit division code")
    if data["dialect"] not in known_dialects():
        raise ValueError(f"'dialect' must be one of {', '.join(known_dialects())}")
    changes = city_changes(data)
    return City(code=data["code"], name=data["name"].strip(), province=data["province"].strip(),
                dialect=data["dialect"], **changes)


def load_cities(path: str | None = None) -> list[City]:
    """The cities of ``path``, or of the packaged ``cities.json``."""
    if path is None:
        text = resources.files("essc.mockserver").joinpath("cities.json").read_text(encoding="utf-8")
    else:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    return [city_from_dict(item) for item in json.loads(text)]
