"""A chaos drill: many activations over every mock city while the mock injects random
faults; then count lost activations, duplicate credentials and final states.

Used by the test suite (small) and by ``bench/activation_bench.py`` (2000 activations).
"""
from __future__ import annotations

import random
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from essc.core import naming
from essc.core.errors import EsscError, RetryableError, ReverifyError

from . import states
from .cli_flow import settle
from .errors import ActivationConflict

VERIFY = {"face_token": "live-chaos", "sms_code": "123456"}
# kind, rate, parameters (rates apply per request, drawn reproducibly by the mock)
FAULTS: tuple[tuple[str, float, dict[str, int]], ...] = (
    ("latency", 0.10, {"latency_ms": 40}),
    ("http_503", 0.06, {}),
    ("http_429", 0.04, {"retry_after": 1}),
    ("malformed", 0.04, {}),
    ("drop", 0.03, {}),
)
EXPECTED = {  # mock scenario -> final state the activation must reach
    "normal": states.ACTIVATED,
    "reported_lost": states.CARD_STATUS_ABNORMAL,
    "sealed": states.CARD_STATUS_ABNORMAL,
    "cancelled": states.CARD_STATUS_ABNORMAL,
    "locked": states.CARD_STATUS_ABNORMAL,
    "face_mismatch": states.AWAITING_VERIFICATION,  # or identity_failed once the citizen is locked out
}


def arm(admin, faults=FAULTS) -> list[dict]:
    """Put every mock city in a mode that settles by itself and inject random faults."""
    cities = admin.cities()
    for city in cities:
        if city["mode"] == "delayed":
            admin.set_city(city["code"], sync_after_attempts=2)
        for kind, rate, params in faults:
            admin.fault(city=city["code"], operation="*", kind=kind, rate=rate, **params)
    return cities


def drill(runtime, admin, n: int, *, seed: int = 7, threads: int = 4, timeout_s: float = 300.0) -> dict:
    """Submit ``n`` activations (citizens drawn with repetition) and wait until they settle."""
    cities = arm(admin)
    opened = {c.code: c.opened for c in runtime.registry.cities()}
    pool = [(c["code"], p) for c in cities if c["code"] in opened for p in admin.citizens(c["code"])]
    rng = random.Random(seed)
    picks = [rng.choice(pool) for _ in range(n)]
    submit_errors: Counter = Counter()
    first_credential: dict = {}

    def one(pick):
        """As a channel does: submit, wait for the card read, verify (again when the city was
        unavailable), and keep the credential the verification returned."""
        city, p = pick
        try:
            act = runtime.service.submit(city=city, id_number=p["id_number"], name=p["name"], consent=True,
                                         channel="chaos")
            for _ in range(20):
                act = settle(runtime, act, timeout_s)
                if act["status"] != states.AWAITING_VERIFICATION:
                    break
                try:
                    act, credential = runtime.service.verify(act["id"], channel="chaos", **VERIFY)
                except (RetryableError, ActivationConflict):  # city unavailable, a check or resubmission ran
                    act = runtime.store.get(act["id"])
                    continue
                except ReverifyError:
                    return
                if credential:
                    first_credential.setdefault((city, p["id_number"]), naming.credential(credential)["sign_no"])
        except EsscError as err:  # never expected: the inputs are valid
            submit_errors[err.code] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(threads) as ex:
        list(ex.map(one, picks))
    submitted_s = time.monotonic() - started
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        counts = runtime.store.counts()
        if not any(s in states.RUNNABLE for s in counts):
            break
        time.sleep(0.2)
    settled_s = time.monotonic() - started

    lost, wrong, duplicates = [], [], 0
    picked = Counter((c, p["id_number"]) for c, p in picks)
    final: Counter[str] = Counter()
    for city, p in sorted(set((c, p["id_number"]) for c, p in picks)):
        person = next(x for cc, x in pool if cc == city and x["id_number"] == p)
        row = runtime.store.find(runtime.service.sealer.citizen_key(p), city, "chaos")
        if row is None or row["status"] in states.RUNNABLE:
            lost.append((city, row["status"] if row else None))
            continue
        final[row["status"]] += 1
        expected = {EXPECTED[person["scenario"]] if opened[city] else states.CITY_NOT_OPENED}
        if person["scenario"] == "face_mismatch" and picked[(city, p)] >= runtime.config.max_identity_attempts:
            expected.add(states.IDENTITY_FAILED)
        if row["status"] not in expected:
            wrong.append((city, person["scenario"], row["status"], (row["error"] or {}).get("code")))
        seen = first_credential.get((city, p))
        if seen and naming.credential(row["credential"]).get("sign_no") != seen:
            duplicates += 1
    journal = admin.journal()
    return {
        "activations_submitted": n,
        "distinct_citizen_cities": sum(final.values()) + len(lost),
        "lost": len(lost),
        "duplicate_credentials": duplicates,
        "unexpected_outcomes": len(wrong),
        "unexpected_examples": wrong[:5],
        "submit_errors": dict(submit_errors),
        "final_states": dict(final),
        "submit_seconds": round(submitted_s, 2),
        "settle_seconds": round(settled_s, 2),
        "mock_requests": len(journal),
        "faults_injected": dict(Counter(e["fault"] for e in journal if e.get("fault"))),
    }
