"""The country's city list as a citizen chooses from it (``GET /v1/cities``, the channel pages'
city picker, ``essc activate --city``): every city of :func:`essc.core.divisions.cities`, plus any
other code a plugin serves (a province's own system such as 330000, a county), each with its
status:

* ``opened`` - served by a plugin and opened (its manifest says so);
* ``not_opened`` - served, but the plugin's manifest says the city has not opened the e-SSC;
* ``no_plugin`` - no plugin serves it: an activation ends ``city_not_opened`` without a call.

The status is read from the registry at every request (one dict lookup per city), so a plugin
quarantined while loading shows at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from essc.core import divisions
from essc.core.registry import Registry

from .search import CitySearch

OPENED, NOT_OPENED, NO_PLUGIN = "opened", "not_opened", "no_plugin"
STATUSES = (OPENED, NOT_OPENED, NO_PLUGIN)
OTHER_PROVINCE = "其他"  #: the group of served codes whose first two digits are no province


@dataclass(frozen=True)
class Place:
    """A city of the picker: ``name`` as GB/T 2260 writes it (杭州市), ``short`` (杭州)."""

    code: str
    name: str
    short: str
    province: str  # the province's code (330000), or "" when the code names no province


class CityDirectory:
    """The picker's cities with their status, grouped by province, searchable."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        places = {d.code: Place(d.code, d.name, d.short, d.province) for d in divisions.cities()}
        for info in registry.cities():  # served codes the country list lacks
            if info.code not in places:
                prefix = info.code[:2] + "0000"
                known = any(p.code == prefix for p in divisions.provinces())
                places[info.code] = Place(info.code, info.name, divisions.short_name(info.name),
                                          prefix if known else "")
        self.places = dict(sorted(places.items()))
        self.index: CitySearch[Place] = CitySearch(self.places.values())
        self._provinces = {p.code: p for p in divisions.provinces()}

    def __len__(self) -> int:
        return len(self.places)

    def place(self, code: str) -> Place | None:
        return self.places.get(code)

    def status(self, code: str) -> tuple[str, str | None]:
        """``(status, plugin or None)`` of the city ``code``."""
        info = self.registry.served(code)
        if info is None:
            return NO_PLUGIN, None
        return (OPENED if info.opened else NOT_OPENED), info.plugin

    def row(self, place: Place) -> dict[str, Any]:
        """One city as the API shows it: code, name, short, pinyin, initials, status, plugin (when served)."""
        read = self.index.reading(place.code)
        status, plugin = self.status(place.code)
        out = {"code": place.code, "name": place.name, "short": place.short, "pinyin": read.pinyin,
               "initials": read.initials, "status": status}
        if plugin is not None:
            out["plugin"] = plugin
        return out

    def province_row(self, code: str) -> dict[str, str]:
        prov = self._provinces.get(code)
        return {"code": code, "name": prov.name if prov else OTHER_PROVINCE, "short": prov.short if prov else ""}

    def grouped(self) -> dict[str, Any]:
        """``{"provinces": [{code, name, short, cities: [row, ...]}, ...]}``, provinces and cities by code
        (the group of codes that name no province, if any, last)."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for place in self.places.values():
            groups.setdefault(place.province, []).append(self.row(place))
        order = sorted(groups, key=lambda code: (code == "", code))
        return {"provinces": [{**self.province_row(code), "cities": groups[code]} for code in order]}

    def find(self, query: str | None, limit: int | None = None) -> list[Place]:
        """Places matching ``query``, best first."""
        return self.index.search(query, limit)

    def search(self, query: str | None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows matching ``query``, best first, each with its ``province`` ({code, name, short})."""
        return [{**self.row(p), "province": self.province_row(p.province)} for p in self.find(query, limit)]
