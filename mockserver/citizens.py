"""Deterministic synthetic citizens of the mock cities.

The same seed gives the same citizens in every process: every random draw comes from a
generator seeded with :func:`derive_seed` (SHA-256, never Python's per-process ``hash()``),
and Faker ``zh_CN`` (one shared instance, reseeded per city under a lock) gives the names.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import random
import re
import string
import threading
from dataclasses import dataclass
from typing import Any

from essc.core.idnumber import make_id_number

__all__ = ["SCENARIOS", "LAIWU", "Citizen", "derive_seed", "generate_citizens"]

#: Fixed scenarios of a city's first citizens, in this order (docs/mock.md); the rest are normal.
SCENARIOS = ("normal", "reported_lost", "sealed", "cancelled", "locked", "face_mismatch")
#: Contract card status of each scenario (face_mismatch holds a normal card).
CARD_STATUS = {s: ("normal" if s == "face_mismatch" else s) for s in SCENARIOS}
#: 莱芜市, abolished in 2019 (merged into 济南) - still inside older ID numbers.
LAIWU = "371200"
#: Citizens at these positions carry a division code other than their city's own.
FOREIGN_DIVISION_SLOTS = {7: LAIWU, 9: None}  # None: one of OTHER_DIVISIONS
OTHER_DIVISIONS = ("110105", "320102", "410102", "420106", "430104", "610113", "230103", "520102")
BANKS = ("中国工商银行", "中国农业银行", "中国银行", "中国建设银行", "交通银行", "中国邮政储蓄银行",
         "招商银行", "兴业银行", "浦发银行", "中信银行")
MOBILE_PREFIXES = ("13", "15", "17", "18", "19")
ADMIN_FIELDS = ("id_number", "name", "city", "scenario", "card_status", "face_match", "card_no", "mobile")

_BIRTH_FIRST = dt.date(1950, 1, 1)
_BIRTH_DAYS = (dt.date(2005, 12, 31) - _BIRTH_FIRST).days
_NOT_HAN = re.compile(r"[^\u4e00-\u9fff]")

_faker = None
_faker_lock = threading.Lock()


@dataclass(frozen=True)
class Citizen:
    id_number: str
    name: str
    city: str
    scenario: str
    card_status: str
    face_match: bool
    card_no: str
    card_id: str  # aaz501, 32 hex characters
    generation: str  # "2" or "3"
    bank: str
    mobile: str
    gender: str  # "M" or "F"; the ID number's sequence is odd for "M"

    def admin_view(self) -> dict[str, Any]:
        """The fields ``GET /__admin/citizens`` shows."""
        return {field: getattr(self, field) for field in ADMIN_FIELDS}


def derive_seed(*parts: object) -> int:
    """A 64-bit integer seed from ``parts``, identical in every process."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def _names(seed: int, genders: list[str]) -> list[str]:
    """Chinese names (2-4 Han characters) for ``genders``, reproducible from ``seed``."""
    global _faker
    with _faker_lock:
        if _faker is None:
            from faker import Faker  # slow import: only when the first citizens are made

            _faker = Faker("zh_CN")
        _faker.seed_instance(seed)
        names = []
        for gender in genders:
            make = _faker.name_male if gender == "M" else _faker.name_female
            for _ in range(50):
                name = _NOT_HAN.sub("", make())
                if 2 <= len(name) <= 4:
                    break
            else:  # pragma: no cover - Faker zh_CN names are Han characters
                name = "张伟" if gender == "M" else "王芳"
            names.append(name)
        return names


def generate_citizens(seed: int, city: str, count: int) -> list[Citizen]:
    """The ``count`` synthetic citizens of ``city`` for ``seed`` (same input, same output)."""
    city_seed = derive_seed(seed, "citizens", city)
    rng = random.Random(city_seed)
    genders = [rng.choice("MF") for _ in range(count)]
    names = _names(city_seed, genders)
    citizens: list[Citizen] = []
    seen: set[str] = set()
    for index, (gender, name) in enumerate(zip(genders, names, strict=True)):
        scenario = SCENARIOS[index] if index < len(SCENARIOS) else "normal"
        division = FOREIGN_DIVISION_SLOTS.get(index, city) or rng.choice(OTHER_DIVISIONS)
        while True:
            birth = _BIRTH_FIRST + dt.timedelta(days=rng.randrange(_BIRTH_DAYS + 1))
            sequence = rng.randrange(499) * 2 + (1 if gender == "M" else 2)  # 1..997 odd, 2..998 even
            id_number = make_id_number(division, birth, sequence)
            if id_number not in seen:
                seen.add(id_number)
                break
        citizens.append(Citizen(
            id_number=id_number,
            name=name,
            city=city,
            scenario=scenario,
            card_status=CARD_STATUS[scenario],
            face_match=scenario != "face_mismatch",
            card_no=rng.choice(string.ascii_uppercase) + f"{rng.randrange(10 ** 8):08d}",
            card_id=f"{rng.getrandbits(128):032X}",
            generation=rng.choice("233"),
            bank=rng.choice(BANKS),
            mobile=rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10 ** 9):09d}",
            gender=gender,
        ))
    return citizens
