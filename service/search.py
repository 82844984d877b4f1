"""City search for the "choose your insured city" step: by Chinese name, full pinyin or
pinyin initials, case-insensitive, prefixes allowed ("杭州", "hangzhou", "hz", "HZ", "hang").

The index is built once (pinyin conversion is the slow part); a query is a scan over a
few hundred short strings at most, which is faster than any smarter structure would pay off.

Pinyin caveat: pypinyin reads characters in context from its phrase dictionary, which is
right for most place names (重庆 -> chongqing, 长沙 -> changsha, 厦门 -> xiamen), but it can
misread rare place names, surname-like readings and polyphones (曾都 is Zengdu, not Cengdou;
单县 is Shanxian; 朝阳 is Chaoyang). We handle that in two ways:

* :data:`READINGS` - a small override table of authoritative readings that wins over
  pypinyin (add a line when a city is misread; the initials follow from it);
* every other reading of a polyphonic character (``pinyin(..., heteronym=True)``) is indexed
  as a *secondary* key, ranked below the primary reading, so a citizen who types the other
  reading still finds the city (capped, so long names cannot explode the index).
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

from pypinyin import Style, lazy_pinyin, pinyin

from essc.core.registry import CityInfo

#: Authoritative readings of place names pypinyin gets wrong or that are polyphonic.
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
}
_MAX_ALTERNATES = 16
_SUFFIXES = ("市", "地区", "自治州", "盟")  # 杭州市 finds 杭州; 白杨市 finds 白杨市


@dataclass(frozen=True)
class _Entry:
    city: CityInfo
    name: str
    primary: tuple[str, ...]  # full pinyin and initials of the primary reading
    secondary: tuple[str, ...]  # other readings (heteronyms, ü written u or v)


def _readings(name: str) -> tuple[list[str], list[list[str]]]:
    """(primary syllables, alternative syllable lists) of a Chinese name."""
    if name in READINGS:
        primary = list(READINGS[name])
    else:
        primary = lazy_pinyin(name, style=Style.NORMAL, errors="ignore")
    options = [opts for opts in pinyin(name, style=Style.NORMAL, heteronym=True, errors="ignore")]
    alternates = []
    if len(options) == len(primary):
        for combo in itertools.islice(itertools.product(*options), _MAX_ALTERNATES):
            if list(combo) != primary:
                alternates.append(list(combo))
    return primary, alternates


def _keys(syllables: list[str]) -> set[str]:
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


class CitySearch:
    """Search over a fixed list of cities (``Registry.cities()``)."""

    def __init__(self, cities: Iterable[CityInfo]) -> None:
        self._entries: list[_Entry] = []
        for city in sorted(cities, key=lambda c: c.code):
            primary, alternates = _readings(city.name)
            keys = _keys(primary)
            other = set().union(*(_keys(a) for a in alternates)) - keys if alternates else set()
            self._entries.append(_Entry(city, city.name, tuple(sorted(keys)), tuple(sorted(other))))

    def __len__(self) -> int:
        return len(self._entries)

    def search(self, query: str | None, limit: int | None = None) -> list[CityInfo]:
        """Cities matching ``query``, best first (all cities, by code, for an empty query)."""
        q = _normalise(query or "")
        if not q:
            hits = [e.city for e in self._entries]
            return hits[:limit] if limit else hits
        ranked = []
        for entry in self._entries:
            rank = self._rank(entry, q)
            if rank is not None:
                ranked.append((rank, entry.city.code, entry.city))
        ranked.sort(key=lambda r: (r[0], r[1]))
        hits = [r[2] for r in ranked]
        return hits[:limit] if limit else hits

    @staticmethod
    def _rank(entry: _Entry, q: str) -> int | None:
        name = entry.name
        if q == name or q == _normalise(name) or q in entry.primary:
            return 0  # exact: name, full pinyin or initials
        if name.startswith(q) or any(k.startswith(q) for k in entry.primary):
            return 1
        if q.isdigit() and entry.city.code.startswith(q):
            return 1  # a division-code prefix: 3301
        if q in name:
            return 2
        if any(k.startswith(q) for k in entry.secondary):
            return 3  # another reading of a polyphonic character
        return None
