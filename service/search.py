"""City search for the "choose your insured city" step: by Chinese name (prefix or any part),
full pinyin, pinyin initials or a prefix of either, case-insensitive, spaces ignored ("杭州",
"杭州市", "hangzhou", "hang zhou", "hz", "HZ", "hang"), or a division-code prefix ("3301").

Every key a query can be is computed once, when the index is built: the exact keys, every prefix
of the pinyin keys and of the names, every part of the Chinese names, every prefix of the code.
A query is then one dict lookup, whatever the number of cities (``bench/city_search_bench.py``
measures it over the whole country). Ranks: 0 exact (name, short name, full pinyin, initials,
code), 1 prefix, 2 a part of the Chinese name, 3 another reading of a polyphonic character;
within a rank, by code.

Pinyin is read from the short name (杭州 for 杭州市, 黔东南 for 黔东南苗族侗族自治州:
:func:`essc.core.divisions.short_name`), so "hz" is exactly 杭州. pypinyin reads characters in
context from its phrase dictionary, which is right for most place names (重庆 -> chongqing,
长沙 -> changsha, 厦门 -> xiamen), but it can misread rare place names, surname-like readings
and polyphones (曾都 is Zengdu, not Cengdou; 单县 is Shanxian; 朝阳 is Chaoyang). We handle that
in two ways:

* :data:`READINGS` - a small override table of authoritative readings that wins over
  pypinyin (add a line when a city is misread; the initials follow from it);
* every other reading of a polyphonic character (``pinyin(..., heteronym=True)``) is indexed
  as a *secondary* key, ranked below the primary reading, so a citizen who types the other
  reading still finds the city (capped, so long names cannot explode the index).

The readings of every name the service indexes with its built-in plugins (the country's list
and the codes they serve) are computed ahead, into ``readings.json`` (``python -m
essc.service.cities`` writes it; tests/service/test_search.py checks it against pypinyin):
pypinyin's phrase dictionary costs ~54 MB in every API process and is imported only for a name
the file lacks (a third-party plugin's city).
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Generic, Protocol, TypeVar

from essc.core.divisions import short_name

#: the file of readings computed ahead (see the module's docstring)
READINGS_FILE = "readings.json"

#: Authoritative readings of place names pypinyin gets wrong or that are polyphonic (every short
#: name of the country's list was checked against pypinyin's reading).
READINGS: dict[str, tuple[str, ...]] = {
    "重庆": ("chong", "qing"),
    "曾都": ("zeng", "du"),
    "单县": ("shan", "xian"),
    "朝阳": ("chao", "yang"),
    "六安": ("lu", "an"),
    "蚌埠": ("beng", "bu"),
    "番禺": ("pan", "yu"),
    "乐清": ("yue", "qing"),
    "长沙": ("chang", "sha"),
    "长春": ("chang", "chun"),
    "长治": ("chang", "zhi"),
    "漯河": ("luo", "he"),
    "锡林郭勒": ("xi", "lin", "guo", "le"),
    "克孜勒苏": ("ke", "zi", "le", "su"),
    "阿勒泰": ("a", "le", "tai"),
}
_MAX_ALTERNATES = 16
_SUFFIXES = ("市", "地区", "自治州", "盟")  # 杭州市 finds 杭州; 白杨市 finds 白杨市


class _Place(Protocol):
    @property
    def code(self) -> str: ...

    @property
    def name(self) -> str: ...


P = TypeVar("P", bound=_Place)


@dataclass(frozen=True)
class Reading:
    """How a city's short name reads: ``pinyin`` "hangzhou", ``initials`` "hz"."""

    pinyin: str
    initials: str


@lru_cache(maxsize=1)
def computed_ahead() -> dict[str, Any]:
    """``{"pypinyin": version, "readings": {name: [primary, alternates]}}`` of ``readings.json``."""
    return json.loads(resources.files(__package__).joinpath(READINGS_FILE).read_text(encoding="utf-8"))


@lru_cache(maxsize=4096)
def _readings(name: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """(primary syllables, alternative syllable lists) of a Chinese name."""
    ahead = computed_ahead()["readings"].get(name)
    if ahead is not None:
        return tuple(ahead[0]), tuple(tuple(a) for a in ahead[1])
    return compute_readings(name)


def compute_readings(name: str) -> tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]:
    """What :func:`_readings` answers, read by pypinyin now (imported on first use)."""
    from pypinyin import Style, lazy_pinyin, pinyin

    if name in READINGS:
        primary = list(READINGS[name])
    else:
        primary = lazy_pinyin(name, style=Style.NORMAL, errors="ignore")
    options = pinyin(name, style=Style.NORMAL, heteronym=True, errors="ignore")
    alternates = []
    if len(options) == len(primary):
        for combo in itertools.islice(itertools.product(*options), _MAX_ALTERNATES):
            if list(combo) != primary:
                alternates.append(tuple(combo))
    return tuple(primary), tuple(alternates)


def reading(name: str) -> Reading:
    """The primary reading of a (short) Chinese name."""
    primary, _ = _readings(name)
    return Reading("".join(primary).lower(), "".join(s[0] for s in primary if s).lower())


def _keys(syllables: Iterable[str]) -> set[str]:
    syllables = list(syllables)
    full = "".join(syllables).lower()
    initials = "".join(s[0] for s in syllables if s).lower()
    keys = {full, initials}
    if "v" in full or "ü" in full:  # 吕梁: lvliang / luliang / lüliang
        keys |= {full.replace("v", "u").replace("ü", "u"), full.replace("ü", "v")}
    return {k for k in keys if k}


def _normalise(text: str) -> str:
    text = "".join(text.split()).replace("'", "").replace("’", "").lower()
    for suffix in _SUFFIXES:
        if len(text) > len(suffix) and text.endswith(suffix):
            return text[: -len(suffix)]
    return text


def _prefixes(word: str) -> Iterable[str]:
    return (word[:n] for n in range(1, len(word) + 1))


@lru_cache(maxsize=8)
def _build(places: tuple[tuple[str, str, str], ...]) -> dict[str, tuple[str, ...]]:
    """Every query key -> the codes it finds, best first. ``places``: (code, name, short) by code."""
    best: dict[str, dict[str, int]] = {}

    def add(key: str, code: str, rank: int) -> None:
        found = best.setdefault(key, {})
        if rank < found.get(code, 9):
            found[code] = rank

    for code, name, short in places:
        primary, alternates = _readings(short)
        keys = _keys(primary)
        for key in {name, short, _normalise(name), code, *keys}:
            add(key.lower(), code, 0)
        for word in (name, short, *keys):
            for prefix in _prefixes(word.lower()):
                add(prefix, code, 1)
        for prefix in _prefixes(code):
            add(prefix, code, 1)
        for i in range(len(name)):  # every part of the Chinese name: 木齐 finds 乌鲁木齐
            for j in range(i + 1, len(name) + 1):
                add(name[i:j], code, 2)
        for alternate in alternates:
            for key in _keys(alternate) - keys:
                for prefix in _prefixes(key):
                    add(prefix, code, 3)
    return {key: tuple(c for c, _ in sorted(found.items(), key=lambda cr: (cr[1], cr[0])))
            for key, found in best.items()}


class CitySearch(Generic[P]):
    """Search over a fixed list of places (anything with ``code`` and ``name``; a ``short`` name is
    used for pinyin when it has one, else :func:`short_name` of the name)."""

    def __init__(self, places: Iterable[P]) -> None:
        self._places: dict[str, P] = {p.code: p for p in sorted(places, key=lambda p: p.code)}
        self._shorts = {code: getattr(p, "short", None) or short_name(p.name) for code, p in self._places.items()}
        self._index = _build(tuple((code, p.name, self._shorts[code]) for code, p in self._places.items()))
        self._all = list(self._places.values())

    def __len__(self) -> int:
        return len(self._places)

    def reading(self, code: str) -> Reading:
        """The pinyin and initials of the place ``code`` (of its short name)."""
        return reading(self._shorts[code])

    def search(self, query: str | None, limit: int | None = None) -> list[P]:
        """Places matching ``query``, best first (all places, by code, for an empty query)."""
        q = "".join((query or "").split()).replace("'", "").replace("’", "").lower()
        if not q:
            return self._all[:limit] if limit else list(self._all)
        codes = self._index.get(q) or self._index.get(_normalise(q)) or ()
        if limit:
            codes = codes[:limit]
        places = self._places
        return [places[c] for c in codes]

