"""The card's status as the city reports it now (a lost, sealed, cancelled or locked card
stops the e-SSC: docs/domain.md "Card statuses").

:func:`current_card_status` asks the city through the contract's optional ``card_status``
operation when the city's plugin offers it, and remembers the answer on every activation of
the citizen in that city (``activations.card_status``). When the plugin does not offer it, or
the city cannot answer right now, the status last recorded is used instead and the answer says
so (``source`` ``"stored"`` and a ``reason``): a city outage does not stop every e-SSC.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert, update

from essc.core import naming
from essc.core.adapter import OPERATIONS, implemented_operations
from essc.core.errors import EsscError, PluginUnavailable, RetryableError
from essc.core.masking import get_logger

from .models import Activation, AuditEvent
from .writers import writing

log = get_logger("essc.service.cardstatus")

A = cast(Table, Activation.__table__)
E = cast(Table, AuditEvent.__table__)
OPERATION = "card_status"


@dataclass(frozen=True)
class CardStatus:
    status: str  #: the contract's aaz502 (normal, reported_lost, sealed, cancelled, locked)
    source: str  #: "city" (asked now) or "stored" (the status recorded last)
    reason: str | None = None  #: why the stored status was used

    @property
    def normal(self) -> bool:
        return self.status == "normal"


def offers_card_status(registry, city: str) -> bool:
    """Does the contract know ``card_status`` and does the city's plugin implement it?"""
    if OPERATION not in OPERATIONS:
        return False
    try:
        adapter = registry.adapter(city)
    except EsscError:
        return False
    return OPERATION in implemented_operations(adapter)


def current_card_status(registry, engine, act: dict, id_number: str, *, actor: str) -> CardStatus:
    """The card status of the activation's citizen in its city (see the module doc).

    ``act`` is the activation row; ``id_number`` its citizen's (unsealed by the caller, never
    logged); ``actor`` names who asked (audited with a change of status)."""
    stored = act.get("card_status") or "normal"  # an activated card was read normal
    city = act["city"]
    if not offers_card_status(registry, city):
        return CardStatus(stored, "stored", f"the plugin of city {city} does not offer card_status")
    request = {"aac002": id_number, "aab301": city}
    sign_no = naming.credential(act.get("credential")).get("sign_no")
    if sign_no:
        request["sign_no"] = sign_no
    try:
        answer = registry.call(city, OPERATION, request)
    except (RetryableError, PluginUnavailable) as err:
        log.warning("activation %s: card_status of city %s unavailable (%s): using the stored status",
                    act["id"], city, err.code)
        return CardStatus(stored, "stored", f"card_status: {err.code}")
    status = answer["aaz502"]
    if status != act.get("card_status"):
        remember(engine, act, status, actor)
    return CardStatus(status, "city")


def remember(engine, act: dict, status: str, actor: str) -> None:
    """Record the city's card status on every activation of the citizen in the city, and the
    change in the audit trail of ``act``."""
    now = time.time()
    with writing(engine) as conn:
        conn.execute(update(A).where(A.c.citizen_key == act["citizen_key"], A.c.city == act["city"])
                     .values(card_status=status))
        conn.execute(insert(E).values(activation_id=act["id"], at=now, event="card_status_changed",
                                      status=act["status"], detail=f"the city reports card status {status}",
                                      actor=actor[:64]))
    log.info("activation %s: the city reports card status %s (was %s)", act["id"], status,
             act.get("card_status") or "unknown")
