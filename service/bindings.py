"""A channel's binding of the e-SSC, ended: unlink (解绑, the lifecycle action 003).

:func:`unlink` ends the binding of the channel holding activation ``act_id``: its status
becomes ``unlinked`` (final; the row and its audit trail stay), its copy of the credential is
dropped, and every code issued for it stops verifying (``QRCODE_REVOKED``). The citizen's
credential at the city and the other channels' activations are untouched. A later submission
through the same channel starts a new activation from the card read. Unlinking an unlinked
activation answers it as it is; one that is not activated is a conflict (nothing to unlink).
"""
from __future__ import annotations

import time
from typing import cast

from sqlalchemy import Table, insert, null, update

from essc.core import naming
from essc.core.masking import get_logger

from . import states
from .errors import ActivationConflict, ActivationNotFound
from .models import Activation, AuditEvent
from .usage import audit_use
from .writers import writing

log = get_logger("essc.service.bindings")

A = cast(Table, Activation.__table__)
E = cast(Table, AuditEvent.__table__)


def unlink(runtime, qrcodes, act_id: str, channel: str) -> dict:
    """End the channel's binding ``act_id`` and return the activation as it is now."""
    store = runtime.store
    act = store.get(act_id)
    if act is None or act["channel"] != channel:
        raise ActivationNotFound("no activation with this id")
    if act["status"] == states.UNLINKED:
        return act
    if act["status"] != states.ACTIVATED:
        raise ActivationConflict(f"the activation is {act['status']}: only an activated e-SSC can be unlinked",
                                 activation_status=act["status"])
    now = time.time()
    level = naming.credential(act["credential"]).get("sign_level")
    with writing(store.engine) as conn:
        ended = conn.execute(update(A).where(A.c.id == act_id, A.c.status == states.ACTIVATED)
                             .values(status=states.UNLINKED, credential=null(), updated_at=now)).rowcount
        if ended:
            revoked = qrcodes.revoke(conn, act_id, now)
            conn.execute(insert(E).values(activation_id=act_id, at=now, event="unlinked", status=states.UNLINKED,
                                          detail=f"binding of channel {channel} ended (action 003, sign level "
                                                 f"{level}); {revoked} code(s) revoked", actor=channel))
            audit_use(conn, "unlinked", party=channel, activation_id=act_id, at=now)
    act = store.get(act_id)
    if not ended and act["status"] != states.UNLINKED:  # changed in between (e.g. resubmitted)
        raise ActivationConflict(f"the activation is {act['status']}: only an activated e-SSC can be unlinked",
                                 activation_status=act["status"])
    if ended:
        store.changes.changed(act_id, states.UNLINKED)
        log.info("activation %s: binding of channel %s ended", act_id, channel)
    return act
