"""A chaos drill of medical settlement: many bills settled, confirmed, reversed or left unconfirmed
by hospitals that retry like real ones, while the mock city injects faults in every leg; then
every settlement must be final and agree with the city's own ledger.

Used by tests/service/test_settle_chaos.py. ``admin`` is the mock's admin client (faults, citizens,
the city's settlements); the runtime's workers run the legs the requests leave pending.
"""
from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from essc.core.errors import EsscError

from . import settlement_store as st
from .payment import enable_payment
from .qrcodes import QrCodes
from .relying import RelyingParty

__all__ = ["FAULTS", "arm", "drill", "audit"]

#: kind, rate, parameters: per request to the city, drawn reproducibly by the mock
FAULTS: tuple[tuple[str, float, dict], ...] = (
    ("latency", 0.10, {"latency_ms": 30}),
    ("http_503", 0.10, {}),
    ("http_429", 0.05, {"retry_after": 1}),
    ("malformed", 0.05, {}),
    ("drop", 0.05, {}),
    ("lost_answer", 0.10, {}),  # carried out at the city, the answer lost on the way back
)
HOSPITAL = RelyingParty("chaos-hospital", kind="hospital", busi_types=frozenset({"02", "04"}))
CATEGORIES = ("drug", "exam", "treatment", "material", "bed", "other")
PASSWORD = {"face_token": "live-chaos", "password": "147258"}
VERIFY = {"face_token": "live-chaos", "sms_code": "123456"}
#: what the hospital does after the pre-settlement, and how often
PLANS = (("confirm", 0.55), ("confirm_then_reverse", 0.15), ("reverse", 0.15), ("leave", 0.15))


def arm(admin, city: str, faults=FAULTS) -> None:
    """Inject ``faults`` in every request to ``city`` from now on."""
    for kind, rate, params in faults:
        admin.fault(city=city, operation="*", kind=kind, rate=rate, **params)


def _payers(runtime, admin, city: str, n: int) -> list[str]:
    """``n`` activated e-SSCs of ``city`` (payment enabled for two in three): their activation ids."""
    ids = []
    for i, who in enumerate(admin.citizens(city, "normal")[:n]):
        act = runtime.service.submit(city=city, id_number=who["id_number"], name=who["name"], consent=True,
                                     channel="chaos")
        act, _ = runtime.service.verify(act["id"], channel="chaos", **VERIFY)
        if i % 3:
            enable_payment(runtime.service, act["id"], "chaos", **PASSWORD)
        ids.append(act["id"])
    return ids


def _bill(rng: random.Random) -> list[dict]:
    return [{"code": f"IT{rng.randrange(10**6):06d}", "name": "项目", "category": rng.choice(CATEGORIES),
             "amount_cents": rng.randrange(100, 300_000), "quantity": 1} for _ in range(rng.randrange(1, 5))]


def drill(runtime, admin, city: str, n: int, *, seed: int = 7, threads: int = 4, timeout_s: float = 120.0) -> dict:
    """Settle ``n`` bills at ``city`` under faults (see the module doc); returns :func:`audit`'s
    figures plus what the hospitals saw."""
    rng = random.Random(seed)
    acts = _payers(runtime, admin, city, max(3, n // 4))
    arm(admin, city)
    qrcodes = QrCodes(runtime)
    settlements = runtime.settlements
    jobs = [(i, rng.choice(acts), _bill(rng), rng.choice(("02", "04")),
             rng.choices([p for p, _ in PLANS], [w for _, w in PLANS])[0], rng.random() < 0.3) for i in range(n)]
    answers: Counter = Counter()

    def call(what, *args):
        """A hospital's request, retried as a hospital does when the platform is busy or fails."""
        for _ in range(5):
            try:
                return what(*args)
            except EsscError as err:
                answers[err.code] += 1
                if err.recovery != "retry":
                    return None
        return None

    def settled_leg(sid: str) -> dict:
        """The hospital waits (reading the settlement) while a leg is pending at the city."""
        until = time.monotonic() + timeout_s / 2
        row = settlements.store.get(sid)
        while row["state"] in st.LEGS and time.monotonic() < until:
            time.sleep(0.05)
            row = settlements.store.get(sid)
        return row

    def one(job):
        i, act_id, items, busi_type, plan, resend = job
        code = qrcodes.issue(act_id, "chaos")["qrcode"]
        body = {"qrcode": code, "busi_type": busi_type, "hospital": {"code": "H0001", "name": "chaos"},
                "items": items, "idempotency_key": f"chaos-{seed}-{i}"}
        created = call(settlements.create, HOSPITAL, body, qrcodes)
        if resend:  # the answer was lost on the way back: the hospital sends it again
            created = call(settlements.create, HOSPITAL, body, qrcodes) or created
        if created is None:
            answers["create_refused"] += 1
            return
        answers["created"] += 1
        sid = created[0]["id"]
        refused = settlements.failure(created[0])
        if refused is not None:  # what the API answers: e.g. PAYMENT_NOT_ENABLED at sign level 1
            answers[refused.code] += 1
            return
        if settled_leg(sid)["state"] != st.PRE_SETTLED:
            return
        if plan in ("confirm", "confirm_then_reverse"):
            call(settlements.confirm, HOSPITAL, sid)
        if plan == "confirm_then_reverse":
            settled_leg(sid)
        if plan in ("reverse", "confirm_then_reverse"):
            call(settlements.reverse, HOSPITAL, sid)

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, jobs))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:  # every leg (and every hold) runs out
        counts = settlements.store.counts()
        if not any(counts.get(s) for s in st.LEGS + (st.PRE_SETTLED,)):
            break
        time.sleep(0.2)
    admin.clear_faults()
    result = audit(runtime, admin, city)
    journal = admin.journal()
    result.update(requests=n, answers=dict(answers), seconds=round(time.monotonic() - started, 2),
                  faults_injected=dict(Counter(e["fault"] for e in journal if e.get("fault"))))
    return result


def audit(runtime, admin, city: str) -> dict:
    """Compare every settlement with the city's ledger: ``disagreements`` lists those that are not
    final or whose state or amounts differ from the city's."""
    store = runtime.settlements.store
    ledger = {s["settlement_id"]: s for s in admin.settlements(city)}
    final: Counter = Counter()
    disagreements = []
    for sid in store.all_ids():
        row = store.get(sid)
        assert row is not None
        state, at_city = row["state"], ledger.get(sid)
        final[state] += 1
        held = at_city["state"] if at_city else None
        if state == st.SETTLED:
            ok = held == "settled" and at_city is not None and at_city["fund_cents"] == row["fund_cents"] \
                and at_city["total_cents"] == row["total_cents"]
        elif state == st.REVERSED:
            ok = held == "reversed"
        elif state == st.FAILED:
            ok = held in (None, "reversed")  # nothing applied
        else:  # not final (or an operator's case)
            ok = False
        if not ok:
            disagreements.append((sid, state, held))
    keys = Counter((r["party"], r["idempotency_key"]) for r in (store.get(s) for s in store.all_ids()) if r)
    return {"settlements": sum(final.values()), "final_states": dict(final), "disagreements": len(disagreements),
            "disagreement_examples": disagreements[:5], "city_settlements": len(ledger),
            "unknown_at_platform": len(set(ledger) - set(store.all_ids())),
            "duplicate_keys": sum(1 for n in keys.values() if n > 1)}
