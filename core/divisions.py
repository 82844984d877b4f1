"""Division codes (GB/T 2260): the provincial-level divisions, and the codes that need special
care (GB/T 2260 changes over time)."""
from __future__ import annotations

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

#: Abolished divisions still seen inside old ID numbers: code -> (name, merged into code, name, year).
ABOLISHED = {
    "371200": ("莱芜市", "370100", "济南市", 2019),  # merged into Jinan in January 2019
}


def abolished_hint(code: str) -> str | None:
    """A sentence explaining an abolished division code, or ``None``."""
    if code not in ABOLISHED:
        return None
    name, into, into_name, year = ABOLISHED[code]
    return f"division {code} ({name}) was abolished in {year} and merged into {into} ({into_name})"


def province_of(code: str) -> str | None:
    """The province (short form, :data:`PROVINCES`) of a 6-digit division code, or ``None``."""
    if len(code) != 6 or not code.isascii() or not code.isdigit():
        return None
    return PROVINCES.get(code[:2])
