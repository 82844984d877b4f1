"""Medical settlement at the mock's cities (docs/mock.md "Medical settlement"): simple,
documented fund rules per city, and the idempotent pre-settle / confirm / reverse of one
settlement id.

The fund share of a bill: each line counts towards the fund by its category's covered share
(:data:`COVERED_BP`: drugs, exams, treatment and beds fully, materials 80 % - 乙类先行自付 -, other
items not at all); the covered amount first fills what is left of the citizen's yearly
deductible (起付线); the fund pays ``ratio`` of the rest (``cross_region_ratio`` for busi_type
04, 异地就医), up to what is left of the yearly cap (封顶线). The citizen pays the remainder.
A pre-settlement holds its deductible and fund share at once (a second bill sees them used);
a reversal releases them.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from .state import Settlement

__all__ = ["FundRules", "DEFAULT_RULES", "CITY_RULES", "COVERED_BP", "rules_for", "split", "bill_digest",
           "decide"]

#: category -> share of a line the fund covers, basis points
COVERED_BP = {"drug": 10000, "exam": 10000, "treatment": 10000, "material": 8000, "bed": 10000, "other": 0}


@dataclass(frozen=True)
class FundRules:
    """A city's fund rules for one citizen and calendar year (amounts in fen)."""

    deductible_cents: int
    ratio_bp: int
    cross_region_ratio_bp: int
    yearly_cap_cents: int


#: the rules of every mock city without its own
DEFAULT_RULES = FundRules(deductible_cents=80_000, ratio_bp=8000, cross_region_ratio_bp=7000,
                          yearly_cap_cents=30_000_000)
#: cities with rules of their own (chosen for the mock, not any city's real rules)
CITY_RULES = {
    "330100": FundRules(70_000, 8500, 7500, 40_000_000),  # 杭州
    "110000": FundRules(180_000, 8500, 7000, 50_000_000),  # 北京
    "310000": FundRules(150_000, 7000, 6000, 60_000_000),  # 上海
    "510100": FundRules(60_000, 7500, 6500, 25_000_000),  # 成都
}


def rules_for(city: str) -> FundRules:
    return CITY_RULES.get(city, DEFAULT_RULES)


def split(rules: FundRules, busi_type: str, items: list[Mapping[str, Any]], deductible_used: int,
          fund_used: int) -> tuple[int, int, int]:
    """``(total, fund share, deductible this bill uses)`` in fen."""
    total = sum(int(item["amount_cents"]) for item in items)
    covered = sum(int(item["amount_cents"]) * COVERED_BP.get(str(item["category"]), 0) // 10000 for item in items)
    deductible = min(covered, max(0, rules.deductible_cents - deductible_used))
    ratio = rules.cross_region_ratio_bp if busi_type == "04" else rules.ratio_bp
    fund = min((covered - deductible) * ratio // 10000, max(0, rules.yearly_cap_cents - fund_used))
    return total, fund, deductible


def bill_digest(request: Mapping[str, Any]) -> str:
    """What identifies the bill of a pre-settlement: busi_type, hospital and items."""
    bill = {k: request.get(k) for k in ("busi_type", "hospital", "items")}
    return hashlib.sha256(json.dumps(bill, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


class Refusal(Exception):
    """``decide`` refuses: ``kind`` (settlement_unknown, settlement_conflict, card_status) + data."""

    def __init__(self, kind: str, **data: Any) -> None:
        super().__init__(kind)
        self.kind, self.data = kind, data


def decide(request: Mapping[str, Any], *, city: str, year: int, seed: int, card_status: str,
           ) -> Callable[[Settlement | None, Callable[[str, int], tuple[int, int]]], Settlement]:
    """The change ``request`` makes to its settlement (run by MockState.change_settlement)."""
    action, sid, who = request["action"], request["settlement_id"], request["aac002"]

    def run(current: Settlement | None, usage: Callable[[str, int], tuple[int, int]]) -> Settlement:
        if current is not None and current.id_number != who:  # another citizen's id: say nothing of it
            raise Refusal("settlement_conflict" if action == "pre_settle" else "settlement_unknown")
        if action == "pre_settle":
            if current is not None:
                if current.digest != bill_digest(request) or current.total_cents == 0:
                    raise Refusal("settlement_conflict", state=current.state)
                return current  # the same bill again: the same settlement, as it stands now
            if card_status != "normal":
                raise Refusal("card_status", status=card_status)
            deductible_used, fund_used = usage(who, year)
            total, fund, deductible = split(rules_for(city), request["busi_type"], list(request["items"]),
                                            deductible_used, fund_used)
            ref = "JS" + hashlib.sha256(f"{seed}|settle|{city}|{sid}".encode()).hexdigest()[:20].upper()
            return Settlement(city=city, settlement_id=sid, id_number=who, digest=bill_digest(request),
                              state="pre_settled", total_cents=total, fund_cents=fund, deductible_cents=deductible,
                              year=year, city_ref=ref, busi_type=request["busi_type"],
                              hospital=str(request["hospital"]["code"]))
        if action == "confirm":
            if current is None:
                raise Refusal("settlement_unknown")
            if current.state == "reversed":
                raise Refusal("settlement_conflict", state="reversed")
            if current.state == "settled":
                return current
            if card_status != "normal":
                raise Refusal("card_status", status=card_status)
            return replace(current, state="settled")
        # reverse: of a held or settled bill releases it; of an id never seen burns the id
        if current is None:
            ref = "JS" + hashlib.sha256(f"{seed}|settle|{city}|{sid}".encode()).hexdigest()[:20].upper()
            return Settlement(city=city, settlement_id=sid, id_number=who, digest="", state="reversed", total_cents=0,
                              fund_cents=0, deductible_cents=0, year=year, city_ref=ref)
        return current if current.state == "reversed" else replace(current, state="reversed")

    return run
