"""The city list of the citizen's pages: cities grouped by province, provinces in pinyin
order with an A-Z index, narrowed by the same search as ``GET /v1/cities?q=``."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from pypinyin import Style, lazy_pinyin

#: provinces whose first character pypinyin may read otherwise
_PROVINCE_READINGS = {"重庆": "chongqing", "陕西": "shanxi", "长沙": "changsha"}


@dataclass
class Province:
    name: str
    letter: str  #: A-Z, the initial of the province's pinyin
    anchor: str  #: id of the section (ASCII)
    cities: list[dict] = field(default_factory=list)


@lru_cache(maxsize=256)
def _pinyin(name: str) -> str:
    return _PROVINCE_READINGS.get(name) or "".join(lazy_pinyin(name, style=Style.NORMAL, errors="ignore")) or "z"


def city_row(city) -> dict:
    """A city (``CityInfo`` or its dict) as the page shows it: code, name, province, status
    (``opened`` or ``not_opened``)."""
    data = city.to_dict() if hasattr(city, "to_dict") else dict(city)
    status = data.get("status") or ("opened" if data.get("opened") else "not_opened")
    return {"code": data["code"], "name": data["name"], "province": data.get("province") or "其他",
            "status": "opened" if status == "opened" else "not_opened"}


def group(cities) -> list[Province]:
    """Provinces in pinyin order, each with its cities in the given order."""
    by_name: dict[str, Province] = {}
    for city in cities:
        row = city_row(city)
        prov = by_name.get(row["province"])
        if prov is None:
            reading = _pinyin(row["province"])
            prov = by_name[row["province"]] = Province(row["province"], reading[0].upper(), "p-" + row["code"][:2])
        prov.cities.append(row)
    return sorted(by_name.values(), key=lambda p: (_pinyin(p.name), p.name))


def letters(provinces: list[Province]) -> list[tuple[str, str | None]]:
    """``(letter, anchor of its first province or None)`` for A-Z."""
    first: dict[str, str] = {}
    for prov in provinces:
        first.setdefault(prov.letter, prov.anchor)
    return [(chr(c), first.get(chr(c))) for c in range(ord("A"), ord("Z") + 1)]
