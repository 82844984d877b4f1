"""Payment and the e-SSC password, through the citizen's city (issue 11, sections 4 and 5).

* :func:`enable_payment` (开通缴费结算功能, action 005): the channel holding an activated e-SSC
  raises it to **sign level 2** - payment with the card's bank account - after a fresh identity
  check with the e-SSC password (face + password, ``verify_identity`` at the city, with the
  lockout of the activation's own check: essc.service.identity). The city's ``enable_payment``
  names the bank and the masked account; the copies of the credential held by the citizen's
  channels in that city become level 2 (the credential is the city's, one per citizen + city).
* :func:`reset_password` (action 002): a new e-SSC password after a face + SMS check, set at the
  city (``reset_password``). The new password goes to the city and nowhere else: never stored,
  logged or audited.

Both need the city's plugin to offer the operation (contract 1.2), else ``NOT_OFFERED``.
"""
from __future__ import annotations

import re
import time
from typing import cast

from sqlalchemy import Table, insert, select, update

from essc.core import naming
from essc.core.errors import InvalidInput
from essc.core.masking import get_logger

from . import states
from .errors import ActivationNotFound
from .identity import fresh_identity_check
from .models import Activation, AuditEvent
from .pay_errors import NotOffered
from .usage import audit_use
from .use_errors import NotActivated
from .writers import writing

__all__ = ["enable_payment", "offered", "require_offered", "reset_password"]

log = get_logger("essc.service.payment")

A = cast(Table, Activation.__table__)
E = cast(Table, AuditEvent.__table__)
_PASSWORD = re.compile(r"^[0-9]{6}$")


def offered(registry, city: str, operation: str) -> bool:
    """Does the city's plugin offer ``operation`` (essc.core.registry.Registry.offers)?"""
    return registry.offers(city, operation)


def require_offered(registry, city: str, operation: str) -> None:
    if not offered(registry, city, operation):
        raise NotOffered(f"the plugin of city {city} does not offer {operation}", operation=operation, city=city)


def _activated(service, act_id: str, channel: str) -> dict:
    act = service.store.get(act_id)
    if act is None or act["channel"] != channel:
        raise ActivationNotFound("no activation with this id")
    if act["status"] != states.ACTIVATED or not act["credential"]:
        raise NotActivated(f"the activation is {act['status']}: only an activated e-SSC can do this",
                           activation_status=act["status"])
    return act


def enable_payment(service, act_id: str, channel: str, *, face_token: str, password: str) -> dict:
    """Raise the channel's e-SSC ``act_id`` to sign level 2 (see the module doc). Returns
    ``{id, city, sign_no, sign_level: 2, bank, account_hint, enabled_at}``."""
    act = _activated(service, act_id, channel)
    city, registry = act["city"], service.registry
    require_offered(registry, city, "enable_payment")
    pii = service.sealer.unseal(act["sealed"])
    check = fresh_identity_check(service, act, pii, face_token=face_token, password=password)
    sign_no = naming.credential(act["credential"])["sign_no"]
    binding = registry.call(city, "enable_payment", {"aac002": pii["id_number"], "aab301": city, "sign_no": sign_no,
                                                     "verify_id": check["verify_id"], "channel": channel})
    now = time.time()
    detail = f"sign level 2 (action 005): bank {binding['aae008']}, account {binding['account_hint']}"
    with writing(service.store.engine) as conn:
        copies = conn.execute(select(A.c.id, A.c.credential).where(
            A.c.citizen_key == act["citizen_key"], A.c.city == city, A.c.status == states.ACTIVATED)).all()
        for copy_id, stored in copies:
            credential = naming.credential(stored)  # a row stored before contract 1.2 too (written back renamed)
            if credential and credential.get("sign_no") == binding["sign_no"] and credential.get("sign_level") != 2:
                conn.execute(update(A).where(A.c.id == copy_id).values(credential={**credential, "sign_level": 2},
                                                                        updated_at=now))
        conn.execute(insert(E).values(activation_id=act_id, at=now, event="payment_enabled", status=act["status"],
                                      detail=detail[:300], actor=channel))
        audit_use(conn, "payment_enabled", party=channel, activation_id=act_id, at=now)
    service.store.changes.changed(act_id, act["status"])
    log.info("activation %s: payment enabled (sign level 2) in %s", act_id, city)
    return {"id": act_id, "city": city, "sign_no": binding["sign_no"], "sign_level": 2, "bank": binding["aae008"],
            "account_hint": binding["account_hint"], "enabled_at": now}


def reset_password(service, act_id: str, channel: str, *, face_token: str, sms_code: str,
                   new_password: str) -> dict:
    """Set a new e-SSC password at the city after a face + SMS check (see the module doc).
    Returns ``{id, city, reset_date}``."""
    if not isinstance(new_password, str) or not _PASSWORD.match(new_password):
        raise InvalidInput("the new password must be 6 digits", field="new_password", rule="pattern")
    act = _activated(service, act_id, channel)
    city, registry = act["city"], service.registry
    require_offered(registry, city, "reset_password")
    pii = service.sealer.unseal(act["sealed"])
    check = fresh_identity_check(service, act, pii, face_token=face_token, sms_code=sms_code)
    result = registry.call(city, "reset_password", {"aac002": pii["id_number"], "aab301": city,
                                                    "verify_id": check["verify_id"], "new_password": new_password})
    now = time.time()
    with writing(service.store.engine) as conn:
        conn.execute(insert(E).values(activation_id=act_id, at=now, event="password_reset", status=act["status"],
                                      detail=f"e-SSC password reset at the city (action 002) on {result['reset_date']}",
                                      actor=channel))
        audit_use(conn, "password_reset", party=channel, activation_id=act_id, at=now)
    log.info("activation %s: e-SSC password reset in %s", act_id, city)
    return {"id": act_id, "city": city, "reset_date": result["reset_date"]}
