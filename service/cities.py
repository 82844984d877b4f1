"""The country's city list as a citizen chooses from it (``GET /v1/cities``, the channel pages'
city picker, ``essc activate --city``): every city of :func:`essc.core.divisions.cities`, plus any
other code a plugin serves (a province's own system such as 330000, a county), each with its
status:

* ``opened`` - served by a plugin and opened (its manifest says so);
* ``not_opened`` - served, but the plugin's manifest says the city has not opened the e-SSC;
* ``no_plugin`` - no usable plugin serves it: an activation ends ``city_not_opened`` without a
  call (or is refused ``PLUGIN_UNAVAILABLE`` while the city's plugin is quarantined or disabled:
  :meth:`CityDirectory.operator_rows` shows operators which plugin and why).

The status is read from the registry at every request (one dict lookup per city), so a plugin
quarantined while loading shows at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from essc.core import divisions
from essc.core.registry import Registry

from .search import READINGS_FILE, CitySearch, compute_readings, reading

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
        self._provinces = {p.code: p for p in divisions.provinces()}
        for info in registry.cities():  # served codes the country list lacks
            places.setdefault(info.code, self._outside(info.code, info.name))
        self.places = dict(sorted(places.items()))
        self.index: CitySearch[Place] = CitySearch(self.places.values())

    def _outside(self, code: str, name: str) -> Place:
        """A code a plugin claims outside the country's list, under its province if it has one."""
        prefix = code[:2] + "0000"
        return Place(code, name, divisions.short_name(name), prefix if prefix in self._provinces else "")

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
        read = reading(place.short)
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

    def operator_rows(self) -> list[dict[str, Any]]:
        """Every city for an operator (the console), by code: :meth:`row` plus ``province`` and,
        where a plugin claims the city (loaded, not loaded yet, quarantined or disabled),
        ``plugin``, ``plugin_version``, ``plugin_state`` and ``plugin_reason``; where the city was
        called, ``breaker`` (closed / open / half_open), ``in_flight`` and ``rejected``. Codes that
        only a quarantined or disabled plugin claims are included."""
        claims = {code: rec for rec in self.registry.plugins for code in rec.cities}
        guards = self.registry.resilience_snapshot()
        rows = []
        for code in sorted(set(self.places) | set(claims)):
            rec = claims.get(code)
            place = self.places.get(code) or self._outside(code, _manifest_name(rec, code))
            row: dict[str, Any] = {**self.row(place), "province": self.province_row(place.province)}
            if rec is not None:
                row.update(plugin=rec.name, plugin_version=rec.version, plugin_state=rec.status,
                           plugin_reason=rec.reason)
            guard = guards.get(code)
            if guard is not None:
                row.update(breaker=guard["breaker"], in_flight=guard["in_flight"], rejected=guard["rejected"])
            rows.append(row)
        return rows

    def find(self, query: str | None, limit: int | None = None) -> list[Place]:
        """Places matching ``query``, best first."""
        return self.index.search(query, limit)

    def search(self, query: str | None, limit: int | None = None) -> list[dict[str, Any]]:
        """Rows matching ``query``, best first, each with its ``province`` ({code, name, short})."""
        return [{**self.row(p), "province": self.province_row(p.province)} for p in self.find(query, limit)]


def _manifest_name(record: Any, code: str) -> str:
    """The name a plugin's manifest gives the city ``code`` (the code itself without a manifest)."""
    for city in ((record.manifest or {}).get("cities") or []) if record is not None else []:
        if city.get("code") == code:
            return str(city.get("name") or code)
    return code


def write_readings(path: str | None = None) -> int:
    """Compute ahead the readings of every name :class:`CityDirectory` indexes with the built-in
    plugins (essc.service.search) into ``readings.json`` (or ``path``); returns how many."""
    import json
    from pathlib import Path

    import pypinyin

    from essc.core.settings import Settings

    directory = CityDirectory(Registry(Settings(entry_points=False)).setup())
    names = sorted({p.short for p in directory.places.values()})
    table = {name: [list(primary), [list(a) for a in alternates]]
             for name in names for primary, alternates in [compute_readings(name)]}
    rows = ",\n".join(f"  {json.dumps(name, ensure_ascii=False)}: {json.dumps(table[name], ensure_ascii=False)}"
                       for name in names)  # one name a line: a regenerated file diffs by name
    target = Path(path) if path else Path(__file__).with_name(READINGS_FILE)
    target.write_text(f'{{"pypinyin": {json.dumps(pypinyin.__version__)}, "readings": {{\n{rows}\n}}}}\n',
                      encoding="utf-8")
    return len(table)


if __name__ == "__main__":  # python -m essc.service.cities: write the search's readings.json
    print(f"{write_readings()} readings written")
