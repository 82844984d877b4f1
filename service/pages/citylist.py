"""The city list of the citizen's pages: the country's cities (essc.service.cities) grouped by
province, provinces in pinyin order with an A-Z index, narrowed by the same search as
``GET /v1/cities?q=``."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..search import reading


@dataclass
class Province:
    name: str
    letter: str  #: A-Z, the initial of the province's pinyin
    anchor: str  #: id of the section (ASCII)
    pinyin: str
    cities: list[dict] = field(default_factory=list)


def rows(directory: Any, places) -> list[dict]:
    """The cities as the page shows them: ``{code, name, status}``, in the given order."""
    return [{"code": p.code, "name": p.short or p.name, "status": directory.status(p.code)[0]} for p in places]


def group(directory: Any, places) -> list[Province]:
    """Provinces in pinyin order, each with its cities (``{code, name, status}``) in the given
    order; ``directory`` is the service's CityDirectory, ``places`` what it found."""
    by_code: dict[str, Province] = {}
    for place in places:
        prov = by_code.get(place.province)
        if prov is None:
            row = directory.province_row(place.province)
            name = row["short"] or row["name"]
            read = reading(name).pinyin or "zz"
            prov = by_code[place.province] = Province(name, read[0].upper(), "p-" + (place.province or "other"), read)
        prov.cities.extend(rows(directory, [place]))
    return sorted(by_code.values(), key=lambda p: (p.anchor == "p-other", p.pinyin, p.name))


def letters(provinces: list[Province]) -> list[tuple[str, str | None]]:
    """``(letter, anchor of its first province or None)`` for A-Z."""
    first: dict[str, str] = {}
    for prov in provinces:
        first.setdefault(prov.letter, prov.anchor)
    return [(chr(c), first.get(chr(c))) for c in range(ord("A"), ord("Z") + 1)]
