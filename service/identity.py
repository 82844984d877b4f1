"""A fresh identity check of a citizen who already holds an e-SSC: face liveness plus the SMS
code or the e-SSC password, through the city (``verify_identity``), as the activation's own
check does - with the same lockout: failures count with the activation's checks of the same
citizen + city on every channel, and at ``max_identity_attempts`` the citizen is locked out
(``IDENTITY_LOCKED``, ``retry_after``) without asking the city.

Used before a portal login is confirmed (essc.service.login) and before anything else that
needs the citizen's consent in person. The secrets of the check are used once and never stored.
"""
from __future__ import annotations

import time

from essc.core.errors import IdentityMismatch

from .errors import VerificationBusy

__all__ = ["fresh_identity_check"]


def fresh_identity_check(service, act: dict, pii: dict, *, face_token: str, sms_code: str | None = None,
                         password: str | None = None) -> dict:
    """Check the citizen of activation ``act`` (``pii``: its unsealed data) now; returns the
    city's verification answer. Raises ``INVALID_INPUT`` (the factors' form), ``IDENTITY_LOCKED``,
    ``IDENTITY_MISMATCH`` (``attempts_left``), ``CONFLICT`` (another check of this citizen runs),
    or the city's error."""
    factor, code = service._second_factor(face_token, sms_code, password)
    store, config = service.store, service.config
    key, city = act["citizen_key"], act["city"]
    ident = store.identity(key, city)
    if ident and (ident["locked_until"] or 0) > time.time():
        raise service._locked(ident["locked_until"] - time.time())
    if store.identity_begin(key, city, config.lease_s) is None:
        ident = store.identity(key, city) or {}
        if (ident.get("locked_until") or 0) > time.time():
            raise service._locked(ident["locked_until"] - time.time())
        raise VerificationBusy("another identity check of this citizen in this city is running", retry_after=1.0)
    passed: bool | None = None
    try:
        answer = service.registry.call(city, "verify_identity", {
            "aac002": pii["id_number"], "aab301": city, "face_token": face_token, "factor": factor, "code": code})
        passed = True
        return answer
    except IdentityMismatch as err:
        passed = False
        row = store.identity_end(key, city, passed=False, max_failures=config.max_identity_attempts,
                                 lockout_s=config.identity_lockout_s)
        if row["failures"] == 0:  # this failure reached the limit
            raise service._locked(row["locked_until"] - time.time()) from None
        err.details["attempts_left"] = config.max_identity_attempts - row["failures"]
        raise
    finally:
        if passed is not False:
            store.identity_end(key, city, passed=passed, max_failures=config.max_identity_attempts,
                               lockout_s=config.identity_lockout_s)
