"""The mock's contribution histories (参保缴费记录, docs/mock.md "Contributions"): plausible and
deterministic, drawn from a generator seeded with the mock's seed and the citizen's ID number,
so the same citizen has the same history in every process and every query of any period.

* Work starts 18 to 24 years after the birth date inside the ID number (not before 1995-01,
  when the city systems' records begin) and ends at retirement: 60 for men, 55 for women.
* Up to two gaps of 3 to 12 months (between jobs) have no entries at all.
* Every insured month has one entry per insurance type: 110 pension (24 % of the base,
  employer 16 % + personal 8 %), 210 unemployment (1 %), 310 medical (10 %), 410 work injury
  (0.4 %, employer only) and, until 2019-12, 510 maternity (0.8 %; merged into medical from 2020).
* The base (缴费基数) is drawn once (3,500 to 12,000 yuan in 2010) and grows 6 % a year, whole
  yuan, never below 1,500 yuan.
* Months from the mock's current month on have no entry yet; one citizen in three has the
  previous month ``owed`` (欠缴: due, not collected, ``paid_cents`` 0).
"""
from __future__ import annotations

import datetime as dt
import random

from .citizens import derive_seed

__all__ = ["RATES_BP", "MATERNITY_UNTIL", "history"]

#: insurance type -> rate of the base in basis points (employer + personal)
RATES_BP = {"110": 2400, "210": 100, "310": 1000, "410": 40, "510": 80}
#: the last month of separate maternity insurance (生育保险 merged into medical insurance from 2020)
MATERNITY_UNTIL = 201912
RECORDS_BEGIN = 199501


def _index(yyyymm: int) -> int:
    return (yyyymm // 100) * 12 + yyyymm % 100 - 1


def _month(index: int) -> int:
    return (index // 12) * 100 + index % 12 + 1


def _base_cents(base_2010_yuan: int, year: int) -> int:
    return max(1500, round(base_2010_yuan * 1.06 ** (year - 2010))) * 100


def history(seed: int, id_number: str, from_month: str, to_month: str, today: dt.date) -> list[dict[str, object]]:
    """The entries of ``from_month``..``to_month`` (``YYYYMM``) as ``contribution_history.months``."""
    rng = random.Random(derive_seed(seed, "contributions", id_number))
    birth = dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))
    male = int(id_number[16]) % 2 == 1
    first = max(_index(RECORDS_BEGIN), _index(birth.year * 100 + birth.month) + 12 * rng.randint(18, 24))
    last = _index(birth.year * 100 + birth.month) + 12 * (60 if male else 55) - 1
    current = _index(today.year * 100 + today.month)
    last = min(last, current - 1)
    base_2010 = rng.randint(3500, 12000)
    gaps: list[range] = []
    for _ in range(rng.randint(0, 2)):
        if last - first > 48:
            start = rng.randint(first + 12, last - 24)
            gaps.append(range(start, start + rng.randint(3, 12)))
    owed = rng.random() < 1 / 3
    entries: list[dict[str, object]] = []
    for index in range(max(first, _index(int(from_month))), min(last, _index(int(to_month))) + 1):
        if any(index in gap for gap in gaps):
            continue
        month = _month(index)
        base = _base_cents(base_2010, month // 100)
        status = "owed" if owed and index == current - 1 else "paid"
        for insurance, rate in RATES_BP.items():
            if insurance == "510" and month > MATERNITY_UNTIL:
                continue
            entries.append({"month": f"{month:06d}", "insurance": insurance, "base_cents": base,
                            "paid_cents": 0 if status == "owed" else base * rate // 10000, "status": status})
    return entries
