"""``essc demo``'s medical settlement scene: a citizen enables payment (sign level 2), a hospital
scans the code and settles a bill (pre-settle, confirm); a second bill fails at its confirmation
(the card is reported lost in between) and is reversed, so nothing is charged. Both are compared
with the city's own ledger (the mock's ``/__admin/settlements``).

Run by essc.service.demo with the mock's admin client; the scene is skipped, saying why, when the
city's plugin does not settle online (contract 1.2's ``settle_medical``).
"""
from __future__ import annotations

import time

from essc.core.errors import EsscError

from . import states
from .payment import enable_payment, offered
from .qrcodes import QrCodes
from .relying import RelyingParty

__all__ = ["CITY", "HOSPITAL", "ITEMS", "run_scene"]

CITY = "330100"
HOSPITAL = RelyingParty("hospital-demo", kind="hospital", busi_types=frozenset({"02", "04"}), demo=True)
ITEMS = [
    {"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_cents": 8_600, "quantity": 2},
    {"code": "EX02", "name": "胸部CT", "category": "exam", "amount_cents": 120_000, "quantity": 1},
    {"code": "MT03", "name": "一次性输液器", "category": "material", "amount_cents": 1_500, "quantity": 3},
]
PASSWORD = {"face_token": "live-demo", "password": "147258"}  # the mock's e-SSC password (docs/dialects.md)
VERIFY = {"face_token": "live-demo", "sms_code": "123456"}


def _yuan(cents: int | None) -> str:
    return "-" if cents is None else f"¥{cents / 100:,.2f}"


def _activated(rt, citizen: dict, wait_s: float) -> dict:
    from .cli_flow import settle

    act = rt.service.submit(city=CITY, id_number=citizen["id_number"], name=citizen["name"], consent=True,
                            channel="demo")
    act = settle(rt, act, wait_s)
    if act["status"] == states.AWAITING_VERIFICATION:
        act, _ = rt.service.verify(act["id"], channel="demo", **VERIFY)
    return act


def _bill(rt, qrcodes, act_id: str, key: str) -> dict:
    code = qrcodes.issue(act_id, "demo")["qrcode"]
    body = {"qrcode": code, "busi_type": "02", "hospital": {"code": "H33010001", "name": "浙江大学医学院附属第一医院"},
            "items": ITEMS, "idempotency_key": key}
    row, _ = rt.settlements.create(HOSPITAL, body, qrcodes)
    return row


def _wait_legs(rt, sid: str, wait_s: float) -> dict:
    deadline = time.monotonic() + wait_s
    row = rt.settlements.store.get(sid)
    while row["state"] in ("pre_settling", "confirming", "reversing") and time.monotonic() < deadline:
        time.sleep(0.2)
        row = rt.settlements.store.get(sid)
    return row


def run_scene(console, rt, admin, wait_s: float = 30.0) -> list[tuple[str, str, str, bool]]:
    """Play the scene; returns summary rows ``(title, final state, outcome, ok)`` (none if skipped)."""
    if not offered(rt.registry, CITY, "settle_medical") or not offered(rt.registry, CITY, "enable_payment"):
        console.print(f"[yellow]skipped: the plugin of city {CITY} does not offer enable_payment and "
                      "settle_medical (contract 1.2) yet[/]")
        return []
    qrcodes = QrCodes(rt)
    citizen = admin.citizen(CITY, "normal")
    act = _activated(rt, citizen, wait_s)
    if act["status"] != states.ACTIVATED:
        console.print(f"[red]the citizen's e-SSC is {act['status']}, not activated[/]")
        return [("settle a hospital bill", act["status"], "not activated", False)]
    binding = enable_payment(rt.service, act["id"], "demo", **PASSWORD)
    console.print(f"payment enabled (sign level 2): {binding['bank']} {binding['account_hint']}")
    rows = []

    row = _wait_legs(rt, _bill(rt, qrcodes, act["id"], "demo-bill-1")["id"], wait_s)
    console.print(f"hospital scans the code; pre-settled: total {_yuan(row['total_cents'])}, fund "
                  f"{_yuan(row['fund_cents'])}, self-pay {_yuan(row['self_pay_cents'])}")
    row = _wait_legs(rt, rt.settlements.confirm(HOSPITAL, row["id"])["id"], wait_s)
    city = {s["settlement_id"]: s for s in admin.settlements(CITY)}
    ok = row["state"] == "settled" and city.get(row["id"], {}).get("state") == "settled"
    console.print(f"[{'green' if ok else 'red'}]→ {row['state']}[/] (the city's ledger: "
                  f"{city.get(row['id'], {}).get('state')})")
    rows.append(("settle a hospital bill", row["state"], f"fund {_yuan(row['fund_cents'])}, self-pay "
                 f"{_yuan(row['self_pay_cents'])}", ok))

    row = _wait_legs(rt, _bill(rt, qrcodes, act["id"], "demo-bill-2")["id"], wait_s)
    console.print(f"a second bill pre-settled ({_yuan(row['total_cents'])}); the card is reported lost "
                  "before the hospital confirms it…")
    admin.set_card_status(CITY, citizen["id_number"], "reported_lost")
    try:
        row = _wait_legs(rt, rt.settlements.confirm(HOSPITAL, row["id"])["id"], wait_s)
    except EsscError as err:  # not expected: a refused confirmation is recorded on the settlement
        console.print(f"[red]{err.code}[/]")
    finally:
        admin.set_card_status(CITY, citizen["id_number"], "normal")
    row = rt.settlements.store.get(row["id"])
    city = {s["settlement_id"]: s for s in admin.settlements(CITY)}
    why = (row["error"] or {}).get("code", "")
    ok = row["state"] == "reversed" and city.get(row["id"], {}).get("state") == "reversed"
    console.print(f"[{'green' if ok else 'red'}]→ {row['state']}[/] because {why} (the city's ledger: "
                  f"{city.get(row['id'], {}).get('state')}: nothing charged)")
    for event in rt.settlements.store.events(row["id"]):
        console.print(f"  [dim]{time.strftime('%H:%M:%S', time.localtime(event['at']))}[/] "
                      f"{event['event']:<20} {event['detail'] or ''}")
    rows.append(("a failed bill is reversed", row["state"], f"{why}: nothing charged", ok))
    return rows
